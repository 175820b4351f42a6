"""The Colab path and the backbone switch: one repository URL, one environment variable."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from prm_lib.backbones import DEFAULT_BACKBONE
from prm_lib.zoo import config_hash, course_backbone, course_preset, preset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
REPOSITORY = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def uses_prm_lib(nb):
    return any("prm_lib" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_installs_prm_lib_from_the_configured_repository_only_on_colab(path):
    nb = nbformat.read(path, as_version=4)
    if not uses_prm_lib(nb):
        return
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert 'if "google.colab" in sys.modules:' in first.source
    urls = re.findall(r"git\+(https://\S+?)[\"']", first.source)
    assert urls == [REPOSITORY], f"{path.name}: installs from {urls}, _config.yml says {REPOSITORY}"
    if not path.stem.startswith("a1_"):  # appendix A reads recorded benchmark files and trains nothing
        assert '# os.environ["PRM_BACKBONE"] = "Qwen/Qwen2.5-0.5B"' in first.source


def test_course_preset_follows_prm_backbone(monkeypatch):
    monkeypatch.delenv("PRM_BACKBONE", raising=False)
    assert course_backbone() == DEFAULT_BACKBONE
    name, config = course_preset()
    assert name == "cpu-reader" and config == preset("cpu-reader")
    assert course_preset("orm") == ("cpu-reader-orm", preset("cpu-reader-orm"))
    monkeypatch.setenv("PRM_BACKBONE", "Qwen/Qwen2.5-0.5B")
    assert course_preset() == ("gpu-qwen2.5-0.5b", preset("gpu-qwen2.5-0.5b"))
    name, config = course_preset("orm")
    assert name == "gpu-qwen2.5-0.5b-orm" and config.objective == "orm" and config.backbone == "Qwen/Qwen2.5-0.5B"
    monkeypatch.setenv("PRM_BACKBONE", "/models/my-llm")
    name, config = course_preset()
    assert config.backbone == "/models/my-llm" and "/" not in name and config_hash(config) != config_hash(preset("gpu-qwen2.5-0.5b"))
    with pytest.raises(ValueError, match="objective"):
        course_preset("reward")
