"""Who may talk to the studio: its own host name, its own page, and the holder of its token.

A server on 127.0.0.1 is still reachable from any web page the user opens: that page may
send requests to it (a foreign Origin) or rename itself to point at 127.0.0.1 (DNS
rebinding, seen as a foreign Host header). So every request must name the server's own host,
a request that carries an Origin must come from the studio's own page, and with a token set
(for a non-loopback address) the request must carry it, in `?token=`, an
`Authorization: token ...` header, or the cookie the page gets when it is opened with the token.
Every response also gets headers that forbid inline scripts and content sniffing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "rnnlab_studio_token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SECURITY_HEADERS = [
    # Scripts and styles only from the studio's own files: data in the page can never run.
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
     b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    # The token may be in the page's address: it must not leak to other sites.
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def host_name(host: str) -> str:
    """The name in a Host header or an address without its port (brackets kept off IPv6)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware that refuses foreign hosts, foreign origins and missing tokens."""

    def __init__(self, app, allowed_hosts: Iterable[str], token: str | None = None) -> None:
        self.app = app
        self.allowed_hosts = {host_name(h) for h in allowed_hosts}
        self.token = token

    async def __call__(self, scope, receive, send) -> None:
        """Pass an allowed request on with the security headers; answer any other with 403."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal:
            await _refuse(send, *refusal)
            return
        from_query = self.token is not None and self._query_token(scope) == self.token

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if from_query:  # so the page's scripts, styles and requests carry it too
                    extra.append((b"set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; "
                                                 f"SameSite=Strict".encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused, else None."""
        host = headers.get("host", "")
        if host_name(host) not in self.allowed_hosts:
            return 403, "this server does not answer to that Host name"
        origin = headers.get("origin")
        if origin is not None and origin != f"{scope.get('scheme', 'http')}://{host}":
            return 403, "requests from other sites' pages are refused"
        if self.token is not None and not self._has_token(scope, headers):
            return 401, "this studio needs its access token: open the URL it printed"
        return None

    def _query_token(self, scope) -> str | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        return values[0] if values else None

    def _has_token(self, scope, headers: dict[str, str]) -> bool:
        offered = [self._query_token(scope)]
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("token "):
            offered.append(authorization[6:].strip())
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        if COOKIE in cookie:
            offered.append(cookie[COOKIE].value)
        return any(o is not None and secrets.compare_digest(o.encode(), self.token.encode())
                   for o in offered)


async def _refuse(send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
