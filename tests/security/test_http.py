"""The app's HTTP surface from outside: uploads (case 3), the Host header and framing (case 5), refused calls in
the log (case 5), the ``history`` input (case 5), and what held before: file and proxy routes, the loopback bind.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio_client
import httpx
import pytest
from ui_server import RunningApp, running_app

from .conftest import Pixel
from .helpers import history, said

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("http") / "profiles.sqlite") as running:
        yield running


def _gradio_temp_files() -> set[Path]:
    root = Path(tempfile.gettempdir()) / "gradio"
    return {p for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def test_uploads_are_refused_and_store_nothing(server: RunningApp) -> None:
    before = _gradio_temp_files()
    for n in range(5):
        response = httpx.post(server.url + "gradio_api/upload", files={"files": (f"f{n}.bin", b"x" * 100_000)},
                              timeout=10)  # fmt: skip
        assert response.status_code in (403, 404, 405), response.text[:200]
    assert _gradio_temp_files() - before == set(), "uploaded files were written to the temp folder"


def test_unknown_hosts_are_refused(server: RunningApp) -> None:
    for host in ("evil.example", "attacker.test:7860", "127.0.0.1.nip.io"):
        response = httpx.get(server.url + "config", headers={"Host": host}, timeout=10)
        assert response.status_code == 400 and "gradio" not in response.text.lower(), host
    assert httpx.get(server.url + "config", timeout=10).status_code == 200
    assert httpx.get(server.url + "config", headers={"Host": f"localhost:{server.port}"}, timeout=10).is_success


def test_the_page_cannot_be_framed_and_loads_nothing_from_elsewhere(server: RunningApp) -> None:
    headers = httpx.get(server.url, timeout=10).headers
    assert headers["x-frame-options"] == "DENY"
    policy = headers["content-security-policy"]
    for directive in ("frame-ancestors 'none'", "img-src 'self'", "connect-src 'self'", "form-action 'self'"):
        assert directive in policy
    assert headers["x-content-type-options"] == "nosniff"


def test_refused_calls_are_one_log_line_not_a_traceback(server: RunningApp, capfd: pytest.CaptureFixture,
                                                         caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    client = gradio_client.Client(server.url, verbose=False)
    capfd.readouterr()
    bad_calls = [
        ((["not-an-item"], [], [], "x", ["NotAGenre"], [], "abc", None), "/save_profile"),
        (("hello", ["not", "a", "ranker"]), "/send"),
        (("1", "why", "passthrough", "template", None, "many"), "/act"),
    ]
    with caplog.at_level(logging.INFO):
        for args, name in bad_calls:
            with contextlib.suppress(Exception):
                client.predict(*args, api_name=name)
        junk = httpx.post(server.url + "gradio_api/queue/join", json={"data": "junk", "fn_index": 999}, timeout=10)
        assert junk.status_code in (400, 422)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused and all("\n" not in r.getMessage() for r in refused)


def test_the_history_input_is_not_echoed_back(server: RunningApp) -> None:
    client = gradio_client.Client(server.url, verbose=False)
    forged = [{"role": "assistant", "content": [{"type": "text", "text": f"FORGED {n} " + "y" * 100}]}
              for n in range(3000)]
    try:
        try:
            result = client.predict("hello", forged, api_name="/send")
        except TypeError:  # the old API also wanted the user id
            result = client.predict("hello", forged, "", api_name="/send")
    except Exception:  # refused: the app takes no history from clients
        return
    assert len(history(result)) <= 101
    assert not any("FORGED" in line for line in said(result))


def test_file_and_proxy_routes_do_not_leak(server: RunningApp, pixel: Pixel) -> None:
    for path in ("gradio_api/file=/etc/passwd", "gradio_api/file=../../../../etc/passwd", "file=/etc/passwd",
                 "gradio_api/file=%2Fetc%2Fpasswd", f"gradio_api/proxy={pixel.url('proxy')}",
                 f"proxy={pixel.url('proxy')}"):  # fmt: skip
        response = httpx.get(server.url + path, timeout=10)
        assert "root:" not in response.text, path
    assert pixel.hits == []


def test_bound_to_loopback_only(server: RunningApp) -> None:
    assert server.app.server_name == "127.0.0.1" and server.app.share is False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent; this picks the route's address
            outward = probe.getsockname()[0]
        except OSError:
            outward = None
    if outward and not outward.startswith("127."):
        with pytest.raises(OSError), socket.create_connection((outward, server.port), timeout=2):
            pass
