"""Which path a new connection takes: the HTTP/1 proxy or the byte splice.

    Service port appProtocol ──mode_for()──► HTTP | TCP | None (not said: sniff)
    first bytes the client sent ──classify()──► HTTP | TCP | None (need more bytes)

Invariants:
- Only a complete HTTP/1.0 or HTTP/1.1 request line makes a connection HTTP. A TLS
  ClientHello (0x16), the HTTP/2 preface (`PRI * HTTP/2.0`), a binary protocol, or a
  client that sends nothing within the sniff timeout (server-speaks-first protocols:
  SMTP, MySQL, Redis banners) are spliced untouched — never answered by the proxy.
- classify() decides as early as the bytes allow: the first byte that cannot belong to
  a request line settles it as TCP, so binary protocols are not delayed.
"""

from __future__ import annotations

import re
from enum import Enum


class Mode(Enum):
    HTTP = "http"
    TCP = "tcp"


SNIFF_TIMEOUT_SECONDS = 0.3
"""How long a new connection may stay silent before it is taken for a protocol whose
server speaks first, and spliced."""
MAX_REQUEST_LINE = 8192
"""A request line longer than this is not taken for HTTP (nginx's default buffer)."""

_HTTP_APP_PROTOCOLS = frozenset({"http", "kubernetes.io/ws"})
"""appProtocol values served by the HTTP/1 path (WebSocket starts as an HTTP/1 request).
Everything else named (`tcp`, `https`, `kubernetes.io/h2c`, `kubernetes.io/wss`, `grpc`,
`redis`, ...) is spliced: we cannot terminate it, so we pass it through."""

_REQUEST_LINE = re.compile(rb"[A-Z]{1,20} [\x21-\x7e]+ HTTP/1\.[01]\r?\n")
_PARTIAL = re.compile(rb"[A-Z]{0,20}( [\x21-\x7e]*( (H(T(T(P(/(1(\.([01]\r?)?)?)?)?)?)?)?)?)?)?")


def mode_for(app_protocol: str | None) -> Mode | None:
    """The mode a Service port's `appProtocol` asks for; None: sniff."""
    if not app_protocol:
        return None
    return Mode.HTTP if app_protocol.lower() in _HTTP_APP_PROTOCOLS else Mode.TCP


def classify(data: bytes) -> Mode | None:
    """HTTP once `data` holds an HTTP/1.x request line, TCP as soon as it cannot be one,
    None while it still might be (wait for more bytes, up to the sniff timeout)."""
    if not data:
        return None
    if _REQUEST_LINE.match(data):
        return Mode.HTTP
    if len(data) > MAX_REQUEST_LINE:
        return Mode.TCP
    partial = _PARTIAL.match(data)
    if partial is not None and partial.end() == len(data):
        return None  # a prefix of a request line so far
    return Mode.TCP
