"""Command line: ``python -m prm_lib {train,score,convert,eval,export,export-model} ...``.

``train --train-file F --format FMT --backbone NAME --out DIR`` (or ``train --preset NAME --out DIR`` on
the course's synthetic data) writes a model that ``ProcessRewardModel.load(DIR)`` reads and a
``metrics.json``; every ``TrainConfig`` setting can be overridden (``--max-steps 100``), and
``--help`` lists the presets and every option. ``eval --checkpoint DIR --data FILE.jsonl``
prints ProcessBench-style first-error F1 as one JSON object (``eval --scorer FAMILY --model NAME`` reads a
published PRM instead, ``prm_lib.scorers``); ``export-model --checkpoint DIR --out DIR2`` writes a PRM as a
Hugging Face token classifier (``prm_lib.export``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from typing import Any, Sequence

from .objectives import OBJECTIVES
from .train import SYNTHETIC_FIELDS, TrainConfig


def weights(text: str) -> dict[str, float]:
    """``arithmetic_slip=3,wrong_number=1`` -> {"arithmetic_slip": 3.0, "wrong_number": 1.0}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected kind=weight pairs separated by commas, got {part!r}")
    return out


_TYPES = {"int": int, "float": float, "str": str, "dict[str, float]": weights}
# settings that take one of a few names: the CLI lists them and refuses any other
_CHOICES = {"objective": list(OBJECTIVES), "report_to": ["none", "tensorboard", "wandb"]}
# what a setting's type and default do not say
_NOTES = {
    "batch_size": "solutions per micro-batch, GLOBAL: under a launcher each of n processes takes 1/n of it "
                  "(TRL's per_device_train_batch_size is per device: give it times n)",
    "grad_accum": "micro-batches per optimizer step (TRL's gradient_accumulation_steps)",
    "epochs": "passes over the training set; the steps are derived and printed; not with --max-steps",
    "max_steps": "optimizer steps (or --epochs)",
    "keep_best": "a validation metric, e.g. step_auroc: its best checkpoint is kept and is the final model",
    "early_stopping_patience": "stop after N evaluations without --keep-best improving",
    "init_from": "a saved prm_lib model folder whose backbone and head start the run (stage 2 of a two-stage recipe)",
    "train_backbone": "--no-train-backbone trains the value head only (stage 1)",
    "lora_targets": "comma-separated module names (default q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)",
}


def _field_type(annotation: str):
    base = annotation.replace(" | None", "").strip()
    return _TYPES.get(base), annotation.endswith("| None")


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _unescape(text: str) -> str:
    r"""``\n\n`` on a command line -> two newlines (for the step separator); any other text, non-ASCII included
    (Math-Shepherd's ' ки'), is kept as typed (``_escapes``)."""
    return _escapes(text)


_unescape.__name__ = "str"


