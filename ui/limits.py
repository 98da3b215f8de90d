"""Fair shares of the model for many sessions: per-session limits and a bounded wait that answers "busy".

The models run one call at a time (the recommender holds a lock), so a crowd queues behind it. ``Admission`` is
the door in front of that queue: a session has at most ``per_session`` model calls in flight and at most
``per_minute`` turns a minute; calls wait in arrival order, at most ``max_waiting`` of them, and none longer than
``max_wait_s``. A call whose expected wait (the calls ahead of it times the recent average call, or the age of the
call running now when that is longer) is already longer than ``max_wait_s`` is refused at once rather than after
waiting in vain. A refused call raises ``Busy``, so a user hears "busy, try again" in seconds instead of waiting
minutes, and one user's burst cannot push everyone else back. Re-entrant per thread: a turn that recommends twice
(a relaxed second try) passes the door once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from llmrec.errors import LlmrecError

log = logging.getLogger(__name__)


class Busy(LlmrecError):
    """The app cannot take this call now; the message says what to do (wait a moment and try again)."""


@dataclass(frozen=True)
class Limits:
    slots: int = 1  # model calls running at once (the recommender serialises them anyway)
    max_waiting: int = 16  # calls waiting behind them; more are refused at once
    max_wait_s: float = 20.0  # no call waits longer than this for its turn
    per_session: int = 1  # model calls one session may have in flight
    per_minute: int = 30  # turns one session may start a minute


class Admission:
    """The door in front of the model (see the module docstring)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._running = 0
        self._in_flight: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}
        self._local = threading.local()
        self._average_s: float | None = None  # recent model call time (an exponential average)
        self._started: list[float] = []  # when the calls running now began
        self.refused = 0

    def check_rate(self, key: str) -> None:
        """Count a turn of ``key``; ``Busy`` when it started more than ``per_minute`` in the last minute."""
        now = time.monotonic()
        with self._cond:
            recent = self._recent.setdefault(key, deque())
            while recent and now - recent[0] > 60:
                recent.popleft()
            if len(recent) >= self.limits.per_minute:
                self._refuse(key, "turn rate")
                raise Busy("You're sending messages faster than I can answer; wait a few seconds and try again.")
            recent.append(now)
            if len(self._recent) > 4096:  # forget idle sessions
                for stale in [k for k, q in self._recent.items() if not q or now - q[-1] > 60][:2048]:
                    del self._recent[stale]

    @contextlib.contextmanager
    def enter(self, key: str, max_wait_s: float | None = None) -> Iterator[None]:
        """Hold a model slot for ``key`` while the block runs; ``Busy`` when the door refuses."""
        depth = getattr(self._local, "depth", 0)
        if depth:  # already inside: a nested call of the same turn
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        wait = self.limits.max_wait_s if max_wait_s is None else max_wait_s
        ticket = object()
        with self._cond:
            if self._in_flight.get(key, 0) >= self.limits.per_session:
                self._refuse(key, "one call at a time")
                raise Busy("I'm still working on your previous request; one moment, then try again.")
            ahead = len(self._queue) + self._running
            running_s = time.monotonic() - min(self._started) if self._started else 0.0
            typical = max(self._average_s or 0.0, running_s)  # a call running for long says calls are slow now
            expected = ahead * typical / self.limits.slots
            if len(self._queue) >= self.limits.max_waiting or expected > wait:
                self._refuse(key, f"{len(self._queue)} waiting, about {expected:.0f} s")
                raise Busy("I'm busy with other people's requests right now; please try again in a moment.")
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            self._queue.append(ticket)
            deadline = time.monotonic() + wait
            try:
                while self._queue[0] is not ticket or self._running >= self.limits.slots:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._refuse(key, f"waited {wait:.0f} s")
                        raise Busy("I'm busy with other people's requests right now; please try again in a moment.")
                    self._cond.wait(left)
            except BaseException:
                self._queue.remove(ticket)
                self._release_key(key)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._running += 1
            began = time.monotonic()
            self._started.append(began)
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            took = time.monotonic() - began
            with self._cond:
                self._average_s = took if self._average_s is None else 0.7 * self._average_s + 0.3 * took
                self._started.remove(began)
                self._running -= 1
                self._release_key(key)
                self._cond.notify_all()

    def _release_key(self, key: str) -> None:
        left = self._in_flight.get(key, 1) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    def _refuse(self, key: str, why: str) -> None:
        self.refused += 1
        log.info("busy: refused a call of session %s (%s)", key[:12], why)

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)
