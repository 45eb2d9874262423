"""`up`, `down`, `dashboard`: thin adapters to `miniorch.cluster.commands`.

Imported only when one of these verbs runs: the cluster package pulls in anyio and
every actor, which `get pods` must not pay for.
"""

from __future__ import annotations

import argparse

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError
from miniorch.core.settings import DnsSettings, NetworkSettings, Settings


def settings_from(ctx: Context, args: argparse.Namespace) -> Settings:
    nodes = int(getattr(args, "nodes", 3))
    port = int(getattr(args, "api_port", 6443))
    dashboard_port = int(getattr(args, "dashboard_port", 6444))
    hollow = int(getattr(args, "hollow_nodes", 0) or 0)
    profile = str(getattr(args, "hollow_profile", None) or "")
    if nodes < 0 or hollow < 0 or nodes + hollow < 1:
        raise CliError(f"--nodes must be at least 1 (or 0 with --hollow-nodes), got {nodes}")
    if nodes + hollow > 254:
        # node N owns 10.244.N.0/24 and 127.0.1.N
        raise CliError(f"--nodes plus --hollow-nodes must be at most 254, got {nodes + hollow}")
    if profile:
        from miniorch.node.hollow import HollowProfile
        try:
            HollowProfile.parse(profile)
        except ValueError as exc:
            raise CliError(f"--hollow-profile: {exc}") from None
    if not 0 < port < 65536:
        raise CliError(f"--api-port must be a TCP port, got {port}")
    if not 0 <= dashboard_port < 65536 or dashboard_port == port:
        raise CliError(f"--dashboard-port must be a TCP port other than the API's, "
                       f"got {dashboard_port}")
    network = _network_from(args)
    return Settings(home=ctx.home, nodes=nodes, hollow_nodes=hollow, hollow_profile=profile,
                    api_port=port, dashboard_port=dashboard_port,
                    demo=not getattr(args, "no_demo", False),
                    sandbox_mode=str(getattr(args, "sandbox_mode", None) or "auto"),
                    network=network, dns=_dns_from(args, network))


def _dns_from(args: argparse.Namespace, network: NetworkSettings) -> DnsSettings:
    """kube-dns' ClusterIP is the service CIDR's .10 (as kubeadm's default); `up
    --dns-upstream IP[:PORT]...` replaces the host's resolvers (`none`: no forwarding)."""
    import ipaddress

    service_ip = str(ipaddress.ip_network(network.service_cidr).network_address + 10)
    given = getattr(args, "dns_upstream", None)
    if not given:
        return DnsSettings(service_ip=service_ip)
    upstreams: list[tuple[str, int]] = []
    for value in given:
        if value == "none":
            continue
        host, _, port = str(value).rpartition(":") if value.count(":") == 1 else (value, "", "53")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise CliError(f"--dns-upstream must be IP[:PORT] or none, got {value!r}") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CliError(f"--dns-upstream must be IP[:PORT] or none, got {value!r}")
        upstreams.append((host, int(port)))
    return DnsSettings(service_ip=service_ip, upstreams=tuple(upstreams))


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
    """Print (and open) a one-time login link to the running cluster's dashboard.

    The link's token is minted here from the kubeconfig's bearer token (login.py), so
    only someone who may use the API can log in; it works once, for two minutes.
    """
    from miniorch.dashboard import read_dashboard_url
    from miniorch.dashboard.login import LOGIN_TTL_SECONDS, mint_login_token

    url = read_dashboard_url(Settings(home=ctx.home).dashboard_file)
    if url is None or not _answers(url):
        raise CliError(f"no dashboard is running from {ctx.home}: start a cluster with "
                       "`miniorch up`")
    token = ctx.config.token
    if not token:
        raise CliError("the kubeconfig has no bearer token to log in to the dashboard with")
    link = f"{url}?token={mint_login_token(token)}"
    ctx.out(f"Dashboard: {url}\nLog in (once, within {LOGIN_TTL_SECONDS:.0f}s): {link}\n")
    if not args.no_browser and _has_display():
        import contextlib
        import webbrowser

        with contextlib.suppress(webbrowser.Error):
            webbrowser.open(link)
    return 0


def _has_display() -> bool:
    """A graphical browser can open: without one, `webbrowser` would start a text browser
    in this very terminal."""
    import os
    import sys

    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY")
                                            or os.environ.get("WAYLAND_DISPLAY"))


def _answers(url: str) -> bool:
    """Whether something listens at the dashboard's address (a dead cluster leaves the file)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80),
                                      timeout=1):
            return True
    except OSError:
        return False