def _typed(value: Any) -> str:
    """A setting's value as typed on the command line (a separator with its escapes)."""
    return _escaped(value) if isinstance(value, str) else str(value)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _add_setting(group: argparse._ArgumentGroup, flag: str, dest: str, annotation: str, default: str) -> None:
    if dest == "separator":  # typed with backslash escapes, and shown so
        group.add_argument(flag, dest=dest, type=_unescape, default=argparse.SUPPRESS, metavar="STR",
                           help=f"(str, backslash escapes read: '\\n\\n' is two newlines; {default})")
        return
    if annotation == "bool":
        group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=f"({default})")
        return
    kind, optional = _field_type(annotation)
    if kind is None:
        raise TypeError(f"setting {dest} has a type the CLI cannot parse: {annotation}")
    metavar = "KIND=W,..." if kind is weights else kind.__name__.upper()
    choices = _CHOICES.get(dest)
    if choices is not None:
        metavar = "{" + ",".join(choices) + "}"
    # unset settings leave no attribute (SUPPRESS), so "none" can set an optional one to None
    group.add_argument(flag, dest=dest, type=_none_or(kind) if optional else kind, default=argparse.SUPPRESS,
                       choices=choices, metavar=metavar,
                       help=f"({annotation}{'; none to unset' if optional else ''}; {default})")


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .data import FORMATS, NEUTRAL_CHOICES
    from .training_data import SyntheticData
    from .zoo import PRESETS, preset

    presets = "\n".join(f"  {k:22} {v.description}" for k, v in PRESETS.items())
    p = sub.add_parser(
        "train",
        help="train a PRM (or ORM) on a data file or a preset's synthetic data",
        description="Train a PRM on your data:\n\n"
                    "  python -m prm_lib train --train-file F --format FMT [--val-file F2] --backbone NAME_OR_PATH --out DIR\n\n"
                    "With --train-file and no --preset, settings not given are the defaults for your own backbone: "
                    "the whole backbone (--n-layers cuts it only when asked), embeddings trained, lr 2e-5 for a "
                    "full fine-tune, solutions bounded at --max-length 2048 tokens (what it cuts is counted). "
                    "Without --train-file the run trains on a preset's synthetic data (--preset, default cpu: the "
                    "course's). The run prints every setting first, marking those you gave. Without --val-file, "
                    "a seeded 5% of the training file's problems (with all their solutions) is held out for "
                    "validation. --batch-size is global: under a launcher each process takes 1/n of it "
                    f"(TRL's per_device_train_batch_size times n).\n\npresets:\n{presets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default=None, choices=list(PRESETS), metavar="{" + ",".join(PRESETS) + "}",
                   help="preset to start from (default: none with --train-file, else cpu)")
    p.add_argument("--out", required=True, help="output folder: final model, metrics.json, checkpoints/ for resuming")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    files = p.add_argument_group("training on a file")
    files.add_argument("--train-file", default=None, help="step-labelled solutions, one JSON record per line")
    files.add_argument("--format", default=None, choices=FORMATS, help="the files' format (needed with --train-file)")
    files.add_argument("--val-file", default=None, help="validation records in the same format (default: hold out "
                                                        "--val-fraction of --train-file's problems)")
    files.add_argument("--val-fraction", type=float, default=None, help="share of --train-file's problems held out "
                                                                        "without --val-file (default: 0.05)")
    files.add_argument("--neutral", choices=list(NEUTRAL_CHOICES), default=None,
                       help="prm800k: what a neutral (0) rating becomes (default: positive)")
    files.add_argument("--alternatives", action="store_true",
                       help="prm800k: each step's rated completions that were not chosen become samples of their own "
                            "(the chosen steps before it, then that completion), as TRL's PRM800K converter did")
    group = p.add_argument_group("settings (override the defaults, or the preset's values)")
    cpu, own = preset("cpu"), TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name != "data":
            mine, course = getattr(own, f.name), getattr(cpu, f.name)
            text = (f"default: {_typed(mine)}" if mine == course else
                    f"default: {_typed(mine)} with --train-file, else the preset's (cpu: {_typed(course)})")
            note = _NOTES.get(f.name)
            _add_setting(group, "--" + f.name.replace("_", "-"), f.name, f.type, f"{note}; {text}" if note else text)
    synthetic = p.add_argument_group("synthetic data (instead of --train-file; override the preset's)")
    by_field = {f.name: f for f in dataclasses.fields(SyntheticData)}
    for flag_name, field_name in SYNTHETIC_FIELDS.items():
        _add_setting(synthetic, "--" + flag_name.replace("_", "-"), flag_name, by_field[field_name].type,
                     f"default: the preset's value; cpu's is {_typed(getattr(cpu.data, field_name))}")


