"""hostPort: the node's address:hostPort reaches the pod's containerPort.

    client ──TCP──► <node InternalIP or port.hostIP>:hostPort   (listener, this module)
                        └─ connect ─► <pod IP>:containerPort ─ bytes both ways ─┘

What the CNI portmap plugin does with iptables DNAT, done as a small user-space
forwarder owned by the pod's kubelet worker: it lives exactly as long as the pod's
run (opened before the sandbox, closed at teardown), so nothing outlives the pod.
Only TCP (a UDP hostPort gets an event saying so). hostNetwork pods need none: the
app listens on the host's network itself. Nodes share the machine, so each listens on
its own InternalIP (127.0.1.N), never on 0.0.0.0, and two nodes may use the same port.

Invariants: one listener per (address, hostPort); a connection whose upstream refuses
(the app is not up yet) is closed at once; a listener that cannot bind (port taken)
is reported through `on_error` and the others still serve.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.abc import SocketStream

from miniorch.core.objects import Obj
from miniorch.core.tcprelay import relay_to


@dataclass(frozen=True)
class HostPort:
    host_ip: str
    host_port: int
    container_port: int


def host_ports(pod: Obj, node_ip: str) -> tuple[list[HostPort], list[str]]:
    """The pod's TCP hostPorts (on `node_ip` unless the port names a hostIP) and
    messages about those that cannot be served (UDP/SCTP)."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return [], []
    ports: list[HostPort] = []
    problems: list[str] = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if not port.get("hostPort"):
                continue
            protocol = port.get("protocol") or "TCP"
            if protocol != "TCP":
                problems.append(f"hostPort {port['hostPort']}/{protocol} is not supported "
                                "(TCP only)")
                continue
            address = str(port.get("hostIP") or "")
            if address in ("", "0.0.0.0", "::"):
                address = node_ip
            ports.append(HostPort(address, int(port["hostPort"]), int(port["containerPort"])))
    return ports, problems


@contextlib.asynccontextmanager
async def forwarding(ports: list[HostPort], pod_ip: Callable[[], str], *,
                     on_error: Callable[[str], None]) -> AsyncIterator[None]:
    """Serve `ports` while the block runs. `pod_ip()` is read per connection (the
    sandbox decides the pod's address)."""
    if not ports:
        yield
        return
    async with anyio.create_task_group() as tg:
        for hp in ports:
            try:
                listener = await anyio.create_tcp_listener(local_host=hp.host_ip,
                                                           local_port=hp.host_port,
                                                           reuse_port=False)
            except OSError as exc:
                on_error(f"hostPort {hp.host_ip}:{hp.host_port}: {exc.strerror or exc}")
                continue

            async def serve(listener: anyio.abc.Listener[SocketStream] = listener,
                            hp: HostPort = hp) -> None:
                async with listener:
                    await listener.serve(
                        lambda client: relay_to(client, pod_ip(), hp.container_port))
            tg.start_soon(serve)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


__all__ = ["HostPort", "forwarding", "host_ports"]
