"""`miniorch version`: the client's version, and the server's `/version` unless
`--client`.

The version is the package's constant, not `importlib.metadata` (~10 ms of email
parsing per run); pyproject.toml carries the same string. A module of its own so that
`version --client` imports neither the HTTP client nor the other verbs: it is the
floor of the CLI's start-up (python's start, argparse, this).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from miniorch import __version__
from miniorch.cli.context import Context
from miniorch.cli.errors import CliError
from miniorch.cli.printers import to_json, to_yaml

Obj = dict[str, Any]


def cmd_version(ctx: Context, a: argparse.Namespace) -> int:
    mine = __version__
    info: Obj = {"clientVersion": {"gitVersion": f"v{mine}", "platform": sys.platform}}
    server_error: CliError | None = None
    if not a.client:
        try:
            info["serverVersion"] = ctx.client.get("/version")
        except CliError as exc:
            server_error = exc
    if a.output in ("json", "yaml"):
        ctx.out(to_json(info) if a.output == "json" else to_yaml(info))
    else:
        ctx.out(f"Client Version: v{mine}\n")
        if "serverVersion" in info:
            ctx.out(f"Server Version: {info['serverVersion'].get('gitVersion', '')}\n")
    if server_error is not None:
        raise server_error
    return 0
