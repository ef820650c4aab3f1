"""How many CPU threads torch should use: one policy for ``run``, ``map`` (in-process and each Ray worker) and
``serve``.

torch's default is one thread per physical core, whatever else the machine is doing. Its OpenMP threads wait
for each other at the end of every parallel operation, so when another program holds a core, each of our
thousands of small operations waits for a thread that is not running: measured on the 2-core development machine
with other work on it, the embedded model's forward took 166 ms with 2 threads against 11 ms with 1 (photo_edit:
3 min 47 s against 51 s). On an idle machine the second thread helps. So ``auto`` counts the CPUs this process
may use (affinity and cgroup quota) and leaves out the ones other programs are keeping busy right now::

    threads = max(1, min(usable CPUs // share, round(usable CPUs - CPUs busy with other work)))

``share`` divides the machine between workers started together (``map --ray`` on one machine). An explicit
number (``--threads N``, ``NEURAL_COLLAGE_THREADS``) wins, and so does ``OMP_NUM_THREADS`` when set (the user's
own choice: torch already follows it). The busy CPUs are read from ``/proc/stat`` over a short sample (Linux);
elsewhere ``auto`` uses the usable CPUs.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

__all__ = ["ThreadChoice", "cgroup_cpus", "usable_cpus", "busy_cpus", "choose_threads", "apply_threads",
           "parse_threads"]

#: environment variable with the default of ``--threads`` (a number or ``auto``)
ENV = "NEURAL_COLLAGE_THREADS"


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen (printed by the commands)."""

    threads: int
    reason: str

    def __str__(self) -> str:
        return f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.reason})"


def parse_threads(text: str | int | None) -> int | None:
    """``auto``/empty/None -> None, else a positive int; ``ValueError`` naming the value otherwise."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "auto")):
        return None
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"threads: {text!r} is neither a positive number nor 'auto'") from None
    if n < 1:
        raise ValueError(f"threads: {text!r} is neither a positive number nor 'auto'")
    return n


def cgroup_cpus(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), in CPUs, or None."""
    for quota_file, period_file in ((f"{root}/cpu.max", None),
                                    (f"{root}/cpu/cpu.cfs_quota_us", f"{root}/cpu/cpu.cfs_period_us")):
        try:
            with open(quota_file, encoding="ascii") as f:
                parts = f.read().split()
            if period_file is None:
                quota, period = parts[0], (parts[1] if len(parts) > 1 else "100000")
            else:
                with open(period_file, encoding="ascii") as f:
                    quota, period = parts[0], f.read().strip()
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return max(int(quota) / int(period), 1.0)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by its cgroup's CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpus()
    return max(1, min(n, math.floor(quota)) if quota else n)


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


def busy_cpus(sample: float = 0.05) -> float | None:
    """How many CPUs the whole machine kept busy over the next ``sample`` seconds (None off Linux). Called while
    this process is idle, it is the other programs' load."""
    a = _cpu_ticks()
    if a is None:
        return None
    time.sleep(sample)
    b = _cpu_ticks()
    if b is None or b[1] <= a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)


def choose_threads(requested: int | str | None = None, share: int = 1, sample: float = 0.05) -> ThreadChoice:
    """The thread count of the policy above: ``requested`` (a number), else ``$NEURAL_COLLAGE_THREADS``, else
    ``$OMP_NUM_THREADS``, else ``auto`` for a process that shares the machine with ``share - 1`` siblings."""
    n = parse_threads(requested)
    if n is not None:
        return ThreadChoice(n, "asked for")
    n = parse_threads(os.environ.get(ENV))
    if n is not None:
        return ThreadChoice(n, ENV)
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    usable = usable_cpus()
    n = max(1, usable // max(1, share))
    busy = busy_cpus(sample) if sample > 0 else None
    if busy is None:
        return ThreadChoice(n, f"auto: {usable} usable CPU{'s' if usable != 1 else ''}")
    free = usable - busy
    if round(free) < n:
        return ThreadChoice(max(1, round(free)), f"auto: {usable} usable CPUs, {busy:.1f} busy with other work")
    return ThreadChoice(n, f"auto: {usable} usable CPU{'s' if usable != 1 else ''}, idle")


def apply_threads(choice: ThreadChoice | int) -> int:
    """Set torch's (and OpenCV's) intra-op thread count; return it."""
    import torch

    n = choice.threads if isinstance(choice, ThreadChoice) else int(choice)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    return n
