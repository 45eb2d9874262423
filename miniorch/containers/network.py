"""The containers' bridge and addresses (Docker's `docker0`, here `mo-docker0`).

    allocate (under the containers' flock) ─► bridge up (idempotent) ─► lowest free IP
    release  (under the flock)             ─► bridge removed once no port is left on it

The set of used IPs is derived, not stored: the IPs of containers whose supervisor is
alive (state.json) plus the ones handed out but not yet recorded (`pending`). Deriving it
means a supervisor killed with -9 frees its address by itself.

Invariant: the bridge is created and removed only under the flock, and a sandbox's veth
is attached while the flock is held, so a removal never races a new container's attach.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import anyio.to_thread

from miniorch.containers.state import ContainerDirs, ContainerSettings
from miniorch.sandbox.network import HostNetwork, bridge_ports


class NoFreeAddress(RuntimeError):
    pass


def gateway_of(settings: ContainerSettings) -> tuple[str, int]:
    net = ipaddress.ip_network(settings.subnet)
    return str(net.network_address + 1), net.prefixlen


def host_network(settings: ContainerSettings) -> HostNetwork:
    gateway, prefix = gateway_of(settings)
    return HostNetwork(bridge=settings.bridge, gateway_cidr=f"{gateway}/{prefix}")


def pick_ip(settings: ContainerSettings, used: set[str]) -> str:
    net = ipaddress.ip_network(settings.subnet)
    gateway, _ = gateway_of(settings)
    for i, addr in enumerate(net.hosts()):
        if i > 65000:
            break
        text = str(addr)
        if text != gateway and text not in used:
            return text
    raise NoFreeAddress(f"no free address left in {settings.subnet}")


def used_ips(dirs: ContainerDirs, *, exclude: Sequence[str] = ()) -> set[str]:
    return dirs.running_ips(exclude=exclude)


async def remove_bridge_if_unused(settings: ContainerSettings) -> bool:
    """Call under the flock, after the last sandbox's veth is gone."""
    if await anyio.to_thread.run_sync(bridge_ports, settings.bridge):
        return False
    await host_network(settings).teardown()
    return True
