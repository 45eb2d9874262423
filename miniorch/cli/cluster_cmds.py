"""`up`, `down`, `dashboard`: thin adapters to `miniorch.cluster.commands`.

Imported only when one of these verbs runs: the cluster package pulls in anyio and
every actor, which `get pods` must not pay for.
"""

from __future__ import annotations

import argparse

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError
from miniorch.core.settings import Settings


def settings_from(ctx: Context, args: argparse.Namespace) -> Settings:
    nodes = int(getattr(args, "nodes", 3))
    port = int(getattr(args, "api_port", 6443))
    if nodes < 1:
        raise CliError(f"--nodes must be at least 1, got {nodes}")
    if not 0 < port < 65536:
        raise CliError(f"--api-port must be a TCP port, got {port}")
    return Settings(home=ctx.home, nodes=nodes, api_port=port,
                    demo=not getattr(args, "no_demo", False))


def cmd_up(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.cluster import commands

    return commands.up(settings_from(ctx, args), detach=bool(args.detach))


def cmd_down(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.cluster import commands

    return commands.down(settings_from(ctx, args))


def cmd_dashboard(ctx: Context, args: argparse.Namespace) -> int:
    """The dashboard is served by the API server at /dashboard/: print (and open) it."""
    url = f"{ctx.config.server}/dashboard/"
    ctx.out(f"Dashboard: {url}\n")
    if not args.url:
        import contextlib
        import webbrowser

        with contextlib.suppress(webbrowser.Error):
            webbrowser.open(url)
    return 0
