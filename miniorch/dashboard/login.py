"""Who may use the dashboard: one-time login links traded for session cookies.

    miniorch dashboard (CLI) ── mint_login_token(api token) ──► http://127.0.0.1:P/?token=T
    browser GET /?token=T ──► LoginTokens.redeem(T) ──► Sessions.open() ──► Set-Cookie, 303 /
    every later request ──► Sessions.valid(cookie)

The link's token is not stored anywhere: it is `<expiry>.<nonce>.<mac>`, the MAC keyed
by a key derived from the cluster's API bearer token. Whoever can read the kubeconfig
(the person who started the cluster) can mint one; the dashboard, which holds the same
token to talk to the API, can check one. That needs no request from the CLI to the
cluster and no file of pending tokens. A token is good for one redemption (its nonce is
remembered until it expires) and for `LOGIN_TTL_SECONDS`, so a link that leaks into a
shell history or a screen share is worthless soon after.

Sessions live in the cluster process's memory: a restarted cluster asks for a new link.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOGIN_TTL_SECONDS = 120.0
"""How long a printed login link can be used (once)."""
SESSION_IDLE_SECONDS = 12 * 3600.0
"""A session unused this long ends (a working day; the cookie itself is a session cookie)."""
COOKIE_NAME = "miniorch_session"

_KEY_LABEL = b"miniorch dashboard login v1\x00"


def _login_key(api_token: str) -> bytes:
    # A derived key, so a login MAC never doubles as anything the API token signs.
    return hashlib.sha256(_KEY_LABEL + api_token.encode()).digest()


def _mac(key: bytes, expiry: int, nonce: str) -> str:
    return hmac.new(key, f"{expiry}.{nonce}".encode(), hashlib.sha256).hexdigest()


def mint_login_token(api_token: str, *, now: float | None = None,
                     ttl: float = LOGIN_TTL_SECONDS) -> str:
    """A one-time login token for the cluster whose API token is `api_token`."""
    expiry = int((time.time() if now is None else now) + ttl)
    nonce = secrets.token_urlsafe(16)
    return f"{expiry}.{nonce}.{_mac(_login_key(api_token), expiry, nonce)}"


@dataclass
class LoginTokens:
    """Checks login tokens and remembers the nonces already redeemed."""

    api_token: str
    clock: Callable[[], float] = time.time
    _redeemed: dict[str, float] = field(default_factory=dict)

    def redeem(self, token: str) -> bool:
        """True once for a well-formed, unexpired, authentic token; False otherwise."""
        now = self.clock()
        # Forget nonces whose tokens have expired anyway: the set stays small.
        for nonce, expiry in list(self._redeemed.items()):
            if expiry < now:
                del self._redeemed[nonce]
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or len(token) > 256:
            return False
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        expected = _mac(_login_key(self.api_token), expiry, nonce)
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return False
        # A token from the future beyond its TTL was not minted by our CLI's clock.
        if expiry < now or expiry > now + LOGIN_TTL_SECONDS + 60 or nonce in self._redeemed:
            return False
        self._redeemed[nonce] = float(expiry)
        return True


@dataclass
class Sessions:
    """Open sessions: random ids (the cookie's value) → when each was last used."""

    clock: Callable[[], float] = time.monotonic
    idle_seconds: float = SESSION_IDLE_SECONDS
    _last_used: dict[str, float] = field(default_factory=dict)

    def open(self) -> str:
        session = secrets.token_urlsafe(32)
        self._last_used[session] = self.clock()
        return session

    def valid(self, session: str | None) -> bool:
        """Whether `session` is open; using it keeps it open."""
        if not session:
            return False
        now = self.clock()
        last = self._last_used.get(session)
        if last is None:
            return False
        if now - last > self.idle_seconds:
            del self._last_used[session]
            return False
        self._last_used[session] = now
        return True

    def close(self, session: str) -> None:
        self._last_used.pop(session, None)
