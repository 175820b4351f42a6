"""A Sphinx extension for the book, loaded through ``_config.yml``'s ``sphinx.local_extensions``.

Jupyter Book 1.0.4 with Sphinx 7.4 emits sphinx-thebe's and sphinx-togglebutton's inline scripts
twice per page; the second ``const THEBE_JS_URL`` is a JavaScript error on every page (the browser
test, ``tests/browser``, found it). This keeps the first copy of each identical script.
"""

from __future__ import annotations

from typing import Any


def drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep the first copy of each identical script in a page's ``script_files``."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename None against "" (a body-only script either way)
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
