"""The server's durable state: finished prompts (history) and the queue, in one SQLite file (standard library).

Every change is written through as it happens (WAL journal: a killed process loses nothing it had committed), so
a server that is killed and started again on the same folder still shows every finished prompt in ``/history``,
runs the prompts that were waiting, and records the prompt that was running when it died as failed.
The in-memory queue and history of :class:`~collage_engine.server.PromptServer` stay the working copy; this
module only persists them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from typing import Any

__all__ = ["PromptStore"]

log = logging.getLogger("collage_engine.server")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    prompt_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, finished REAL NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_seq ON history (seq);
CREATE TABLE IF NOT EXISTS queue (
    prompt_id TEXT PRIMARY KEY, number REAL NOT NULL, seq INTEGER NOT NULL, running INTEGER NOT NULL DEFAULT 0,
    item TEXT NOT NULL);
"""


class PromptStore:
    """History and queue rows of one server in the SQLite file ``path`` (made if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT MAX(seq) FROM history").fetchone()
        self._seq = (row[0] or 0) + 1

    @classmethod
    def open_or_set_aside(cls, path: str) -> tuple[PromptStore, str | None]:
        """Open ``path``; when it is damaged (not a database, truncated, unreadable pages) move it aside as
        ``path.damaged-YYYYmmdd-HHMMSS`` (with its ``-wal``/``-shm`` files; nothing is deleted) and start a fresh
        one. Returns the store and the path the damaged file was kept at (None when it was fine)."""
        try:
            store = cls(path)
            store.check()
            return store, None
        except sqlite3.DatabaseError as e:
            try:
                store.close()  # type: ignore[possibly-undefined]
            except Exception:  # noqa: BLE001
                pass
            aside = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.replace(path + suffix, aside + suffix)
            log.warning("the history database %s was damaged (%s): kept as %s, starting a new one", path, e, aside)
            return cls(path), aside

    def check(self) -> None:
        """Read every row once (``sqlite3.DatabaseError`` when the file is damaged)."""
        with self._lock:
            row = self._db.execute("PRAGMA quick_check").fetchone()
            if not row or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
            for table in ("history", "queue"):
                self._db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - fixed names

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, *statements: tuple[str, tuple]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- queue -----------------------------------------------------------------------------------------------
    def add_pending(self, prompt_id: str, number: float, seq: int, item: dict) -> None:
        self._write(("INSERT OR REPLACE INTO queue (prompt_id, number, seq, running, item) VALUES (?, ?, ?, 0, ?)",
                     (prompt_id, float(number), int(seq), json.dumps(item))))

    def mark_running(self, prompt_id: str) -> None:
        self._write(("UPDATE queue SET running = 1 WHERE prompt_id = ?", (prompt_id,)))

    def drop_pending(self, *prompt_ids: str) -> None:
        self._write(*[("DELETE FROM queue WHERE prompt_id = ?", (p,)) for p in prompt_ids])

    def clear_pending(self) -> None:
        self._write(("DELETE FROM queue WHERE running = 0", ()))

    # -- history ---------------------------------------------------------------------------------------------
    def finish(self, prompt_id: str, entry: dict, keep: int) -> list[str]:
        """Record a finished prompt (and take it off the queue) keeping the newest ``keep``; return the dropped ids."""
        with self._lock:
            seq, self._seq = self._seq, self._seq + 1
        dropped = [r[0] for r in self._query(
            "SELECT prompt_id FROM history ORDER BY seq DESC LIMIT -1 OFFSET ?", (max(keep - 1, 0),))]
        self._write(("DELETE FROM queue WHERE prompt_id = ?", (prompt_id,)),
                    ("INSERT OR REPLACE INTO history (prompt_id, seq, finished, entry) VALUES (?, ?, ?, ?)",
                     (prompt_id, seq, time.time(), json.dumps(entry))),
                    *[("DELETE FROM history WHERE prompt_id = ?", (p,)) for p in dropped])
        return dropped

    def delete_history(self, *prompt_ids: str) -> None:
        self._write(*[("DELETE FROM history WHERE prompt_id = ?", (p,)) for p in prompt_ids])

    def clear_history(self) -> None:
        self._write(("DELETE FROM history", ()))

    # -- start -----------------------------------------------------------------------------------------------
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def load(self, keep: int) -> tuple[list[tuple[str, dict]], list[tuple[str, float, dict]], list[tuple[str, dict]]]:
        """``(history, pending, running)`` as saved: the newest ``keep`` history entries oldest first, the waiting
        prompts ``(id, number, item)`` in queue order, and the prompts that were running when the server stopped."""
        history = []
        for pid, text in reversed(self._query("SELECT prompt_id, entry FROM history ORDER BY seq DESC LIMIT ?",
                                              (int(keep),))):
            entry = _loads(text)
            if entry is not None:
                history.append((pid, entry))
        pending, running = [], []
        for pid, number, is_running, text in self._query(
                "SELECT prompt_id, number, running, item FROM queue ORDER BY number, seq"):
            item = _loads(text)
            if item is None:
                continue
            (running.append((pid, item)) if is_running else pending.append((pid, number, item)))
        return history, pending, running


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
