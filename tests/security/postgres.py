"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` binaries (``make postgres`` installs them),
one cluster in a temporary folder, listening on 127.0.0.1 and a free port, trust authentication, no fsync.

Run as root (CI containers), ``initdb`` refuses to start, so the server runs as the ``postgres`` system user that
Debian's package creates, in a folder it owns. ``pgserver`` (PyPI) would do the same but, run as root, creates a
system user of its own and widens the permissions of every folder above its data; the distribution's server is
already how the browser tests get Chromium.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

INSTALL = "install it with `make postgres` (Debian: apt-get install -y postgresql) and `pip install 'psycopg[binary]'`"


def bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: the newest /usr/lib/postgresql/N/bin, else the PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if
                   p.parts[-3].isdigit() else 0)  # fmt: skip
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A running server for the block; yields its URL (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
    binaries = bindir()
    if binaries is None:
        raise RuntimeError(f"no PostgreSQL server binaries found: {INSTALL}")
    folder = Path(tempfile.mkdtemp(prefix="llmrec-pg-"))
    run_as: dict = {}
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(f"running as root needs the 'postgres' system user: {INSTALL}") from None
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    data, port = folder / "data", _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": str(folder)}

    def run(*args: str) -> None:
        subprocess.run([str(binaries / args[0]), *args[1:]], check=True, capture_output=True, env=env, cwd=folder,
                       timeout=120, **run_as)  # fmt: skip

    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -F -c fsync=off -c full_page_writes=off", "start")  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
