"""download_file and fetch_zip_dataset against a throwaway HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmrec.data.download import GROUPLENS, download_file, fetch_zip_dataset
from llmrec.errors import ChecksumError, DataError, NetworkError
from llmrec.fileutil import sha256_file

SHARED_RATINGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-latest-small" / "ratings.csv"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, bytes] = {}
        self.hits: list[str] = []
        self.release = threading.Event()  # set at teardown so stalled handlers finish

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path == "/slow-headers":
            self.server.release.wait(10)
            return
        if self.path in ("/slow-body", "/short"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            if self.path == "/slow-body":
                self.server.release.wait(10)
            return
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.network
def test_download_file_streams_and_verifies(server: _Server, tmp_path: Path) -> None:
    body = b"hello, data\n" * 1000
    server.routes["/file.bin"] = body
    target = tmp_path / "sub" / "file.bin"
    assert download_file(server.url("/file.bin"), target, _sha(body), "test file") == target
    assert target.read_bytes() == body
    assert _leftovers(tmp_path / "sub") == ["file.bin"]


@pytest.mark.network
def test_checksum_mismatch_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    server.routes["/file.bin"] = b"tampered"
    with pytest.raises(ChecksumError, match=r"checksum mismatch for test file \(file\.bin .*retry"):
        download_file(server.url("/file.bin"), tmp_path / "file.bin", _sha(b"original"), "test file")
    assert _leftovers(tmp_path) == []


@pytest.mark.network
def test_http_404_names_url_and_fix(server: _Server, tmp_path: Path) -> None:
    url = server.url("/missing.zip")
    with pytest.raises(NetworkError, match=r"HTTP 404.*--data-dir") as info:
        download_file(url, tmp_path / "x.zip", None, "test file")
    assert url in str(info.value) and "\n" not in str(info.value)
    assert _leftovers(tmp_path) == []


@pytest.mark.network
def test_server_down(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NetworkError, match=rf"127\.0\.0\.1:{port}.*refused.*--data-dir"):
        download_file(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", None, "test file", timeout=2)
    assert _leftovers(tmp_path) == []


@pytest.mark.network
@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
def test_slow_server_times_out(server: _Server, tmp_path: Path, path: str) -> None:
    start = time.monotonic()
    with pytest.raises(NetworkError, match=r"no answer within 0\.3 s"):
        download_file(server.url(path), tmp_path / "x.bin", None, "test file", timeout=0.3)
    assert time.monotonic() - start < 5
    assert _leftovers(tmp_path) == []


@pytest.mark.network
def test_connection_closed_early(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"stopped after 10 of 100 bytes"):
        download_file(server.url("/short"), tmp_path / "x.bin", None, "test file")
    assert _leftovers(tmp_path) == []


@pytest.mark.network
def test_fetch_zip_dataset_unpacks_once(server: _Server, tmp_path: Path) -> None:
    archive = _zip({"toy/": b"", "toy/ratings.csv": b"u,i\n1,2\n", "toy/sub/movies.csv": b"i,t\n2,A\n"})
    server.routes["/toy.zip"] = archive
    check = ("ratings.csv", _sha(b"u,i\n1,2\n"))
    folder = fetch_zip_dataset(server.url("/toy.zip"), _sha(archive), tmp_path, "toy", "toy data", check=check)
    assert folder == tmp_path / "datasets" / "toy"
    assert (folder / "ratings.csv").read_bytes() == b"u,i\n1,2\n"
    assert (folder / "sub" / "movies.csv").is_file()
    assert (tmp_path / "downloads" / "toy.zip").is_file()
    assert fetch_zip_dataset(server.url("/toy.zip"), _sha(archive), tmp_path, "toy", "toy data") == folder
    assert server.hits == ["/toy.zip"]
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["toy"]


@pytest.mark.network
def test_fetch_zip_dataset_checksum_mismatch(server: _Server, tmp_path: Path) -> None:
    server.routes["/toy.zip"] = _zip({"toy/ratings.csv": b"1,2\n"})
    with pytest.raises(ChecksumError, match="toy data"):
        fetch_zip_dataset(server.url("/toy.zip"), _sha(b"other"), tmp_path, "toy", "toy data")
    assert _leftovers(tmp_path / "downloads") == []
    assert _leftovers(tmp_path / "datasets") == []


@pytest.mark.network
def test_fetch_zip_dataset_checks_member_after_unpacking(server: _Server, tmp_path: Path) -> None:
    server.routes["/toy.zip"] = _zip({"toy/ratings.csv": b"1,2\n"})
    with pytest.raises(ChecksumError, match=r"toy data ratings\.csv"):
        fetch_zip_dataset(server.url("/toy.zip"), None, tmp_path, "toy", "toy data", check=("ratings.csv", "0" * 64))
    assert _leftovers(tmp_path / "datasets") == []
    assert _leftovers(tmp_path / "downloads") == []  # the bad archive is not reused


@pytest.mark.network
@pytest.mark.parametrize("evil", ["../evil.txt", "toy/../../evil.txt", "/tmp/evil.txt"])
def test_zip_slip_rejected(server: _Server, tmp_path: Path, evil: str) -> None:
    server.routes["/toy.zip"] = _zip({"toy/ratings.csv": b"1,2\n", evil: b"pwned"})
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="unsafe path"):
        fetch_zip_dataset(server.url("/toy.zip"), None, cache, "toy", "toy data")
    assert _leftovers(cache / "datasets") == [] and _leftovers(cache / "downloads") == []
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


@pytest.mark.network
def test_not_a_zip(server: _Server, tmp_path: Path) -> None:
    server.routes["/toy.zip"] = b"<html>login page</html>"
    with pytest.raises(DataError, match="not a zip file"):
        fetch_zip_dataset(server.url("/toy.zip"), None, tmp_path, "toy", "toy data")
    assert _leftovers(tmp_path / "datasets") == []


def test_grouplens_table() -> None:
    assert set(GROUPLENS) == {"ml-latest-small", "ml-100k", "ml-1m"}
    for name, spec in GROUPLENS.items():
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert spec.folder == name
    member, digest = GROUPLENS["ml-latest-small"].check or ("", "")
    assert member == "ratings.csv" and digest.startswith("80da8b33") and digest.endswith("70e8")
    if SHARED_RATINGS.is_file():
        assert sha256_file(SHARED_RATINGS) == digest
