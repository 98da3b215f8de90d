"""An optional login for multi-user deployments: a file of users with salted, slow password hashes.

One user per line, ``name:pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` (``#`` starts a comment). Make a
line with ``python -m ui.auth NAME`` (it asks for the password). ``load_users`` returns the check Gradio's login
calls; a logged-in user's profile follows them to any browser. PBKDF2-HMAC-SHA256 with 600,000 iterations is
OWASP's current advice for it; the standard library's ``hashlib`` computes it and ``hmac.compare_digest`` compares.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from llmrec.errors import ConfigError

ITERATIONS = 600_000
LINE = re.compile(r"(?P<name>[^:\s]{1,64}):pbkdf2_sha256\$(?P<n>\d{4,8})\$(?P<salt>[0-9a-f]{16,64})"
                  r"\$(?P<hash>[0-9a-f]{64})")


def password_hash(password: str, salt: str | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def load_users(path: Path) -> Callable[[str, str], bool]:
    """The login check for the users in ``path`` (a one-line error naming the bad line when it is malformed)."""
    if not path.is_file():
        raise ConfigError(f"users file {path} not found; make lines for it with `python -m ui.auth NAME`")
    users: dict[str, tuple[int, str, str]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"{path}, line {number}: expected NAME:pbkdf2_sha256$..., made by `python -m ui.auth "
                              "NAME`")  # fmt: skip
        users[match["name"]] = (int(match["n"]), match["salt"], match["hash"])
    if not users:
        raise ConfigError(f"users file {path} lists nobody; add lines made by `python -m ui.auth NAME`")

    def check(name: str, password: str) -> bool:
        known = users.get(name)
        if known is None:
            password_hash(password, "00" * 16, ITERATIONS)  # the same work, so timing does not tell who exists
            return False
        iterations, salt, digest = known
        return hmac.compare_digest(password_hash(password, salt, iterations).rsplit("$", 1)[1], digest)

    return check


def main() -> None:
    import getpass

    if len(sys.argv) != 2 or not re.fullmatch(r"[^:\s]{1,64}", sys.argv[1]):
        sys.stderr.write("usage: python -m ui.auth NAME   (prints a line for the users file)\n")
        sys.exit(2)
    password = getpass.getpass(f"password for {sys.argv[1]}: ")
    if len(password) < 8 or getpass.getpass("again: ") != password:
        sys.stderr.write("passwords must match and have at least 8 characters\n")
        sys.exit(2)
    sys.stdout.write(f"{sys.argv[1]}:{password_hash(password)}\n")


if __name__ == "__main__":
    main()
