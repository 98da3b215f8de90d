"""The writer lock of an embedded store: one writer at a time, others wait and can say what they wait for.

The lock is an ``flock`` on a small file in the store folder (it dies with its holder, so a killed writer never
leaves a store locked). The file also carries a little state, one JSON line padded to a fixed width so that a
reader never sees it half-written:

- ``pid``/``since``/``done``/``total`` while a writer holds it: who writes, since when, how far it has come;
- ``writes``, a counter every writer bumps when it takes the lock and again when it lets go, so a process that
  opened the store earlier can tell that another process has written since (Chroma's embedded client caches
  the vector segment per process and fails on ids it has not seen: the reader must reconnect).

A second writer waits (``wait=None``: as long as it takes; ``wait=0``: not at all) and calls ``on_wait`` with a
``StoreBusy`` about once a ``poll``; when its time is up it gets ``StoreBusyError``, which carries the same
``StoreBusy``. ``wait_for_store`` is the same wait for a process that only wants to read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llmrec.errors import IndexStoreError

log = logging.getLogger(__name__)

WIDTH = 256  # bytes of the padded state line
POLL_S = 0.5
LOG_EVERY_S = 30.0


@dataclass(frozen=True)
class StoreBusy:
    """Another writer holds a store: who, since when, how far it has come, and how long the caller has waited."""

    store: str
    pid: int | None = None
    since: float | None = None  # time.time() when the writer took the lock
    done: int | None = None  # items written so far by the writer (when it reports them)
    total: int | None = None
    waited_s: float = 0.0

    def message(self) -> str:
        """One line for a log, a status bar or an error."""
        parts = [f"pid {self.pid}"] if self.pid else []
        if self.since is not None:
            parts.append(f"writing for {max(0.0, time.time() - self.since):.0f} s")
        if self.total:
            parts.append(f"{self.done or 0:,} of {self.total:,} items done")
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"store {self.store} is being written by another process{detail}; waited {self.waited_s:.0f} s"


class StoreBusyError(IndexStoreError):
    """The store stayed busy longer than the caller was willing to wait; ``busy`` says who holds it."""

    def __init__(self, busy: StoreBusy, fix: str) -> None:
        super().__init__(f"{busy.message()}: {fix}")
        self.busy = busy


OnWait = Callable[[StoreBusy], None]


@dataclass(frozen=True)
class LockState:
    """What the lock file says (read without the lock, so only a hint; the flock itself is the truth)."""

    writes: int = 0
    pid: int | None = None
    since: float | None = None
    done: int | None = None
    total: int | None = None


def read_state(lock_path: Path) -> LockState:
    """The lock file's state; an absent, empty or foreign file (an old bare pid) reads as mostly empty."""
    try:
        raw = lock_path.read_bytes()[: WIDTH * 2].decode("ascii", errors="replace").strip()
    except OSError:
        return LockState()
    if raw.isdigit():  # the format before the JSON line: just the holder's pid
        return LockState(pid=int(raw))
    try:
        data = json.loads(raw) if raw else {}
        return LockState(int(data.get("writes", 0)), _int(data.get("pid")), _float(data.get("since")),
                         _int(data.get("done")), _int(data.get("total")))  # fmt: skip
    except (ValueError, TypeError, AttributeError):
        return LockState()


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _write_state(fd: int, state: LockState) -> None:
    data = {"writes": state.writes, "pid": state.pid, "since": state.since, "done": state.done, "total": state.total}
    line = json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":")).encode("ascii")
    os.pwrite(fd, line.ljust(WIDTH - 1) + b"\n", 0)


# Locks this process holds, by lock file, with the thread holding each: waiting on oneself would never end.
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()
# Write counts this process made itself, by lock file: a reader need not reconnect after its own writes.
_OWN_WRITES: dict[str, set[int]] = {}