def _run_train(args: argparse.Namespace) -> int:
    from .train import train
    from .training_data import FileData
    from .zoo import preset

    settings = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "data"] + list(SYNTHETIC_FIELDS)
    overrides = {name: getattr(args, name) for name in settings if hasattr(args, name)}
    file_options = [flag for flag, given in (("--format", args.format), ("--val-file", args.val_file),
                                             ("--val-fraction", args.val_fraction is not None),
                                             ("--neutral", args.neutral), ("--alternatives", args.alternatives)) if given]
    if args.train_file is None and file_options:
        raise ValueError(f"{', '.join(file_options)} go(es) with --train-file")
    if args.train_file is None:
        name = args.preset or "cpu"
        config, origin = preset(name), f"preset {name}" + ("" if args.preset else " (the default without --train-file)")
    else:
        given = sorted(name for name in overrides if name in SYNTHETIC_FIELDS)
        if given:
            raise ValueError(f"--{', --'.join(n.replace('_', '-') for n in given)} set(s) the synthetic generator, "
                             "which a --train-file replaces")
        if args.format is None:
            raise ValueError("--train-file needs --format (one of: " + ", ".join(_formats()) + ")")
        if args.preset:
            config, origin = preset(args.preset), f"preset {args.preset}"
        else:
            config, origin = TrainConfig(), "the defaults for your own backbone"
        options = {"neutral": args.neutral} if args.neutral else {}
        if args.alternatives:
            options["alternatives"] = True
        overrides["data"] = FileData(args.train_file, args.format, val_file=args.val_file,
                                     val_fraction=0.05 if args.val_fraction is None else args.val_fraction,
                                     seed=config.seed, **options)
    if overrides.get("epochs") is not None and "max_steps" in overrides:
        raise ValueError("give --epochs or --max-steps, not both: epochs decide the steps")
    config = config.replace(**overrides)
    if os.environ.get("RANK", "0") == "0":  # under a launcher, rank 0 says it once
        print(settings_text(config, set(overrides), origin), file=sys.stderr, flush=True)
    result = train(config, out_dir=args.out, progress=not args.no_progress, device=args.device, announce=True)
    if os.environ.get("RANK", "0") != "0":  # under accelerate launch / torchrun, rank 0 reports
        return 0
    print(json.dumps({"out": args.out, "train_seconds": round(result.seconds, 1), **result.final}))
    return 0


def _formats() -> tuple[str, ...]:
    from .data import FORMATS

    return FORMATS


def settings_text(config: TrainConfig, given: set[str], origin: str) -> str:
    """Every setting a run uses, one a line, those given on the command line marked ``*``; the rest are from
    ``origin`` (a preset, or the defaults for a user's own backbone)."""
    lines = [f"prm_lib train: settings (* given; the rest from {origin})"]
    for f in dataclasses.fields(TrainConfig):
        if f.name == "data":
            continue
        value = getattr(config, f.name)
        note = ""
        if f.name == "n_layers":
            note = "  (the whole backbone)" if value is None else f"  (the backbone is cut to its first {value} layers)"
        lines.append(f"  {'*' if f.name in given else ' '} {f.name:24} {_typed(value)}{note}")
    data = dataclasses.asdict(config.data)  # not key(): that reads the files, which train() checks first
    lines.append(f"  {'*' if 'data' in given else ' '} {'data':24} " + ", ".join(f"{k}={_typed(v)}" for k, v in data.items()))
    return "\n".join(lines)


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score the steps of one solution")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="folder written by save() or train")
    src.add_argument("--backbone", help="an untrained PRM on this backbone")
    p.add_argument("--problem", required=True)
    p.add_argument("--step", action="append", required=True, help="one step; repeat for each step, in order")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")


def _run_score(args: argparse.Namespace) -> int:
    from .model import ProcessRewardModel

    if args.checkpoint:
        prm = ProcessRewardModel.load(args.checkpoint, device=args.device)
    else:
        prm = ProcessRewardModel.from_backbone(args.backbone, device=args.device)
    print(json.dumps({"step_probabilities": prm.score(args.problem, args.step)}))
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    from .data import FORMATS

    p = sub.add_parser("convert", help="convert step-labelled data between formats")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--from", dest="src_format", required=True, choices=FORMATS)
    p.add_argument("--to", dest="dst_format", required=True, choices=FORMATS)
    p.add_argument("--neutral", choices=["positive", "negative"], default=None,
                   help="prm800k input: what a neutral (0) rating becomes (default: positive)")


