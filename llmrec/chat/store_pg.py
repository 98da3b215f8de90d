"""Chat state and transcripts in PostgreSQL, for several app processes or machines serving one user base.

The same ``UserStore`` promises as the SQLite store (``llmrec.chat.store``): every query is keyed by user id;
a state write is a compare-and-set on its version (``UPDATE ... WHERE version = expected``), so two processes
updating one profile at once never lose an update (the loser gets ``StaleStateError`` and retries on fresh
data); ``forget`` deletes the user's state and transcript in one transaction. ``psycopg`` (v3) is the only import
of the PostgreSQL driver and is imported here, on first use.

Deleted rows leave query results at once; PostgreSQL frees their space at its next (auto)vacuum, and its WAL
and any backups keep them for their retention (SECURITY.md says what that means for "forget me").
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from llmrec.chat.store import StaleStateError, StoredState, Turn
from llmrec.errors import ConfigError, LlmrecError

SCHEMA = """
CREATE TABLE IF NOT EXISTS llmrec_state (
    user_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS llmrec_turns (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS llmrec_turns_user ON llmrec_turns(user_id, id);
"""
SCHEMA_LOCK = 0x6C6C6D72  # an advisory lock id, so two processes creating the tables at once do not collide


def _text(value: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates."""
    return value.replace("\x00", "").encode("utf-8", errors="replace").decode("utf-8")


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:
        return url.split("@")[-1]
    user, host, port, name = (parts.get(k, "") for k in ("user", "host", "port", "dbname"))
    return f"postgresql://{user}@{host}:{port}/{name}"


class PostgresProfileStore:
    """``UserStore`` over PostgreSQL; one connection per operation, so it is safe to share between threads."""

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a postgresql:// profile store needs psycopg; install it with "
                              "`pip install 'psycopg[binary]>=3.1'`") from None  # fmt: skip
        self._psycopg = psycopg
        self.url = url
        self.location = _safe_url(url)
        self.connect_timeout = connect_timeout
        with self._connect() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            db.execute(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        try:
            db = self._psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except self._psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise LlmrecError(f"profile store {self.location} is unreachable ({first}); check the URL and that "
                              "the server runs") from None  # fmt: skip
        try:
            yield db
        finally:
            db.close()

    def load(self, user_id: str) -> StoredState | None:
        with self._connect() as db:
            row = db.execute("SELECT version, data FROM llmrec_state WHERE user_id = %s", (user_id,)).fetchone()
        return StoredState(user_id, row[0], json.loads(row[1])) if row else None

    def save(self, user_id: str, data: dict[str, Any], expected_version: int | None) -> int:
        """Compare-and-set on the version: ``StaleStateError`` when another session wrote first."""
        payload = _text(json.dumps(data, ensure_ascii=False))
        now = time.time()
        with self._connect() as db:
            if expected_version is None:
                cursor = db.execute("INSERT INTO llmrec_state(user_id, version, data, updated) VALUES (%s, 1, %s, %s) "
                                    "ON CONFLICT (user_id) DO NOTHING", (user_id, payload, now))  # fmt: skip
                row = (1,) if cursor.rowcount == 1 else None
            else:
                row = db.execute("UPDATE llmrec_state SET version = version + 1, data = %s, updated = %s "
                                 "WHERE user_id = %s AND version = %s RETURNING version",
                                 (payload, now, user_id, expected_version)).fetchone()  # fmt: skip
        if row is None:
            raise StaleStateError(f"state of user {user_id!r} changed in another session; reload and retry")
        return int(row[0])

    def append_turn(self, user_id: str, role: str, text: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO llmrec_turns(user_id, role, text, created) VALUES (%s, %s, %s, %s)",
                       (user_id, role, _text(text), time.time()))  # fmt: skip

    def turns(self, user_id: str, limit: int = 200) -> list[Turn]:
        with self._connect() as db:
            rows = db.execute("SELECT role, text, created FROM llmrec_turns WHERE user_id = %s ORDER BY id DESC "
                              "LIMIT %s", (user_id, limit)).fetchall()  # fmt: skip
        return [Turn(*row) for row in reversed(rows)]

    def forget(self, user_id: str) -> int:
        """Delete the user's state and transcript in one transaction; the number of rows removed."""
        with self._connect() as db, db.transaction():
            removed = db.execute("DELETE FROM llmrec_state WHERE user_id = %s", (user_id,)).rowcount
            removed += db.execute("DELETE FROM llmrec_turns WHERE user_id = %s", (user_id,)).rowcount
        return removed

    def users(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT user_id FROM llmrec_state ORDER BY user_id")]