def own_writes(lock_path: Path) -> set[int]:
    """The ``writes`` values this process itself produced on ``lock_path``."""
    with _HELD_LOCK:
        return set(_OWN_WRITES.get(str(lock_path), ()))


class WriterLock:
    """Held by the writer for the duration of its work; ``progress`` tells waiting processes how far it is."""

    def __init__(self, fd: int, state: LockState) -> None:
        self._fd = fd
        self.state = state

    def progress(self, done: int, total: int) -> None:
        self.state = LockState(self.state.writes, self.state.pid, self.state.since, int(done), int(total))
        _write_state(self._fd, self.state)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _waiter(lock_path: Path, store: str, wait: float | None, on_wait: OnWait | None, poll: float, fix: str):
    """A callable run once per failed attempt: reports the wait, raises when time is up or waiting is futile."""
    started = time.monotonic()
    last_log = [-LOG_EVERY_S]

    def waited_once() -> StoreBusy:
        state = read_state(lock_path)
        waited = time.monotonic() - started
        busy = StoreBusy(store, state.pid, state.since, state.done, state.total, waited)
        with _HELD_LOCK:
            holder_thread = _HELD.get(str(lock_path))
        if holder_thread == threading.get_ident():
            raise StoreBusyError(busy, "this thread already holds the lock (nested writes); finish the first one")
        if wait is not None and waited >= wait:
            raise StoreBusyError(busy, fix)
        if waited - last_log[0] >= LOG_EVERY_S:
            last_log[0] = waited
            log.warning("%s; waiting for it to finish", busy.message())
        if on_wait is not None:
            on_wait(busy)
        time.sleep(poll if wait is None else max(0.0, min(poll, wait - waited)))
        return busy

    return waited_once


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, store: str, wait: float | None = None, on_wait: OnWait | None = None,
                   poll: float = POLL_S) -> Iterator[WriterLock]:  # fmt: skip
    """Hold the store's writer lock, waiting for another writer first (see the module docstring)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    key = str(lock_path)
    try:
        waited_once = _waiter(lock_path, store, wait, on_wait, poll,
                              "wait for it to finish and run the command again")  # fmt: skip
        while not _try_lock(fd):
            waited_once()
        with _HELD_LOCK:
            _HELD[key] = threading.get_ident()
        before = read_state(lock_path)
        held = LockState(before.writes + 1, os.getpid(), time.time())
        _write_state(fd, held)
        _note_own(key, held.writes)
        writer = WriterLock(fd, held)
        try:
            yield writer
        finally:
            done = LockState(held.writes + 1)
            _write_state(fd, done)
            _note_own(key, done.writes)
            with _HELD_LOCK:
                _HELD.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _note_own(key: str, writes: int) -> None:
    with _HELD_LOCK:
        _OWN_WRITES.setdefault(key, set()).add(writes)


def holder(lock_path: Path) -> StoreBusy | None:
    """Who holds the lock right now (None when nobody does); takes and drops the lock to find out."""
    if not lock_path.is_file():
        return None
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
    finally:
        os.close(fd)
    state = read_state(lock_path)
    return StoreBusy(str(lock_path.parent), state.pid, state.since, state.done, state.total)


def wait_for_writer(lock_path: Path, store: str, wait: float | None = None, on_wait: OnWait | None = None,
                    poll: float = POLL_S) -> StoreBusy | None:  # fmt: skip
    """Return once no writer holds the lock; the last ``StoreBusy`` seen, or None when there was no wait."""
    waited_once = _waiter(lock_path, store, wait, on_wait, poll, "try again once it has finished")
    last = None
    while holder(lock_path) is not None:
        with _HELD_LOCK:
            mine = _HELD.get(str(lock_path)) is not None
        if mine:  # this process is the writer (another thread builds): readers take no lock, go ahead
            return last
        last = waited_once()
    if last is not None:
        log.info("store %s is free again after %.0f s", store, last.waited_s)
    return last
