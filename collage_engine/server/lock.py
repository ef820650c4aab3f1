"""One server per folder: an exclusive lock on ``DIR/serve.lock`` held while the server lives.

Two servers on one folder would share one history database and one queue: the second would record the first's
running prompt as stopped and run its waiting prompts again. :class:`FolderLock` makes the second refuse to start,
naming the first (its process id, address and start time, which the holder writes into the file). The lock is the
operating system's (``flock`` on POSIX, ``msvcrt.locking`` on Windows): a killed server's lock goes with its
process, so no stale lock file ever blocks a new server.
"""

from __future__ import annotations

import json
import os
import time

__all__ = ["FolderBusy", "FolderLock"]

LOCK_NAME = "serve.lock"


class FolderBusy(RuntimeError):
    """Another live server holds the folder (the message names it)."""


class FolderLock:
    """The lock of ``folder`` (made if missing); :meth:`acquire` raises :class:`FolderBusy` when it is held."""

    def __init__(self, folder: str) -> None:
        self.folder = os.path.abspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._fd: int | None = None
        self._info: dict = {}

    def acquire(self) -> None:
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _read_info(fd)
            os.close(fd)
            who = f"process {holder.get('pid', '?')}"
            if holder.get("url"):
                who += f" serving {holder['url']}"
            if holder.get("started"):
                who += f", started {holder['started']}"
            raise FolderBusy(f"another neural-collage server ({who}) uses the folder {self.folder}; stop it first, "
                             "or give this one another --dir")
        self._fd = fd
        self._info = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self._write()

    def describe(self, url: str) -> None:
        """Record the address the server listens on (what a refused second server tells its user)."""
        if self._fd is not None:
            self._info["url"] = url
            self._write()

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _write(self) -> None:
        data = json.dumps(self._info).encode()
        try:
            os.ftruncate(self._fd, 0)  # type: ignore[arg-type]
            os.pwrite(self._fd, data, 0) if hasattr(os, "pwrite") else os.write(self._fd, data)  # type: ignore
        except OSError:
            pass

    def __del__(self) -> None:  # pragma: no cover - best effort
        self.release()


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _read_info(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0) if hasattr(os, "pread") else b""
        info = json.loads(data.decode() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}
