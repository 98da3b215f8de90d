"""HTTP hardening in front of the Gradio app: one ASGI middleware that every request passes.

- **Host allow-list**: a request whose ``Host`` is not one of the app's names is refused (DNS rebinding cannot
  reach the app through an attacker's domain).
- **Uploads off**: the app takes no files, so Gradio's upload routes answer 403 (they would otherwise store any
  file from anyone in the temp folder).
- **Session identity**: each browser or API client gets a random 128-bit id in an HttpOnly cookie signed with
  the server's secret (HMAC-SHA256). The id is never a parameter a client chooses; a missing, forged or tampered
  cookie is replaced by a new session of its own before the request reaches Gradio, so the handlers always read
  a valid one (``session_id``).
- **Headers**: no framing (``X-Frame-Options``, CSP ``frame-ancestors``), a content policy that loads and sends
  nothing to other origins (images, fetches, forms), ``nosniff`` and no referrer. Gradio's page needs inline
  scripts and ``eval`` (``gr.HTML`` renders through ``new Function``), so the policy cannot forbid scripts; it
  is a second wall behind the escaping in ``ui.render``, not the first.

Every refusal is one log line (``refused ...``), never a traceback. Written here rather than composed from
Starlette's ``TrustedHostMiddleware`` and ``SessionMiddleware`` because those neither log refusals nor let the
session id be injected into the request the queued event handlers see; the signing itself is the standard
library's ``hmac``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger("ui.guard")

COOKIE = "llmrec-session"
COOKIE_AGE_S = 365 * 24 * 3600
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
UPLOAD_PATH = re.compile(r"/upload(_progress)?/?$")
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SessionSigner:
    """Issues and checks session cookies: ``<32 hex id>.<HMAC-SHA256 of the id>``."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 characters")
        self._key = secret.encode("utf-8")

    def _mac(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self) -> tuple[str, str]:
        """A new session: ``(id, cookie value)``."""
        sid = secrets.token_hex(16)
        return sid, f"{sid}.{self._mac(sid)}"

    def verify(self, value: str | None) -> str | None:
        """The session id in a cookie value, or None when it is missing, malformed or not signed by this server."""
        sid, _, mac = (value or "").partition(".")
        if len(sid) != 32 or not re.fullmatch(r"[0-9a-f]{32}", sid):
            return None
        return sid if hmac.compare_digest(mac, self._mac(sid)) else None


def read_cookie(header: str, name: str = COOKIE) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def host_name(value: str) -> str:
    """The name in a ``Host`` header without its port (``[::1]:7860`` -> ``::1``), lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names the app answers to: loopback, the address it is bound to (unless a wildcard) and ``extra``."""
    names = set(LOOPBACK) | {h.strip().lower() for h in extra if h.strip()}
    if bound and bound not in ("0.0.0.0", "::"):
        names.add(bound.lower())
    return frozenset(names)


class Guard:
    """The ASGI middleware (see the module docstring); ``hosts`` containing ``*`` turns the Host check off."""

    def __init__(self, app: Callable, signer: SessionSigner, hosts: frozenset[str] = LOOPBACK) -> None:
        self.app = app
        self.signer = signer
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = host_name(headers.get("host", ""))
        if "*" not in self.hosts and host not in self.hosts:
            await self._refuse(scope, send, 400, f"Host {headers.get('host', '')[:80]!r} is not allowed")
            return
        if scope["type"] == "http" and UPLOAD_PATH.search(scope.get("path", "")):
            await self._refuse(scope, send, 403, "uploads are off")
            return
        cookie = read_cookie(headers.get("cookie", ""))
        new_cookie = None
        if self.signer.verify(cookie) is None:
            if cookie is not None:
                self._log(scope, "an invalid session cookie (a new session was issued)")
            _, new_cookie = self.signer.issue()
            scope = dict(scope, headers=_with_cookie(scope.get("headers", []), new_cookie))
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if new_cookie is not None:
                    extra.append((b"set-cookie", _set_cookie(new_cookie, secure)))
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _log(scope: Scope, reason: str) -> None:
        client = scope.get("client") or ("?", 0)
        log.warning("refused %s %s from %s: %s", scope.get("method", "WS"), scope.get("path", "")[:120], client[0],
                    reason)  # fmt: skip

    async def _refuse(self, scope: Scope, send: Send, status: int, reason: str) -> None:
        self._log(scope, reason)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = f"refused: {reason}\n".encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def _with_cookie(headers: list[tuple[bytes, bytes]], value: str) -> list[tuple[bytes, bytes]]:
    """The request's headers with our cookie set to ``value`` (other cookies, e.g. Gradio's login, kept)."""
    others = []
    for key, raw in headers:
        if key.lower() == b"cookie":
            others += [p.strip() for p in raw.decode("latin-1").split(";") if p.strip()
                       and p.strip().partition("=")[0] != COOKIE]  # fmt: skip
    rest = [(k, v) for k, v in headers if k.lower() != b"cookie"]
    return [*rest, (b"cookie", "; ".join([*others, f"{COOKIE}={value}"]).encode("latin-1"))]


def _set_cookie(value: str, secure: bool) -> bytes:
    text = f"{COOKIE}={value}; Path=/; Max-Age={COOKIE_AGE_S}; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    return text.encode("latin-1")


def session_id(cookies: dict[str, str] | None, signer: SessionSigner) -> str | None:
    """The verified session id in a request's cookies (None when the middleware did not run)."""
    return signer.verify((cookies or {}).get(COOKIE))
