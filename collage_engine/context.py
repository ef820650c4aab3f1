"""What a running node sees of the engine: progress reporting, cancellation, seeded generators."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Context", "Interrupted", "seeded_generator"]

T = TypeVar("T")


class Interrupted(Exception):
    """Raised inside a node at its next :meth:`Context.check_cancelled` after ``engine.interrupt()``."""


def seeded_generator(seed: int, device: Any = "cpu") -> Any:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (any int in [-2**63, 2**64)).

    Nodes draw their randomness from it (``torch.randn(..., generator=g, device=g.device)``) so that the same
    seed gives the same result whatever else ran before.
    """
    import torch  # imported lazily: the engine itself does not need torch

    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


class Context:
    """Passed to ``Node.run`` as ``ctx``.

    ``ctx.progress(done, total)`` reports progress (and checks for cancellation), ``ctx.check_cancelled()`` raises
    :class:`Interrupted` once the embedder called ``engine.interrupt()``, ``ctx.iterate(xs)`` does both around a
    loop, ``ctx.generator(seed)`` gives a seeded ``torch.Generator``, ``ctx.reserve(nbytes)`` checks the memory budget.
    ``ctx.node_id`` and ``ctx.class_type`` name
    the node being run; ``ctx.prompt`` is the whole workflow being run (API format) and ``ctx.extra`` what the
    embedder passed to ``Engine.run(..., extra=...)`` (e.g. ``{"workflow": <UI JSON>}``), like ComfyUI's hidden
    ``PROMPT`` / ``EXTRA_PNGINFO`` inputs, so savers can embed the workflow in their files.
    """

    __slots__ = ("node_id", "class_type", "prompt_id", "prompt", "extra", "registry", "_emit", "_cancel",
                 "_reserve")

    def __init__(self, node_id: str, class_type: str, prompt_id: str,
                 emit: Callable[[str, dict], None] | None, cancel: threading.Event,
                 prompt: dict | None = None, extra: dict | None = None, registry: Any = None,
                 reserve: Callable[[int, str], None] | None = None) -> None:
        self.node_id, self.class_type, self.prompt_id = node_id, class_type, prompt_id
        self.prompt, self.extra = prompt, extra if extra is not None else {}
        self.registry = registry  # the NodeRegistry the run uses (None outside an engine)
        self._emit, self._cancel, self._reserve = emit, cancel, reserve

    def reserve(self, nbytes: int, what: str = "its output") -> None:
        """Call before allocating ``nbytes`` of host memory for a result: raises
        :class:`~collage_engine.memory.MemoryBudgetError` (a clean error of this node) when that would take the run
        past the engine's memory budget, so a too-large request fails before it is allocated."""
        if self._reserve is not None:
            self._reserve(int(nbytes), what)

    def check_cancelled(self) -> None:
        """Raise :class:`Interrupted` if the run was cancelled."""
        if self._cancel.is_set():
            raise Interrupted(f"interrupted in node {self.node_id} ({self.class_type})")

    def progress(self, value: float, total: float | None = None) -> None:
        """Report ``value`` of ``total`` steps done (ComfyUI's ``progress`` event), then check cancellation."""
        if self._emit is not None:
            self._emit("progress", {"value": value, "max": total, "node": self.node_id,
                                    "prompt_id": self.prompt_id})
        self.check_cancelled()

    def iterate(self, items: Iterable[T], total: int | None = None) -> Iterator[T]:
        """Yield ``items``, reporting progress after each (``total`` defaults to ``len(items)``)."""
        if total is None:
            try:
                total = len(items)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.check_cancelled()
        for i, item in enumerate(items, 1):
            yield item
            self.progress(i, total)

    def generator(self, seed: int, device: Any = "cpu") -> Any:
        """A seeded ``torch.Generator`` (see :func:`seeded_generator`)."""
        return seeded_generator(seed, device)
