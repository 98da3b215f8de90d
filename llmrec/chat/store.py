"""Per-user persistence of chat state and transcripts: the ``UserStore`` interface and its SQLite implementation.

``open_profile_store(url_or_path)`` picks the implementation: a file path gives SQLite (one machine), a
``postgresql://`` URL gives PostgreSQL (``llmrec.chat.store_pg``; several app processes or machines serving one
user base). Both keep the same promises below.

SQLite: one database file; every user's rows are keyed by user id and every query filters on it, so one
session can never read another user's data. WAL mode and a busy timeout make concurrent sessions
safe; each state row carries a version so a write based on a stale read (a second tab of the same
user) is detected and retried on fresh data instead of silently overwriting it. ``forget`` removes
the user's state and transcript in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from llmrec.errors import LlmrecError

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    user_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_user ON turns(user_id, id);
"""


def storable(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate (from a bad catalogue or a client) becomes "?" instead of failing
    the write."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


class StaleStateError(LlmrecError):
    """The state changed since it was read (another session of the same user wrote it)."""


@dataclass(frozen=True)
class StoredState:
    user_id: str
    version: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    created: float


@runtime_checkable
class UserStore(Protocol):
    """What a conversation needs from a store. Every method is keyed by user id and touches no other user."""

    def load(self, user_id: str) -> StoredState | None: ...

    def save(self, user_id: str, data: dict[str, Any], expected_version: int | None) -> int:
        """Write the state if its version is still ``expected_version`` (None: the user is new), else raise
        ``StaleStateError`` (the caller re-reads and retries: no update is ever lost). Returns the new version."""
        ...

    def append_turn(self, user_id: str, role: str, text: str) -> None: ...

    def turns(self, user_id: str, limit: int = 200) -> list[Turn]: ...

    def forget(self, user_id: str) -> int: ...

    def users(self) -> list[str]: ...


def open_profile_store(url_or_path: str | Path) -> UserStore:
    """The store at ``url_or_path``: ``postgresql://user@host/db`` (or ``postgres://``) for PostgreSQL, anything else
    is the path of a SQLite file."""
    text = str(url_or_path)
    if text.startswith(("postgresql://", "postgres://")):
        from llmrec.chat.store_pg import PostgresProfileStore

        return PostgresProfileStore(text)
    if "://" in text:
        raise LlmrecError(f"profile store {text.split('://')[0]}://... is not supported; use a file path or "
                          "postgresql://user@host:port/database")  # fmt: skip
    return ProfileStore(text)


class ProfileStore:
    """SQLite-backed store; safe to share between threads (one connection per operation)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise LlmrecError(f"profile store {self.path} is unreadable ({exc}); move it away to start over") from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA secure_delete=ON")  # forgotten rows are overwritten, not just unlinked
            yield db
        finally:
            db.close()

    def load(self, user_id: str) -> StoredState | None:
        with self._connect() as db:
            row = db.execute("SELECT version, data FROM state WHERE user_id = ?", (user_id,)).fetchone()
        return StoredState(user_id, row[0], json.loads(row[1])) if row else None

    def save(self, user_id: str, data: dict[str, Any], expected_version: int | None) -> int:
        """Write the state; ``expected_version`` is the version read (None: the user is new). Returns the new one."""
        payload = storable(json.dumps(data, ensure_ascii=False))
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT version FROM state WHERE user_id = ?", (user_id,)).fetchone()
                current = row[0] if row else None
                if current != expected_version:
                    raise StaleStateError(
                        f"state of user {user_id!r} changed in another session (version {current}); reload and retry"
                    )
                version = (current or 0) + 1
                db.execute(
                    "INSERT INTO state(user_id, version, data, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(user_id) DO UPDATE SET version = excluded.version, data = excluded.data, "
                    "updated = excluded.updated",
                    (user_id, version, payload, time.time()),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return version

    def append_turn(self, user_id: str, role: str, text: str) -> None:
        with self._connect() as db:
            row = (user_id, role, storable(text), time.time())
            db.execute("INSERT INTO turns(user_id, role, text, created) VALUES (?, ?, ?, ?)", row)

    def turns(self, user_id: str, limit: int = 200) -> list[Turn]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT role, text, created FROM turns WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def forget(self, user_id: str) -> int:
        """Delete the user's state and transcript; the number of rows removed."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            removed = db.execute("DELETE FROM state WHERE user_id = ?", (user_id,)).rowcount
            removed += db.execute("DELETE FROM turns WHERE user_id = ?", (user_id,)).rowcount
            db.execute("COMMIT")
        with self._connect() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # deleted text must not linger in the WAL file
        return removed

    def users(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT user_id FROM state ORDER BY user_id")]
