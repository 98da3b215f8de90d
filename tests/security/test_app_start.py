"""The app and another process writing the vector store (issue 15 item 4, the app's side; an availability case):
while another process builds the index the app says it is waiting, answers at once instead of hanging, and
recovers by itself, without a restart. On the fixture catalogue with the fakes (``tests/data/fake-models.toml``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gradio_client
import httpx
import pytest
from ui_server import free_port, running_app

from .helpers import cards, said

pytestmark = pytest.mark.network

TESTS = Path(__file__).resolve().parents[1]
TINY = TESTS / "data" / "tiny-movies"
FAKE = TESTS / "data" / "fake-models.toml"
HOLDER = """
import sys
from pathlib import Path
from llmrec.index.lock import exclusive_lock
path = Path(sys.argv[1])
with exclusive_lock(path, str(path.parent)) as lock:
    lock.progress(12, 40)
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def onboard(url: str) -> tuple:
    client = gradio_client.Client(url, verbose=False)
    client.predict(api_name="/start")
    client.predict("Animation", api_name="/send")
    return client.predict("Just recommend", api_name="/send")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the fixture store's writer lock, 12 of 40 items done, until the test lets go."""
    from llmrec.index.chroma import LOCK_NAME

    lock = tmp_path / "cache" / "stores" / "tiny-movies-hashing-256" / LOCK_NAME
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_the_app_waits_for_another_writer_says_so_and_recovers(tmp_path: Path, writer: subprocess.Popen) -> None:
    from llmrec.config import load_config
    from llmrec.pipeline import Recommender

    config = load_config(FAKE).updated(data={"dataset": str(TINY)}, cache_dir=tmp_path / "cache")
    with running_app(tmp_path / "profiles.sqlite", lambda: Recommender(config), wait_ready=False,
                     ready_wait_s=2.0) as running:  # fmt: skip
        service = running.app.llmrec_service
        deadline = time.monotonic() + 60
        while service.status()[1] != "waiting" and time.monotonic() < deadline:
            time.sleep(0.2)
        stage, state = service.status()
        assert state == "waiting" and "12 of 40" in stage, (stage, state)
        pill = httpx.get(running.url + "config", timeout=10).text
        assert "Waiting for another process" in pill or state == "waiting"
        began = time.perf_counter()
        out = onboard(running.url)
        assert time.perf_counter() - began < 20, "a turn hung while the store was being written"
        assert "getting ready" in said(out)[-1] and not cards(out)
        writer.stdin.close()  # the other process finishes
        writer.wait(timeout=30)
        assert service.ready.wait(120) and service.status()[1] == "ready", service.status()
        out = onboard(running.url)
        assert cards(out), said(out)[-1]


def test_index_and_app_started_together_on_an_empty_cache_end_with_a_working_app(tmp_path: Path) -> None:
    cache, port = tmp_path / "cache", free_port()
    common = ["--cache-dir", str(cache)]
    log_path = tmp_path / "app.log"
    app = subprocess.Popen([sys.executable, "-m", "llmrec.cli", "ui", str(TINY), "--config", str(FAKE), "--port",
                            str(port), *common], stdout=log_path.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    index = subprocess.Popen([sys.executable, "-m", "llmrec.cli", "index", str(TINY), "--embedder", "hashing-256",
                              *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "config", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        out, err = index.communicate(timeout=300)
        assert index.returncode == 0 and "40 in the store" in out, err[-800:]
        for _ in range(60):  # the app may still be loading: it answers "getting ready" meanwhile
            result = onboard(url)
            if cards(result):
                break
            assert "getting ready" in said(result)[-1] or "Have you seen" in said(result)[-1], said(result)[-1]
            time.sleep(1)
        assert cards(result), said(result)[-1]
    finally:
        app.terminate()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
        index.kill()
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-2000:]
