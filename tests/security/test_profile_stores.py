"""Scale-out of user state: profiles and transcripts behind one store interface, SQLite and PostgreSQL, held to
the same promises; two processes updating one profile at once lose nothing; the app runs on PostgreSQL.

The PostgreSQL server is a real one the tests start (``tests/security/postgres.py``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import gradio_client
import pytest
from ui_server import running_app

from llmrec.chat.store import StaleStateError, open_profile_store
from llmrec.errors import LlmrecError

from .helpers import cards, said
from .postgres import INSTALL, postgres_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail(f"the PostgreSQL tests need psycopg: {INSTALL}")
    with postgres_server() as url:
        yield url


def fresh_database(url: str, tmp_path: Path) -> str:
    """A new, empty database on the test server, named after the test's folder; its URL."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name.lower())[:40]
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file, or a fresh database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "profiles.sqlite")
    return fresh_database(request.getfixturevalue("postgres_url"), tmp_path)


def test_the_store_contract(location: str) -> None:
    store = open_profile_store(location)
    assert store.load("alice") is None and store.users() == []
    assert store.save("alice", {"liked": ["1"]}, None) == 1
    with pytest.raises(StaleStateError):
        store.save("alice", {"liked": ["2"]}, None)  # written by someone else since
    with pytest.raises(StaleStateError):
        store.save("alice", {"liked": ["2"]}, 7)
    assert store.save("alice", {"liked": ["1", "2"], "note": "é ✓ 🎬"}, 1) == 2
    loaded = store.load("alice")
    assert (loaded.version, loaded.data) == (2, {"liked": ["1", "2"], "note": "é ✓ 🎬"})
    store.save("bob", {"liked": []}, None)
    for n in range(5):
        store.append_turn("alice", "user" if n % 2 == 0 else "assistant", f"turn {n}")
    store.append_turn("bob", "user", "bob's words")
    store.append_turn("alice", "user", "bad \ud800 text")  # stored, not failed
    last = [t.text for t in store.turns("alice", limit=3)]
    assert last[:2] == ["turn 3", "turn 4"] and last[2].startswith("bad ") and "\ud800" not in last[2]
    assert [t.text for t in store.turns("bob")] == ["bob's words"]
    assert store.users() == ["alice", "bob"]
    assert store.forget("alice") == 1 + 6
    assert store.load("alice") is None and store.turns("alice") == [] and store.users() == ["bob"]
    assert store.load("bob") is not None


WORKER = textwrap.dedent("""
    import sys
    from llmrec.chat.store import StaleStateError, open_profile_store

    store, name, rounds = open_profile_store(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    retries = 0
    for n in range(rounds):
        while True:  # read, change, write if nobody wrote since (else read again): what Conversation does
            stored = store.load("shared")
            data = dict(stored.data) if stored else {"count": 0, "by": []}
            data["count"] += 1
            data["by"] = data["by"] + [f"{name}-{n}"]
            try:
                store.save("shared", data, stored.version if stored else None)
                break
            except StaleStateError:
                retries += 1
    print(retries)
""")


def test_two_processes_updating_one_profile_lose_nothing(location: str) -> None:
    rounds = 40
    open_profile_store(location)  # the schema exists before the race
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, location, name, str(rounds)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]  # fmt: skip
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-800:] for _, err in outputs]
    stored = open_profile_store(location).load("shared")
    assert stored.data["count"] == 2 * rounds and stored.version == 2 * rounds
    assert sorted(stored.data["by"]) == sorted(f"{w}-{n}" for w in "ab" for n in range(rounds))


CONVERSATION = textwrap.dedent("""
    import sys
    sys.path.insert(0, "tests")
    from fixtures_catalog import fake_recommender
    from llmrec.chat.engine import Conversation
    from llmrec.chat.store import StaleStateError, open_profile_store

    convo = Conversation(fake_recommender(explainer={"kind": "template"}), open_profile_store(sys.argv[1]), "web-two")
    for item in sys.argv[2].split(","):
        for _ in range(20):
            try:
                convo.feedback(item, "like")
                break
            except StaleStateError:  # the other process won every retry of this one: try the like again
                pass
""")


def test_two_app_processes_liking_for_one_user_keep_every_like(postgres_url: str, tmp_path: Path) -> None:
    location = fresh_database(postgres_url, tmp_path)
    mine, theirs = ["1", "2", "3", "4"], ["5", "6", "7", "8"]
    workers = [subprocess.Popen([sys.executable, "-c", CONVERSATION, location, ",".join(items)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for items in (mine, theirs)]  # fmt: skip
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-800:] for _, err in outputs]
    liked = open_profile_store(location).load("web-two").data["liked"]
    assert sorted(liked) == sorted(mine + theirs)


def test_bad_store_locations_are_one_line_errors(postgres_url: str) -> None:
    with pytest.raises(LlmrecError, match="not supported"):
        open_profile_store("mysql://x@y/z")
    dead = postgres_url.rsplit(":", 1)[0] + ":1/postgres"
    with pytest.raises(LlmrecError, match="unreachable") as error:
        open_profile_store(dead)
    assert "\n" not in str(error.value)


@pytest.mark.network
def test_the_app_serves_from_postgresql(postgres_url: str) -> None:
    with running_app(postgres_url) as running:
        client = gradio_client.Client(running.url, verbose=False)
        client.predict(api_name="/start")
        client.predict("Animation", api_name="/send")
        out = client.predict("Just recommend", api_name="/send")
        assert cards(out), said(out)[-1]
        store = open_profile_store(postgres_url)
        uid = "web-" + client.cookies["llmrec-session"].split(".")[0]
        assert store.load(uid) is not None and [t.text for t in store.turns(uid)][-2] == "Just recommend"
        client.predict(api_name="/forget")
        assert store.load(uid) is None and store.turns(uid) == []