def _run_convert(args: argparse.Namespace) -> int:
    from .data import convert

    if args.neutral and args.src_format != "prm800k":
        raise ValueError(f"--neutral reads PRM800K's neutral ratings; --from {args.src_format} has none")
    options = {"neutral": args.neutral} if args.neutral else {}
    n = convert(args.src, args.src_format, args.dst, args.dst_format, **options)
    print(json.dumps({"written": n, "dst": args.dst, "format": args.dst_format}))
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from .scorers import CONVENTIONS, FAMILIES

    conventions = "\n".join(
        f"  {name:14} " + ", ".join(f"{f.name}={_shown(f.default)}" for f in dataclasses.fields(CONVENTIONS[name]))
        for name in FAMILIES)
    p = sub.add_parser(
        "eval",
        help="first-error F1 of a checkpoint or a published PRM on ProcessBench-style data",
        description="Score every step of every record of a ProcessBench-style jsonl file (problem, steps, label = "
                    "index of the first wrong step or -1); predict the first error as the first step whose "
                    "P(correct) is below a threshold; print one JSON object: f1 (harmonic mean of acc_erroneous and "
                    "acc_correct), acc_erroneous, acc_correct, threshold, n (records scored), n_skipped and skipped "
                    "(records that could not be scored, with the reason).\n\n"
                    "The model is a prm_lib checkpoint (--checkpoint DIR) or a published PRM read by its family's "
                    "conventions (--scorer FAMILY --model NAME_OR_PATH). Each family's conventions and their "
                    "defaults (change one with --convention NAME=VALUE):\n" + conventions + "\n\n"
                    "--fit-subset gsm8k fits the threshold on the records of that subset and applies it to the "
                    "others, adding F1 per subset (subsets, each with its n_skipped) and their mean (f1_mean); a "
                    "record's subset is its 'subset' field, else its 'source' field, else the prefix of its 'id' "
                    "before '-N' (ProcessBench's ids: gsm8k-12).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="folder written by save() or train")
    model.add_argument("--scorer", choices=list(FAMILIES), help="read a published PRM of this family (with --model)")
    p.add_argument("--model", default=None, help="with --scorer: a hub id or a local model folder")
    p.add_argument("--convention", action="append", default=[], type=_escapes, metavar="NAME=VALUE",
                   help="with --scorer: change one of the family's conventions (repeatable; backslash escapes read: "
                        "separator=\\n\\n is two newlines)")
    p.add_argument("--max-length", type=int, default=None,
                   help="with --scorer: longest input in tokens (default: the model's)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="with --scorer: run the model folder's own code (a released model with a custom class, "
                        "e.g. Qwen2.5-Math-PRM, needs it)")
    p.add_argument("--data", required=True, help="ProcessBench-style jsonl file to evaluate")
    fit = p.add_mutually_exclusive_group()
    fit.add_argument("--threshold", type=float, default=None, help="use this threshold instead of fitting one")
    fit.add_argument("--fit-data", default=None,
                     help="fit the threshold on this (validation) file; default: on --data itself, which flatters F1")
    fit.add_argument("--fit-subset", default=None, metavar="SUBSET",
                     help="fit the threshold on this subset of --data (e.g. gsm8k) and apply it to the other subsets")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--progress", action="store_true", help="show a progress bar while scoring")


def _escapes(text: str) -> str:
    r"""``\n``, ``\t``, ``\r`` and ``\\`` typed on a command line read as the characters; any other text,
    non-ASCII included (Math-Shepherd's tag 'ки'), is kept as typed."""
    return re.sub(r"\\([ntr\\])", lambda m: {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[m.group(1)], text)


def _shown(value: Any) -> str:
    """A convention's default as typed on the command line; long ones (a chat template) cut short."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "...'"


def _load_evaluated(args: argparse.Namespace) -> Any:
    """The model ``eval`` reads: a prm_lib checkpoint, or a published PRM through its family's adapter."""
    if args.checkpoint is not None:
        given = [flag for flag, value in (("--model", args.model), ("--convention", args.convention),
                                          ("--max-length", args.max_length),
                                          ("--trust-remote-code", args.trust_remote_code)) if value]
        if given:
            raise ValueError(f"{', '.join(given)} go(es) with --scorer; a --checkpoint records its own settings")
        from .model import ProcessRewardModel

        return ProcessRewardModel.load(args.checkpoint, device=args.device)
    if args.model is None:
        raise ValueError("--scorer needs --model (a hub id or a local model folder)")
    from .scorers import load_scorer, parse_conventions

    return load_scorer(args.scorer, args.model, conventions=parse_conventions(args.scorer, args.convention),
                       device=args.device, max_length=args.max_length, trust_remote_code=args.trust_remote_code)


def _run_eval(args: argparse.Namespace) -> int:
    from .processbench import evaluate_processbench

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold {args.threshold} is not a probability in [0, 1]")
    prm = _load_evaluated(args)
    result = evaluate_processbench(prm, args.data, args.threshold, args.fit_data, progress=args.progress,
                                   fit_subset=args.fit_subset)
    if result["n_skipped"]:
        print(f"warning: {result['n_skipped']} of {result['n_records']} records could not be scored "
              f"(listed under 'skipped'); first: {result['skipped'][0]['where']}: {result['skipped'][0]['reason']}",
              file=sys.stderr)
    if result.get("f1_missing"):
        print(f"note: {result['f1_missing']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    from .data import FORMATS
    from .zoo import PRESETS

    p = sub.add_parser("export", help="write a preset's synthetic train/validation data to files (e.g. for TRL)",
                       description="Generate the synthetic training and validation sets a preset trains on and write "
                                   "them as OUT/train.jsonl and OUT/validation.jsonl in a format of your choice; "
                                   "--format trl gives TRL's stepwise-supervision format (prompt, completions, "
                                   "labels) that TRL 1.13's trl.experimental.prm.PRMTrainer reads (prm_lib[trl]).")
    p.add_argument("--preset", default="cpu", choices=list(PRESETS), help="whose data (default: cpu)")
    p.add_argument("--format", default="trl", choices=FORMATS, help="file format (default: trl)")
    p.add_argument("--out", required=True, help="output folder")


def _run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data import write
    from .training_data import build_data
    from .zoo import preset

    train_set, val_set = build_data(preset(args.preset))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, samples in (("train", train_set), ("validation", val_set)):  # every format is JSON lines
        write(samples, out / f"{name}.jsonl", args.format)
    print(json.dumps({"out": str(out), "format": args.format, "train": len(train_set), "validation": len(val_set)}))
    return 0


def _add_export_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-model", help="write a prm_lib PRM as a Hugging Face token-classification model",
                       description="Write the PRM in --checkpoint to --out as a two-label token classifier that "
                                   "AutoModelForTokenClassification.from_pretrained(OUT) loads (softmax index 1 is "
                                   "the PRM's P(correct) exactly), with its tokenizer; config.prm_lib records the "
                                   "separator, prm_lib's layout (a separator after the problem too), max_length and "
                                   "the objective, which `eval --scorer trl --model OUT` reads. A PRM that reads a "
                                   "frozen LM's surprise is refused; an ORM is exported, marked as read at its last "
                                   "step only.")
    p.add_argument("--checkpoint", required=True, help="folder written by save() or train")
    p.add_argument("--out", required=True, help="output folder")


def _run_export_model(args: argparse.Namespace) -> int:
    from .export import export_token_classifier
    from .model import ProcessRewardModel

    prm = ProcessRewardModel.load(args.checkpoint, device="cpu")
    print(json.dumps(export_token_classifier(prm, args.out)))
    return 0


def _add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="fold a LoRA PRM's adapters into its backbone: a plain prm_lib model",
                       description="Load the LoRA PRM in --checkpoint (adapters plus head, as train --lora-rank "
                                   "saves it) and write to --out a plain prm_lib model with the adapters merged into "
                                   "the backbone's weights; its scores match the unmerged model's (fp32).")
    p.add_argument("--checkpoint", required=True, help="folder written by train --lora-rank (or save())")
    p.add_argument("--out", required=True, help="output folder")


def _run_merge(args: argparse.Namespace) -> int:
    from .lora import merge

    print(json.dumps({"out": str(merge(args.checkpoint, args.out))}))
    return 0


COMMANDS = {"train": (_add_train, _run_train), "score": (_add_score, _run_score), "convert": (_add_convert, _run_convert),
            "eval": (_add_eval, _run_eval), "export": (_add_export, _run_export),
            "export-model": (_add_export_model, _run_export_model), "merge": (_add_merge, _run_merge)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m prm_lib", description="Process Reward Models: train, score, convert, eval, export.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional dependency (an extra) that is not installed
        print(f"error: {err}: an optional package this command needs is not installed", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
