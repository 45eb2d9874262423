"""The dashboard: a live web UI for the cluster, served by an actor of the cluster process.

    server.py   the actor: a loopback HTTP site; login, session and origin checks
    login.py    one-time login links (minted by the CLI) and session cookies
    proxy.py    the page's requests and WebSockets forwarded to the API server
    assets.py   the page, our ES modules (web/app/) and the npm packages (web/node_modules/)
    web/        the front end itself: Preact + htm modules, no build step

Importing this package is cheap (the CLI reads the running dashboard's address from
here); the aiohttp site loads only with `server`.
"""

from __future__ import annotations

from pathlib import Path


def read_dashboard_url(dashboard_file: Path) -> str | None:
    """The running cluster's dashboard address (`Settings.dashboard_file`), if written."""
    try:
        text = dashboard_file.read_text().strip()
    except OSError:
        return None
    return text or None
