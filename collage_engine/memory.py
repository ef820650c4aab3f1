"""A memory budget for runs: planned before a workflow runs, enforced while it runs.

Before running, :func:`plan_memory` asks every node for an estimate of its outputs (:meth:`Node.estimate`, given
the estimates of its linked inputs and the values of its constants), walks the run order the way the executor
frees values (an output lives until its last consumer has run) and reports the first node at which the live
outputs would pass the budget. While running, the engine measures every output, and a node that knows its output
size before it allocates calls ``ctx.reserve(nbytes)``; both raise :class:`MemoryBudgetError` — a clean execution
error of that node — instead of letting the process be killed for memory.

Estimates are optional: a node that cannot say (its size depends on a file or a model not read yet) returns None,
and so do nodes downstream of it; the run-time checks still hold for those.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import NodeInputError

__all__ = ["Estimate", "MemoryBudgetError", "available_memory", "cgroup_memory", "default_max_memory", "format_bytes",
           "plan_memory"]


@dataclass(frozen=True)
class Estimate:
    """What is known of one node output before running: its size (a tensor ``shape`` of ``itemsize``-byte elements)
    and ``info``, anything a node wants its consumers to know (e.g. a model's labels, so that a class name can be
    checked before anything runs)."""

    shape: tuple[int, ...]
    itemsize: int = 4
    device: str = "cpu"
    info: Any = field(default=None, compare=False)

    @property
    def nbytes(self) -> int:
        return math.prod(int(s) for s in self.shape) * int(self.itemsize)


class MemoryBudgetError(MemoryError):
    """A node whose outputs would take the run past its memory budget (the process keeps running)."""


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - unreachable


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except (OSError, ValueError):
        return None
    if text == "max":  # cgroup v2: no limit
        return None
    try:
        return int(text)
    except ValueError:
        return None


def cgroup_memory(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> tuple[int, int] | None:
    """``(limit, usage)`` in bytes of the memory cgroup this process is in (v2 ``memory.max`` /
    ``memory.current``, v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``), the tightest limit on the way
    up to the root; None where there is no limit or it cannot be read (not Linux, no cgroup file system).

    A container's memory limit is such a cgroup: the host's ``MemAvailable`` does not know it, the kernel's OOM
    killer does."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best: tuple[int, int] | None = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy
            base, names = root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            base, names = os.path.join(root, "memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        rel = path.strip("/")
        while True:  # this cgroup and its ancestors: the smallest limit binds
            folder = os.path.join(base, rel) if rel else base
            limit = _read_int(os.path.join(folder, names[0]))
            if limit is not None and limit < (1 << 60):  # v1 writes "no limit" as a huge number
                usage = _read_int(os.path.join(folder, names[1])) or 0
                if best is None or limit - usage < best[0] - best[1]:
                    best = (limit, usage)
            if not rel:
                break
            rel = os.path.dirname(rel)
    return best


def available_memory() -> int | None:
    """Bytes of memory this process may still take: the host's ``MemAvailable`` (its physical size where that is
    unknown) or, inside a memory cgroup (a container, a ``systemd-run -p MemoryMax=`` scope), the cgroup's limit
    less its usage, whichever is smaller."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            free = None
    group = cgroup_memory()
    if group is not None:
        room = max(group[0] - group[1], 0)
        free = room if free is None else min(free, room)
    return free


def default_max_memory(fraction: float = 0.5) -> int | None:
    """The default budget: ``fraction`` of :func:`available_memory` now (the cgroup's room counts: see there), or
    None where that cannot be read.

    Device memory is left to its own allocator: an out-of-memory error on a GPU is already a clean error.
    """
    free = available_memory()
    return int(free * fraction) if free else None


def plan_memory(order: Sequence[str], nodes: dict[str, Any], instance: Any, budget: int | None,
                mistakes: list | None = None, targets: Sequence[str] = ()) -> dict | None:
    """Walk ``order`` (validated nodes) with their estimates; None if the run fits ``budget`` (None: no budget),
    else the first node that does not fit: ``{"node": id, "output_bytes": ..., "live_bytes": ..., "message"}``.

    ``instance(cls)`` gives a node class's instance (whose :meth:`estimate` is asked). Outputs of a node live
    until its last consumer ran, and the ``targets``' outputs to the end, as in the executor; unknown estimates
    count as zero. A
    :class:`~collage_engine.NodeInputError` raised by an estimate is appended to ``mistakes`` as ``(node id, error)``.
    """
    mistakes = mistakes if mistakes is not None else []
    estimates: dict[str, tuple[Estimate | None, ...]] = {}
    last_use: dict[str, int] = {}
    for i, nid in enumerate(order):
        for src, _ in nodes[nid].links.values():
            last_use[src] = i
    live: dict[str, int] = {}
    keep = set(targets)  # the run's results: held until it ends
    for i, nid in enumerate(order):
        node = nodes[nid]
        args: dict[str, Any] = dict(node.consts)
        for name, (src, idx) in node.links.items():
            outs = estimates.get(src, ())
            args[name] = outs[idx] if idx < len(outs) else None
        try:
            est = instance(node.cls).estimate(**args)
        except NodeInputError as e:  # a mistake the estimates show (e.g. a class the model does not have)
            mistakes.append((nid, e))
            est = None
        except Exception:  # noqa: BLE001 - an estimate is advice; the run-time checks still apply
            est = None
        est = tuple(e if isinstance(e, Estimate) else None for e in (est or ()))
        estimates[nid] = est
        size = sum(e.nbytes for e in est if e is not None and e.device == "cpu")  # host memory only
        held = sum(live.values())
        if budget is not None and held + size > budget:
            held_text = f" (with {format_bytes(held)} of earlier results still needed)" if held else ""
            return {"node": nid, "output_bytes": size, "live_bytes": held + size,
                    "message": f"its output would take about {format_bytes(size)}{held_text}, over the memory "
                               f"budget of {format_bytes(budget)}"}
        live[nid] = size
        for src in [s for s in live if last_use.get(s, -1) <= i and s != nid and s not in keep]:
            del live[src]
    return None
