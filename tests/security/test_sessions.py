"""Case 2: users cannot be impersonated. Through ``gradio_client``, as the issue's attacker did.

Who a request speaks for comes from the signed session cookie the app issues (or the login), never from a value
the client sends: a client that sends another user's id, a chosen id or a forged cookie gets a new session of its
own, and nothing it does reaches the other user's profile. No key that protects sessions is served to clients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio_client
import httpx
import pytest
from ui_server import RunningApp, running_app

from .helpers import COOKIE, said

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("sessions") / "profiles.sqlite") as running:
        yield running


def victim(server: RunningApp) -> tuple[str, Any]:
    """A user who told the app something private; returns (their user id, their client)."""
    client = gradio_client.Client(server.url, verbose=False)
    try:
        started = client.predict(api_name="/start")
    except Exception:  # the old API took the user id as its first parameter
        started = client.predict("", api_name="/start")
    if isinstance(started[0], str) and started[0].startswith("web-"):  # ... and returned it
        client.predict("My secret: I love Alien (1979)", started[1], started[0], api_name="/send")
        return started[0], client
    client.predict("My secret: I love Alien (1979)", api_name="/send")
    return "web-" + client.cookies[COOKIE].split(".")[0], client


def test_another_users_id_gets_a_new_session(server: RunningApp) -> None:
    uid, _ = victim(server)
    store = server.app.llmrec_service.store
    before = store.load(uid)
    assert before is not None
    sid = uid.removeprefix("web-")
    attempts = [
        {},  # the id as the endpoint's first parameter (where the old API took it)
        {"cookies": {COOKIE: sid}},  # the id as the session cookie, unsigned
        {"cookies": {COOKIE: f"{sid}.{'0' * 64}"}},  # with a made-up signature
        {"cookies": {COOKIE: uid}},
    ]
    for options in attempts:
        attacker = gradio_client.Client(server.url, verbose=False, httpx_kwargs=dict(options))
        try:
            seen = attacker.predict(uid, api_name="/start")
        except Exception:  # refused outright is fine too: the call did not reach the user
            continue
        assert not any("My secret" in line for line in said(seen)), f"{options}: saw the victim's transcript"
        with contextlib.suppress(Exception):
            attacker.predict(uid, api_name="/forget")
    assert store.load(uid) == before, "the victim's profile was changed by someone else"
    assert any("My secret" in t.text for t in store.turns(uid))


def test_a_client_cannot_choose_its_id(server: RunningApp) -> None:
    chosen = "web-0000000000000000"
    client = gradio_client.Client(server.url, verbose=False, httpx_kwargs={"cookies": {COOKIE: chosen[4:]}})
    try:
        result = client.predict(chosen, api_name="/start")
    except Exception:  # refused outright is fine too
        result = None
    assert result is None or result[0] != chosen, "the app took the id the client chose"
    with contextlib.suppress(Exception):
        client.predict("remember me", api_name="/send")
    assert server.app.llmrec_service.store.load(chosen) is None
    assert not any(u.startswith("web-0000") for u in server.app.llmrec_service.store.users())


def test_no_session_key_is_served_to_clients(server: RunningApp) -> None:
    config = httpx.get(server.url + "config", timeout=10).text
    assert '"secret"' not in config and "browserstate" not in config.lower()
    secret = getattr(getattr(server.app, "llmrec_settings", None), "session_secret", None)
    assert not secret or secret not in config


def test_the_session_cookie_is_signed_http_only_and_same_site(server: RunningApp) -> None:
    response = httpx.get(server.url, timeout=10)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    sid, _, mac = value.partition(".")
    assert len(sid) == 32 and len(mac) == 64
    kept = httpx.get(server.url, cookies={COOKIE: value}, timeout=10)
    assert "set-cookie" not in kept.headers, "a valid session is kept"
    tampered = httpx.get(server.url, cookies={COOKIE: f"{sid}.{mac[::-1]}"}, timeout=10)
    assert tampered.headers["set-cookie"].split(";")[0] != f"{COOKIE}={value}", "a tampered one is replaced"


@pytest.fixture(scope="module")
def login_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    from ui.auth import load_users, password_hash

    folder = tmp_path_factory.mktemp("login")
    users = folder / "users.txt"
    users.write_text(f"alice:{password_hash('alice-password', iterations=10_000)}\n"
                     f"bob:{password_hash('bob-password', iterations=10_000)}\n")  # fmt: skip
    with running_app(folder / "profiles.sqlite", auth=load_users(users)) as running:
        yield running


def test_a_login_binds_the_profile_to_the_user(login_server: RunningApp) -> None:
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError):
        gradio_client.Client(login_server.url, verbose=False)
    with pytest.raises((AuthenticationError, ValueError), match=r"login|credentials"):
        gradio_client.Client(login_server.url, verbose=False, auth=("alice", "wrong"))
    alice = gradio_client.Client(login_server.url, verbose=False, auth=("alice", "alice-password"))
    alice.predict(api_name="/start")
    alice.predict("Alice's secret: I love Heat", api_name="/send")
    again = gradio_client.Client(login_server.url, verbose=False, auth=("alice", "alice-password"))
    assert any("Alice's secret" in line for line in said(again.predict(api_name="/start"))), "her other browser"
    bob = gradio_client.Client(login_server.url, verbose=False, auth=("bob", "bob-password"))
    assert not any("Alice's secret" in line for line in said(bob.predict(api_name="/start")))
    store = login_server.app.llmrec_service.store
    assert "login-alice" in store.users()
    assert any("Alice's secret" in t.text for t in store.turns("login-alice"))


def test_a_users_file_is_checked(tmp_path: Path) -> None:
    from llmrec.errors import ConfigError
    from ui.auth import load_users, password_hash

    good = tmp_path / "users.txt"
    good.write_text(f"# people\ncarol:{password_hash('pw-carol-1', iterations=10_000)}\n")
    check = load_users(good)
    assert check("carol", "pw-carol-1") and not check("carol", "nope") and not check("dave", "pw-carol-1")
    bad = tmp_path / "bad.txt"
    bad.write_text("carol:plaintext\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_users(bad)
