"""The dashboard's own refusals as Kubernetes `Status` objects.

The page handles every failure the way it handles the API's (one error shape, with
`reason` and `message`), whether it came from the API server or from the dashboard in
front of it (no session, another origin, the API unreachable).
"""

from __future__ import annotations

from aiohttp import web


def status_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": message, "reason": reason,
                              "code": code}, status=code)
