"""The kubelet's hostPort forwarder: node address:hostPort reaches the pod's port."""

from __future__ import annotations

import socket

import anyio
import pytest

from miniorch.node.hostports import HostPort, forwarding, host_ports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ports_of_a_pod() -> None:
    pod = {"spec": {"containers": [{"name": "a", "ports": [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
        {"containerPort": 81, "hostPort": 8181, "hostIP": "127.0.0.5"},
        {"containerPort": 90}]}]}}
    ports, problems = host_ports(pod, "127.0.1.1")
    assert ports == [HostPort("127.0.1.1", 8080, 80), HostPort("127.0.0.5", 8181, 81)]
    assert problems == ["hostPort 5353/UDP is not supported (TCP only)"]
    assert host_ports({"spec": {**pod["spec"], "hostNetwork": True}}, "127.0.1.1") == ([], [])


async def test_forwards_both_ways_and_reports_a_taken_port() -> None:
    app_port, host_port = free_port(), free_port()
    errors: list[str] = []

    async def echo(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = await stream.receive()
            await stream.send(b"pod:" + data)
    app = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=app_port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = HostPort("127.0.0.1", taken.getsockname()[1], app_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(app.serve, echo)
            async with forwarding([HostPort("127.0.0.1", host_port, app_port), busy],
                                  lambda: "127.0.0.1", on_error=errors.append):
                with anyio.fail_after(5):
                    async with await anyio.connect_tcp("127.0.0.1", host_port) as client:
                        await client.send(b"hi")
                        assert await client.receive() == b"pod:hi"
            tg.cancel_scope.cancel()
    await app.aclose()
    assert len(errors) == 1 and "Address already in use" in errors[0], errors
    with pytest.raises(OSError):  # closed with the block
        socket.create_connection(("127.0.0.1", host_port), timeout=1).close()
