"""The result cache: LRU with separate byte budgets for host and device memory, and pinning.

The cache never moves or copies results; it only measures them (:func:`measure_bytes`). Entries pinned by the
run in progress are never evicted; the budget is enforced again as soon as they are unpinned.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheEntry", "ResultCache", "measure_bytes"]

_SMALL = 64          # what an "other object" is assumed to cost
_MAX_VISITS = 10_000  # bound on the objects one measurement walks


def _tensor_like(obj: Any) -> bool:
    return callable(getattr(obj, "element_size", None)) and callable(getattr(obj, "nelement", None)) \
        and hasattr(obj, "device")


def measure_bytes(obj: Any) -> tuple[int, int]:
    """``(host_bytes, device_bytes)`` held by ``obj``.

    Torch tensors (and anything tensor-like with ``element_size()``, ``nelement()`` and ``device``) count
    ``element_size() * nelement()`` on their ``device.type`` ("cpu" is host, "meta" is free, anything else is
    device); ``torch.nn.Module`` counts its parameters and buffers; numpy arrays count ``nbytes``; objects may
    define ``__collage_nbytes__() -> (host, device)``; containers and plain objects' attributes are walked
    (each object once, at most 10,000 of them); everything else counts 64 bytes.
    """
    host = device = 0
    seen: set[int] = set()
    stack = [obj]
    visits = 0
    while stack and visits < _MAX_VISITS:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        visits += 1
        if o is None or isinstance(o, (bool, int, float, complex)):
            host += 32
        elif isinstance(o, (str, bytes, bytearray, memoryview)):
            host += sys.getsizeof(o)
        elif hasattr(type(o), "__collage_nbytes__"):
            h, d = o.__collage_nbytes__()
            host, device = host + int(h), device + int(d)
        elif _tensor_like(o):
            n = int(o.element_size()) * int(o.nelement())
            dev = getattr(o.device, "type", o.device)
            if dev == "cpu":
                host += n
            elif dev != "meta":
                device += n
        elif isinstance(getattr(o, "nbytes", None), int) and type(o).__module__.startswith("numpy"):
            host += o.nbytes
        elif isinstance(o, dict):
            host += _SMALL
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            host += _SMALL
            stack.extend(o)
        elif _is_module(o):
            stack.extend(o.parameters())
            stack.extend(o.buffers())
        elif hasattr(o, "__dict__") and not isinstance(o, type) and type(o).__module__ != "builtins":
            host += _SMALL
            stack.extend(vars(o).values())
        else:
            host += _SMALL
    return host, device


def _is_module(o: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(o, torch.nn.Module)


@dataclass
class CacheEntry:
    """One node result: its output values, its ``ui`` dict and its measured size."""

    outputs: tuple
    ui: dict | None
    host_bytes: int
    device_bytes: int
    class_type: str = ""


#: Default byte budget of the result cache, for host memory and for device memory each.
DEFAULT_BUDGET = 4 << 30


class ResultCache:
    """Node results by cache key, least recently used first; budgets in bytes (None: unlimited)."""

    def __init__(self, host_budget: int | None = DEFAULT_BUDGET, device_budget: int | None = DEFAULT_BUDGET) -> None:
        self.host_budget, self.device_budget = host_budget, device_budget
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._pins: dict[str, int] = {}
        self.host_bytes = self.device_bytes = 0
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` (marked most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, outputs: tuple, ui: dict | None = None, *, class_type: str = "",
            pin: bool = False) -> CacheEntry:
        """Store a result (optionally pinned), then evict down to the budgets."""
        self.discard(key)
        host, device = measure_bytes(outputs)
        entry = CacheEntry(outputs, ui, host, device, class_type)
        self._entries[key] = entry
        self.host_bytes += host
        self.device_bytes += device
        if pin:
            self.pin(key)
        self.evict()
        return entry

    def discard(self, key: str) -> None:
        """Remove ``key`` if present (even if pinned)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.host_bytes -= entry.host_bytes
            self.device_bytes -= entry.device_bytes

    def pin(self, key: str) -> None:
        """Protect ``key`` from eviction (pins are counted)."""
        self._pins[key] = self._pins.get(key, 0) + 1

    def unpin(self, key: str) -> None:
        n = self._pins.get(key, 0) - 1
        if n > 0:
            self._pins[key] = n
        else:
            self._pins.pop(key, None)

    def unpin_all(self) -> None:
        self._pins.clear()
        self.evict()

    def over_budget(self) -> bool:
        return (self.host_budget is not None and self.host_bytes > self.host_budget) or \
            (self.device_budget is not None and self.device_bytes > self.device_budget)

    def evict(self) -> list[str]:
        """Drop least recently used unpinned entries until both budgets hold; return the dropped keys.

        A first pass drops only entries that mostly hold the memory that is over budget (so host pressure does
        not throw away device results for their few host bytes); a second pass drops whatever helps.
        """
        dropped: list[str] = []
        for mostly in (True, False):
            if not self.over_budget():
                break
            for key in list(self._entries):
                if not self.over_budget():
                    break
                if key in self._pins:
                    continue
                e = self._entries[key]
                host_over = self.host_budget is not None and self.host_bytes > self.host_budget
                dev_over = self.device_budget is not None and self.device_bytes > self.device_budget
                if (host_over and e.host_bytes and (not mostly or e.host_bytes >= e.device_bytes)) or \
                        (dev_over and e.device_bytes and (not mostly or e.device_bytes >= e.host_bytes)):
                    self.discard(key)
                    dropped.append(key)
        self.evictions += len(dropped)
        return dropped

    def unpinned_host_bytes(self) -> int:
        return sum(e.host_bytes for k, e in self._entries.items() if k not in self._pins)

    def shrink_unpinned(self, host_bytes: int) -> list[str]:
        """Drop least recently used unpinned entries until they hold at most ``host_bytes`` of host memory (a run
        that needs room takes it from results no one holds); return the dropped keys."""
        dropped: list[str] = []
        spare = self.unpinned_host_bytes()
        for key in list(self._entries):
            if spare <= host_bytes:
                break
            e = self._entries[key]
            if key in self._pins or not e.host_bytes:
                continue
            self.discard(key)
            spare -= e.host_bytes
            dropped.append(key)
        self.evictions += len(dropped)
        return dropped

    def clear(self) -> None:
        """Drop everything that is not pinned."""
        for key in [k for k in self._entries if k not in self._pins]:
            self.discard(key)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self), "host_bytes": self.host_bytes, "device_bytes": self.device_bytes,
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions}
