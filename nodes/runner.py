"""Running workflows of the node pack: the engine that embeds the workflow in saved PNGs, and the file rules of a
workflow run on the user's machine (the ``--set`` grammar is the application's: :mod:`collage_app.overrides`).

Savers embed the workflow (tEXt ``prompt`` = API JSON, ``workflow`` = UI JSON) from ``ctx.prompt`` / ``ctx.extra``
with :func:`png_text`, as ComfyUI's savers do from their hidden ``PROMPT`` / ``EXTRA_PNGINFO`` inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from collage_engine import Engine, RunResult, api_to_ui

__all__ = ["CollageEngine", "png_text", "workflow_paths"]


def png_text(ctx) -> dict[str, str]:
    """The ``{"prompt": API JSON, "workflow": UI JSON}`` text chunks for the run a node is part of.

    The UI JSON is what the embedder passed as ``extra["workflow"]`` (ComfyUI's ``extra_pnginfo``), else one
    generated from the API workflow with :func:`collage_engine.api_to_ui`. Empty when the run has no workflow.
    """
    if not ctx.prompt:
        return {}
    ui = ctx.extra.get("workflow") if ctx.extra else None
    if ui is None:
        reg = getattr(ctx, "registry", None)
        if reg is None:  # a context made outside an engine
            from .pack import registry

            reg = registry()
        ui = api_to_ui(ctx.prompt, reg)
    return {"prompt": json.dumps(ctx.prompt), "workflow": json.dumps(ui)}


class CollageEngine(Engine):
    """An :class:`~collage_engine.Engine` that also accepts ``ui=`` (the editor JSON to embed in saved PNGs)."""

    def run(self, workflow: Any, targets: Iterable[Any] | None = None, *, prompt_id: str | None = None,
            ui: dict | None = None, extra: dict | None = None) -> RunResult:
        extra = dict(extra or {})
        if ui is not None:
            extra["workflow"] = ui
        return super().run(workflow, targets, prompt_id=prompt_id, extra=extra)


def workflow_paths(workflow: str | None = None):
    """The file rules of a workflow run on the user's own machine (:class:`collage_engine.PathPolicy`, open): any
    path; a relative one is looked up next to the workflow file (when it is one), then in the working folder, and
    an error lists both places. Embedded model names pass as they are."""
    import os

    from collage_engine import PathPolicy

    from .model import is_model_name, model_names_hint

    is_file = isinstance(workflow, (str, os.PathLike)) and str(workflow) != "-"  # "-": standard input
    folders = ([os.path.dirname(os.path.abspath(workflow))] if is_file else []) + [os.getcwd()]
    return PathPolicy(folders, known_name=is_model_name, names_hint=model_names_hint)
