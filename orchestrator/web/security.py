"""Who may use the web board, and how a request shows it was not forged by another site.

- **Where it listens.** Loopback by default, where no token is asked for; but only requests
  naming the server by a loopback name (``Host: 127.0.0.1:PORT``, ``localhost:PORT``) are
  answered, so a web page whose own name resolves to 127.0.0.1 (DNS rebinding) reads nothing.
- **A token elsewhere.** On any other address every request needs the board's token, as a
  bearer (``Authorization: Bearer TOKEN``) or through a session cookie the login page gives.
  The token is made once and printed once by `kanban serve`; the board keeps only its hash.
- **Forgery.** A state-changing request is refused when the browser says it comes from another
  site (``Sec-Fetch-Site``) or another origin (``Origin``). A form must also carry the
  session's CSRF token; a JSON request must be ``application/json``, which no other site can
  send here without a CORS preflight that this server never grants. A bearer request needs
  neither: browsers never add that header on their own.
- **Headers.** Every answer forbids framing, sniffing and any script but the board's own file
  (a Content-Security-Policy), so even text that slipped through escaping could not run.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from board import fencing

SESSION_COOKIE = "kanban_session"
CSRF_COOKIE = "kanban_csrf"
CSRF_FIELD = "csrf"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = ("/login", "/static/")
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
# Pages and data are never cached (they change live); assets are named by their content.
NO_STORE = (b"cache-control", b"no-store")
CACHED = (b"cache-control", b"max-age=86400")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: only this machine can connect."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Stored like a run's token: its SHA-256 (`board.fencing.token_hash`)."""
    return fencing.token_hash(token)


def loopback_hosts(port: int) -> frozenset[str]:
    """The Host headers a loopback server answers."""
    return frozenset(
        f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]", "localhost.")
    ) | frozenset({"127.0.0.1", "localhost"} if port == 80 else set())


@dataclasses.dataclass
class Session:
    csrf: str
    expires: float


class Sessions:
    """Logged-in browsers, in memory: a restarted server asks for the token again."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def create(self) -> tuple[str, Session]:
        now = time.time()
        self._by_id = {k: s for k, s in self._by_id.items() if s.expires > now}
        sid = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(24), expires=now + SESSION_SECONDS)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None or session.expires < time.time():
            self._by_id.pop(sid, None)
            return None
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)


@dataclasses.dataclass(frozen=True)
class Policy:
    """`token_hash`: None when no token is needed (loopback). `hosts`: the Host headers
    answered (None: any, as a server on another address cannot know its names)."""

    token_hash: str | None
    hosts: frozenset[str] | None


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def cookies(header: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name and name not in found:
            found[name] = value
    return found


def bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Guard:
    """ASGI middleware: the host, the token and cross-site checks, and the security headers.

    It leaves in ``scope["state"]``: ``kanban_auth`` (``"loopback"``, ``"bearer"`` or
    ``"session"``) and ``kanban_session`` (the `Session`, if any), for the CSRF check of forms.
    """

    def __init__(self, app: Any, policy: Policy, sessions: Sessions) -> None:
        self.app = app
        self.policy = policy
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope["path"]
        caching = CACHED if path.startswith("/static/") else NO_STORE

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS, caching]
            await send(message)

        headers = _headers(scope)
        api = path.startswith("/api/")
        host = headers.get("host", "")
        if self.policy.hosts is not None and host.lower() not in self.policy.hosts:
            await _refuse(
                send_with_headers,
                api=True,
                status=421,
                message=f"this server does not answer for the host {host!r}; "
                "open it as http://127.0.0.1:PORT/",
            )
            return
        auth, session = self._who(headers)
        if auth is None and not path.startswith(PUBLIC_PATHS):
            if api or path == "/events" or scope["method"] not in SAFE_METHODS:
                await _refuse(
                    send_with_headers,
                    api=True,
                    status=401,
                    message="the web board's token is needed: send it as "
                    "`Authorization: Bearer TOKEN`, or log in at /login",
                )
            else:
                query = scope.get("query_string", b"").decode("latin-1")
                wanted = path + (f"?{query}" if query else "")
                target = "/login?" + urllib.parse.urlencode({"next": wanted})
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 303,
                        "headers": [(b"location", target.encode()), (b"content-length", b"0")],
                    }
                )
                await send_with_headers({"type": "http.response.body", "body": b""})
            return
        if scope["method"] not in SAFE_METHODS:
            refusal = forged(headers, scheme=scope.get("scheme", "http"), api=api, auth=auth)
            if refusal is not None:
                status, message = refusal
                await _refuse(send_with_headers, api=api, status=status, message=message)
                return
        state = scope.setdefault("state", {})
        state["kanban_auth"] = auth
        state["kanban_session"] = session
        await self.app(scope, receive, send_with_headers)

    def _who(self, headers: dict[str, str]) -> tuple[str | None, Session | None]:
        session = self.sessions.get(cookies(headers.get("cookie", "")).get(SESSION_COOKIE))
        token = bearer(headers)
        if self.policy.token_hash is None:
            return "loopback", session
        if token is not None and fencing.token_matches(self.policy.token_hash, token):
            return "bearer", None
        if session is not None:
            return "session", session
        return None, None


def forged(
    headers: dict[str, str], *, scheme: str, api: bool, auth: str | None
) -> tuple[int, str] | None:
    """Why a state-changing request is refused as cross-site, or None (forms' own CSRF token
    is checked where the form is read: `csrf_ok`)."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return 403, f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = headers.get("origin")
    if origin is not None and origin != f"{scheme}://{headers.get('host', '')}":
        return 403, f"cross-origin request refused (Origin: {origin})"
    if api and auth != "bearer":
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return 415, "the API takes JSON: send Content-Type: application/json"
    return None


def csrf_expected(state: Any, request_cookies: dict[str, str]) -> str | None:
    """The CSRF token a form must carry: its session's, else the double-submit cookie's."""
    session: Session | None = getattr(state, "kanban_session", None)
    if session is not None:
        return session.csrf
    return request_cookies.get(CSRF_COOKIE) or None


def csrf_ok(state: Any, request_cookies: dict[str, str], given: object) -> bool:
    if getattr(state, "kanban_auth", None) == "bearer":
        return True
    expected = csrf_expected(state, request_cookies)
    return (
        expected is not None
        and isinstance(given, str)
        and secrets.compare_digest(expected.encode(), given.encode())
    )


async def _refuse(send: Send, *, api: bool, status: int, message: str) -> None:
    if api:
        body = json.dumps({"error": message}).encode()
        kind = b"application/json"
    else:
        from orchestrator.web import html

        body = html.refusal(status, message).encode()
        kind = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
