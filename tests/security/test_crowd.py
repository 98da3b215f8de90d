"""Case 6, a crowd: with a slow model, the app answers "busy, try again" in seconds rather than keeping people
waiting for minutes, one session's burst cannot starve the others, and the greeting and "Why?" stay instant while
model calls run. The model is the fake pipeline's, made slow (each recommendation holds the model lock for a
set time), so the figures do not depend on the machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio_client
import pytest
from ui_server import RunningApp, running_app

from .helpers import cards, is_busy, said

pytestmark = pytest.mark.network

MODEL_S = 1.0  # what one recommendation costs here


def slow_factory(seconds: list[float]) -> Callable[[], Any]:
    """The fake pipeline; each recommendation holds the model lock for ``seconds[0]`` s (tests change it)."""

    def factory() -> Any:
        from fixtures_catalog import fake_recommender

        rec = fake_recommender(explainer={"kind": "template"})
        recommend = rec.recommend

        def slow(*args: Any, **kwargs: Any) -> Any:
            with rec.lock:
                time.sleep(seconds[0])
                return recommend(*args, **kwargs)

        rec.recommend = slow
        return rec

    return factory


@pytest.fixture(scope="module")
def model_time() -> list[float]:
    return [MODEL_S]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_time: list[float]) -> Iterator[RunningApp]:
    from ui.app import AppSettings

    settings = {}
    if "limits" in AppSettings.__dataclass_fields__:  # (an app without limits: the tests show what a crowd finds)
        from ui.limits import Limits

        settings["limits"] = Limits(slots=1, max_waiting=3, max_wait_s=3.0, per_session=1, per_minute=100)
    with running_app(tmp_path_factory.mktemp("crowd") / "profiles.sqlite", slow_factory(model_time),
                     **settings) as running:  # fmt: skip
        yield running


def start(url: str) -> tuple[Any, Callable[[str], tuple]]:
    """A new browser session that said it likes animation, and its ``send``, on the app's API (or the old one,
    which took the id and the history)."""
    client = gradio_client.Client(url, verbose=False)
    try:
        client.predict(api_name="/start")

        def send(message: str) -> tuple:
            return client.predict(message, api_name="/send")
    except TypeError:
        first = client.predict("", api_name="/start")
        state = {"user": first[0], "history": first[1]}

        def send(message: str) -> tuple:
            out = client.predict(message, state["history"], state["user"], api_name="/send")
            state["history"] = out[2]
            return out

    send("Animation")
    return client, send


def timed(call: Callable[[], tuple]) -> tuple[float, str, tuple]:
    began = time.perf_counter()
    out = call()
    return time.perf_counter() - began, (said(out) or [""])[-1], out


def together(calls: list[Callable[[], tuple]]) -> list[tuple[float, str, tuple]]:
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        try:
            results[n] = timed(calls[n])
        except Exception as exc:
            results[n] = (float("nan"), f"error {type(exc).__name__}: {exc}", ())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_a_crowd_hears_busy_in_seconds_not_minutes(server: RunningApp) -> None:
    sessions = [start(server.url) for _ in range(8)]
    results = together([lambda s=send: s("Just recommend") for _, send in sessions])
    replies = [reply for _, reply, _ in results]
    assert not any(r.startswith("error") or "went wrong" in r for r in replies), replies
    busy = [t for t, reply, _ in results if is_busy(reply)]
    answered = [t for t, reply, _ in results if not is_busy(reply)]
    assert busy, f"8 sessions on one slow model and nobody heard 'busy': {replies}"
    assert answered, "nobody was answered"
    assert max(busy) < 3.0 + 2 * MODEL_S + 2.0, f"a busy answer took {max(busy):.1f} s"
    assert max(answered) < (1 + 3) * MODEL_S + 3.0, f"an answer took {max(answered):.1f} s"


def test_one_sessions_burst_does_not_starve_another(server: RunningApp) -> None:
    _, burst = start(server.url)
    _, other = start(server.url)
    calls = [lambda: burst("Just recommend") for _ in range(6)]
    results = together([*calls, lambda: other("Just recommend")])
    mine, theirs = results[:6], results[6]
    assert sum(is_busy(reply) for _, reply, _ in mine) >= 4, [r for _, r, _ in mine]
    assert not is_busy(theirs[1]) and cards(theirs[2]), theirs[1]
    assert theirs[0] < 3 * MODEL_S + 2.0, f"the other session waited {theirs[0]:.1f} s behind the burst"


def test_the_greeting_and_why_stay_instant_while_models_run(server: RunningApp, model_time: list[float]) -> None:
    client, send = start(server.url)
    shown = cards(send("Just recommend"))
    assert shown
    model_time[0] = 4.0
    try:
        slow_sessions = [start(server.url)[1] for _ in range(5)]
        results: list[Any] = []
        threads = [threading.Thread(target=lambda s=s: results.append(timed(lambda: s("Just recommend"))))
                   for s in slow_sessions]  # fmt: skip
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the model is busy now, and more sessions wait for it
        newcomer = gradio_client.Client(server.url, verbose=False)
        try:
            greeting, _, _ = timed(lambda: newcomer.predict(api_name="/start"))
        except TypeError:  # the old API took the user id
            greeting, _, _ = timed(lambda: newcomer.predict("", api_name="/start"))
        try:
            why, reply, _ = timed(lambda: client.predict(shown[0]["item_id"], "why", api_name="/act"))
        except TypeError:  # the old API
            why, reply = 0.0, "I recommended"
        for thread in threads:
            thread.join(timeout=120)
    finally:
        model_time[0] = MODEL_S
    assert greeting < 2.5, f"the greeting took {greeting:.1f} s while the model was busy"
    assert why < 2.5 and reply.startswith("I recommended"), (why, reply)


def test_the_door_refuses_at_once_when_the_wait_would_be_too_long() -> None:
    from ui.limits import Admission, Busy, Limits

    door = Admission(Limits(slots=1, max_waiting=4, max_wait_s=1.0, per_session=1, per_minute=100))
    entered = threading.Event()

    def hold() -> None:
        with door.enter("holder"):
            entered.set()
            time.sleep(2.5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(5)
    began = time.perf_counter()
    with pytest.raises(Busy), door.enter("first"):  # waits its 1 s, then hears busy
        pass
    assert 0.8 < time.perf_counter() - began < 2.0
    time.sleep(0.3)  # the running call is older than max_wait_s now: the next one is told at once
    began = time.perf_counter()
    with pytest.raises(Busy, match="busy"), door.enter("second"):
        pass
    assert time.perf_counter() - began < 0.3
    with pytest.raises(Busy, match="previous request"), door.enter("holder"):  # one call at a time per session
        pass
    holder.join()
    with door.enter("second"):  # free again
        pass
    assert door.refused == 3
