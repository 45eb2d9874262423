"""The dashboard's page and files: our own modules, and the npm packages they import.

    web/index.html ──(+ import map)──► GET /            (CSP names the import map's hash)
    web/app/**      ─────────────────► GET /app/<path>   (our ES modules and CSS)
    web/node_modules/<package>/** ───► GET /vendor/<package>/<path>  (pinned by the lockfile)

There is no bundler: the browser loads ES modules as they are, and an import map turns
bare names (`preact`, `@xterm/xterm`) into `/vendor/...` paths. The import map has to be
inline (browsers do not load it from a file), and so is the small boot watchdog
(`app/boot.js`); the Content-Security-Policy allows exactly those two scripts by their
SHA-256 and nothing else inline: a label or log line that smuggles markup into the page
still cannot run script.

`make install` runs `npm ci` in `web/`; without it the page says so instead of breaking.
Paths are resolved inside their root and limited to a few file types, so `..` or a
symlink cannot serve anything else from the machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

WEB_DIR = Path(__file__).with_name("web")

IMPORT_MAP: dict[str, str] = {
    "preact": "/vendor/preact/dist/preact.mjs",
    "preact/hooks": "/vendor/preact/hooks/dist/hooks.mjs",
    "htm": "/vendor/htm/dist/htm.mjs",
    "htm/preact": "/vendor/htm/preact/index.mjs",
    "@xterm/xterm": "/vendor/@xterm/xterm/lib/xterm.mjs",
    "@xterm/addon-fit": "/vendor/@xterm/addon-fit/lib/addon-fit.mjs",
    "js-yaml": "/vendor/js-yaml/dist/js-yaml.mjs",
}
"""Bare module names → files of the packages in web/package.json."""

VENDOR_PACKAGES = ("preact", "htm", "@xterm/xterm", "@xterm/addon-fit", "js-yaml")
"""Only these packages' folders are served under /vendor/."""

_PRELOAD = ("preact", "preact/hooks", "htm", "htm/preact")
"""Fetched in parallel with main.js instead of after it: they are on the first paint's path."""

CONTENT_TYPES = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
    ".map": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
    ".woff2": "font/woff2", ".json": "application/json",
}


class NotInstalled(Exception):
    """The npm packages are missing: `make install` was not run."""


@dataclass(frozen=True)
class Page:
    html: bytes
    script_hashes: tuple[str, ...]
    """`'sha256-…'` of each inline script (the boot watchdog, the import map), for the CSP."""


def _inline_script(text: str, *, kind: str = "") -> tuple[str, str]:
    """`<script>` markup for `text` and its CSP hash source."""
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    type_attr = f' type="{kind}"' if kind else ""
    return f"<script{type_attr}>{text}</script>", f"'sha256-{digest}'"


def build_page(web_dir: Path = WEB_DIR) -> Page:
    """index.html with the import map (and module preloads) put in its place."""
    missing = [name for name in VENDOR_PACKAGES
               if not (web_dir / "node_modules" / name / "package.json").is_file()]
    if missing:
        raise NotInstalled(f"the dashboard's front-end packages are not installed "
                           f"({', '.join(missing)}): run `make install`")
    import_map, map_hash = _inline_script(json.dumps({"imports": IMPORT_MAP},
                                                     separators=(",", ":")), kind="importmap")
    # Inline, not a file: the watchdog must not be one more request that a network
    # change can abort (app/boot.js says why it exists).
    boot, boot_hash = _inline_script((web_dir / "app" / "boot.js").read_text())
    preloads = "".join(f'<link rel="modulepreload" href="{IMPORT_MAP[name]}">\n'
                       for name in _PRELOAD)
    html = ((web_dir / "index.html").read_text()
            .replace("<!--boot-->", boot, 1)
            .replace("<!--importmap-->", f"{import_map}\n{preloads}", 1))
    return Page(html=html.encode(), script_hashes=(boot_hash, map_hash))


def content_security_policy(page: Page) -> str:
    # style-src allows inline styles because xterm.js's renderer writes a <style>
    # element for its colours and cell sizes; scripts stay limited to our origin and the
    # import map. connect-src 'self' covers fetch and the same-host WebSocket.
    return "; ".join((
        "default-src 'none'",
        f"script-src 'self' {' '.join(page.script_hashes)}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def resolve_app_file(relative: str, web_dir: Path = WEB_DIR) -> Path | None:
    """`/app/<relative>` → a file of web/app, or None."""
    return _inside(web_dir / "app", relative)


def resolve_vendor_file(relative: str, web_dir: Path = WEB_DIR) -> Path | None:
    """`/vendor/<package>/<path>` → a file of an allowed npm package, or None."""
    for package in VENDOR_PACKAGES:
        prefix = package + "/"
        if relative.startswith(prefix):
            return _inside(web_dir / "node_modules" / package, relative[len(prefix):])
    return None


def _inside(root: Path, relative: str) -> Path | None:
    if not relative or "\x00" in relative or Path(relative).suffix not in CONTENT_TYPES:
        return None
    try:
        base = root.resolve(strict=True)
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path
