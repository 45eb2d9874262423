"""`up`, `down`, `dashboard`: thin adapters to `miniorch.cluster.commands`.

Imported only when one of these verbs runs: the cluster package pulls in anyio and
every actor, which `get pods` must not pay for.
"""

from __future__ import annotations

import argparse

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError
from miniorch.core.settings import NetworkSettings, Settings


def settings_from(ctx: Context, args: argparse.Namespace) -> Settings:
    nodes = int(getattr(args, "nodes", 3))
    port = int(getattr(args, "api_port", 6443))
    if nodes < 1:
        raise CliError(f"--nodes must be at least 1, got {nodes}")
    if not 0 < port < 65536:
        raise CliError(f"--api-port must be a TCP port, got {port}")
    return Settings(home=ctx.home, nodes=nodes, api_port=port,
                    demo=not getattr(args, "no_demo", False),
                    sandbox_mode=str(getattr(args, "sandbox_mode", None) or "auto"),
                    network=_network_from(args))


def _network_from(args: argparse.Namespace) -> NetworkSettings:
    """`up --lb-cidr/--service-cidr/--node-port-range` (two clusters of one machine,
    e.g. tests beside a user's cluster, need disjoint ranges)."""
    import ipaddress

    changes: dict[str, object] = {}
    for flag, field in (("lb_cidr", "loadbalancer_cidr"), ("service_cidr", "service_cidr")):
        value = getattr(args, flag, None)
        if value:
            try:
                ipaddress.IPv4Network(value)
            except ValueError as exc:
                raise CliError(f"--{flag.replace('_', '-')}: {exc}") from None
            changes[field] = value
    ports = getattr(args, "node_port_range", None)
    if ports:
        low, sep, high = str(ports).partition("-")
        if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) < 65536):
            raise CliError(f"--node-port-range must be LOW-HIGH, got {ports!r}")
        changes["node_port_range"] = (int(low), int(high))
    return NetworkSettings(**changes)  # type: ignore[arg-type]


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
