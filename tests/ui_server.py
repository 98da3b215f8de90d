"""Start the Gradio app on 127.0.0.1 and a free port, in this process, for the UI tests; and measure it under a
crowd (``python tests/ui_server.py --help``).

The app's API by name (every client is its own session, kept by the cookie the app issues):
``/start()``, ``/send(message)``, ``/act(item_id, kind)``, ``/save_profile(liked, ..., year_to)``, ``/forget()``,
each followed by the optional settings ``ranker, explainer, model, k, diversity``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ui.app import AppSettings, build_app, launch

log = logging.getLogger(__name__)

FIELDS = ("history", "cards", "chips", "notes", "liked", "disliked", "seen", "preferences", "wanted", "avoided",
          "year_from", "year_to")  # fmt: skip
BUSY = ("busy", "still working on your previous", "faster than I can answer", "still getting ready")


@dataclass(frozen=True)
class RunningApp:
    app: Any  # the gr.Blocks
    url: str
    port: int
    store_path: Path

    @property
    def service(self) -> Any:
        return self.app.llmrec_service


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(store_path: Path | str, factory: Callable[[], Any] | None = None, *, ready_timeout: float = 120.0,
                wait_ready: bool = True, **settings: Any) -> Iterator[RunningApp]:  # fmt: skip
    """The app on the fake pipeline (or ``factory``'s recommender), served until the block ends."""
    if factory is None:
        from fixtures_catalog import fake_recommender

        factory = fake_recommender
    options = {"dataset_label": "toy catalogue (tests)", "stream_delay": 0.0, **settings}
    app = build_app(factory, store_path, AppSettings(**options))
    port = free_port()
    url = launch(app, "127.0.0.1", port, block=False, quiet=True)
    try:
        service = app.llmrec_service
        deadline = time.monotonic() + ready_timeout
        while wait_ready and not service.ready.wait(0.2):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app's recommender was not ready within {ready_timeout:.0f} s")
        yield RunningApp(app, url, port, Path(str(store_path)))
    finally:
        app.close()


def view(result: Any, with_message: bool = False) -> dict[str, Any]:
    """The outputs of a chat endpoint by name (``/send`` returns the cleared message box first; ``/start`` and
    ``/forget`` one more output last)."""
    result = tuple(result)
    if with_message:
        result = result[1:]
    return dict(zip(FIELDS, result[: len(FIELDS)]))


def text(message: dict) -> str:
    """A chat message as the page shows it (the app sends escaped text)."""
    from ui.render import plain

    return plain(message["content"])


def wait_for_the_model(server_log: Path, started: float, timeout: float = 1800.0) -> float | None:
    """Seconds from the start until the app's language model had loaded (the app serves the classic pipeline
    until then, so the sessions are measured after it); None when the app goes on without it."""
    while time.perf_counter() - started < timeout:
        said = server_log.read_text(encoding="utf-8", errors="replace")
        if "language model ready" in said:
            return round(time.perf_counter() - started, 1)
        if "goes on without it" in said:
            return None
        time.sleep(1.0)
    raise RuntimeError(f"the language model did not load within {timeout:.0f} s; see {server_log}")


def is_busy(reply: str) -> bool:
    return any(mark in reply for mark in BUSY)


# -- measuring: `python tests/ui_server.py --help` (figures for docs/benchmarks/security.md) --------------------
def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


FREE_TEXT = ("I loved Alien and want something just as tense but newer", "something funny for a rainy evening",
             "a slow, beautiful film about space, nothing gory", "I like Pixar films, what else would I enjoy",
             "movies like Heat with a great heist", "a romantic comedy from the nineties",
             "I want to cry a bit, a moving drama", "an animated film my kids and I will both like")  # fmt: skip
FOLLOW_UPS = ("Just recommend", "something a bit older please", "less violent, and funnier")


def _session(url: str, opener: str, messages: int, timings: list[tuple[str, float, str]],
             follow_ups: tuple[str, ...] = FOLLOW_UPS) -> None:
    """One newcomer through the app's API: the greeting, then ``messages`` messages (a genre, then "Just
    recommend", then refinements). Each reply is timed twice, when its text is shown whole ("shown") and when the
    turn is over (the cards' sentences written: "send"), and classed ok / busy / error."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    started = time.perf_counter()
    try:
        client.predict(api_name="/start")
        timings.append(("start", time.perf_counter() - started, "ok"))
    except Exception as exc:
        timings.append(("start", time.perf_counter() - started, f"error {type(exc).__name__}"))
        return
    for message in [opener, *follow_ups][:messages]:
        started = time.perf_counter()
        shown = None
        try:
            job = client.submit(message, api_name="/send")
            for update in job:
                chat = view(update, with_message=True).get("history")
                said = text(chat[-1]) if isinstance(chat, list) and chat else ""
                if shown is None and said and said != "…" and not said.endswith("▍") and not said.startswith(
                        "One moment"):  # fmt: skip
                    shown = time.perf_counter() - started
            chat = view(job.result(), with_message=True).get("history")
            reply = text(chat[-1]) if isinstance(chat, list) and chat else ""
            outcome = "busy" if is_busy(reply) else ("error" if reply.startswith("Sorry") else "ok")
        except Exception as exc:
            outcome = f"error {type(exc).__name__}"
        took = time.perf_counter() - started
        timings.append(("shown", shown if shown is not None else took, outcome))
        timings.append(("send", took, outcome))


def _factory(args: Any) -> Callable[[], Any]:
    """The recommender to measure: the fake pipeline (each recommendation slowed by ``--model-delay``) or the real
    one for ``--dataset`` with the config's defaults unless ``--ranker``/``--explainer`` say otherwise."""
    if args.fake:
        from fixtures_catalog import fake_recommender

        def fake() -> Any:
            rec = fake_recommender(**({"ranker": {"kind": args.ranker}} if args.ranker else {}),
                                   **({"explainer": {"kind": args.explainer}} if args.explainer else {}))  # fmt: skip
            if args.model_delay > 0:  # a stand-in for the time a real model call takes, under the model lock
                recommend = rec.recommend

                def slow(*a: Any, **kw: Any) -> Any:
                    with rec.lock:
                        time.sleep(args.model_delay)
                        return recommend(*a, **kw)

                rec.recommend = slow
            return rec

        return fake
    from llmrec.config import RecommenderConfig
    from llmrec.pipeline import Recommender

    sections: dict[str, Any] = {"data": {"dataset": args.dataset, "data_dir": args.data_dir}}
    if args.ranker:
        sections["ranker"] = {"kind": args.ranker}
    if args.explainer:
        sections["explainer"] = {"kind": args.explainer}
    if args.understanding:
        sections["understanding"] = {"kind": args.understanding}
    config = RecommenderConfig().updated(**sections, cache_dir=args.cache_dir)
    return lambda: Recommender(config)


def serve(args: Any) -> None:
    """``--serve``: the app alone, in this process, with the app's default settings, until killed."""
    app = build_app(_factory(args), Path(args.store), AppSettings(dataset_label=args.dataset))
    launch(app, "127.0.0.1", args.port, block=True, quiet=True)


def measure(args: Any) -> dict[str, Any]:
    """Time to the first recommendations after the app starts, then ``sessions`` concurrent sessions of
    ``messages`` messages each: errors, busy answers, p50 / p95 reply time. The app runs in a process of its own
    (``--serve``), so the measuring clients do not share its interpreter."""
    import subprocess
    import sys
    import threading

    import httpx
    from gradio_client import Client

    port = free_port()
    command = [sys.executable, __file__, "--serve", "--port", str(port), "--store", args.store, "--dataset",
               args.dataset, "--model-delay", str(args.model_delay)]  # fmt: skip
    for flag, value in (("--data-dir", args.data_dir), ("--cache-dir", args.cache_dir), ("--ranker", args.ranker),
                        ("--explainer", args.explainer), ("--understanding", args.understanding)):  # fmt: skip
        if value:
            command += [flag, str(value)]
    command += ["--fake"] if args.fake else []
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(args.store + ".log", "w"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                if httpx.get(url + "config", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"the app exited; see {args.store}.log")
            time.sleep(0.5)
        client = Client(url, verbose=False)
        client.predict(api_name="/start")
        greeting = time.perf_counter() - started
        while True:  # the first load may still run: the app answers "getting ready" meanwhile
            client.predict("Sci-Fi", api_name="/send")
            out = view(client.predict("Just recommend", api_name="/send"), with_message=True)
            # busy, or the genre was answered "getting ready" and "Just recommend" came once it was: send both again
            if out["cards"] or time.perf_counter() - started > 1800:
                break
            time.sleep(2)
        first = time.perf_counter() - started
        assert out["cards"], f"no recommendations: {text(out['history'][-1])}"
        log.info("first recommendations %.1f s after start (greeting at %.1f s)", first, greeting)
        model_ready = wait_for_the_model(Path(args.store + ".log"), started)
        timings: list[tuple[str, float, str]] = []
        if args.free_text:  # sentences the language model reads (the chips' phrases are read by exact rules)
            openers, follow = list(FREE_TEXT), FOLLOW_UPS
        else:
            openers = ["Sci-Fi", "Comedy", "Drama", "Animation", "Thriller", "Romance", "Action", "Horror"]
            follow = ("Just recommend", "Something newer", "Recommend something")
        threads = [threading.Thread(target=_session, args=(url, openers[n % len(openers)], args.messages, timings,
                                                           follow)) for n in range(args.sessions)]  # fmt: skip
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
    finally:
        server.terminate()
        server.wait(timeout=60)
    shown = [t for kind, t, _ in timings if kind == "shown"]
    replies = [t for kind, t, _ in timings if kind == "send"]
    outcomes = [o for kind, _, o in timings if kind == "send"]
    answered = [t for kind, t, o in timings if kind == "send" and o == "ok"]
    failed_starts = sum(o != "ok" for kind, _, o in timings if kind == "start")
    return {"fake": args.fake, "model_delay_s": args.model_delay if args.fake else None,
            "messages": "free text" if args.free_text else "chip phrases",
            "ranker": args.ranker or "config default", "explainer": args.explainer or "config default",
            "understanding": args.understanding or "config default",
            "greeting_s": round(greeting, 2), "first_recommendations_s": round(first, 2),
            "model_ready_s": model_ready, "sessions": args.sessions,
            "messages_per_session": args.messages, "replies": len(replies),
            "errors": sum(o.startswith("error") for o in outcomes) + failed_starts,
            "busy": outcomes.count("busy"), "busy_share": round(outcomes.count("busy") / max(1, len(outcomes)), 3),
            "p50_s": round(_percentile(replies, 50), 3), "p95_s": round(_percentile(replies, 95), 3),
            "max_s": round(max(replies, default=float("nan")), 3),
            "reply_shown_p50_s": round(_percentile(shown, 50), 3),
            "reply_shown_p95_s": round(_percentile(shown, 95), 3),
            "answered_p50_s": round(_percentile(answered, 50), 3),
            "answered_p95_s": round(_percentile(answered, 95), 3),
            "start_p95_s": round(_percentile([t for k, t, _ in timings if k == "start"], 95), 3),
            "concurrent_wall_s": round(wall, 2)}  # fmt: skip


def main() -> None:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="Measure the app: first recommendations, then a crowd of sessions.")
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--store", default="/tmp/llmrec-ui-bench.sqlite")
    parser.add_argument("--ranker", default=None, choices=["passthrough", "llm"], help="default: the config's")
    parser.add_argument("--explainer", default=None, choices=["template", "llm"], help="default: the config's")
    parser.add_argument("--understanding", default=None, choices=["rules", "hybrid", "llm"],
                        help="how messages are read; default: the config's")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--fake", action="store_true", help="the fake pipeline of the tests instead of real data")
    parser.add_argument("--model-delay", type=float, default=0.0, help="with --fake: seconds each model call takes")
    parser.add_argument("--free-text", action="store_true", help="sessions write sentences instead of chip phrases")
    parser.add_argument("--serve", action="store_true", help="only serve the app (what the measurement starts)")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.serve:
        serve(args)
        return
    sys.stdout.write(json.dumps(measure(args), indent=2) + "\n")


if __name__ == "__main__":
    main()
