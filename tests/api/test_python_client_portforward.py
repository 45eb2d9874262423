"""Port-forward over `v4.channel.k8s.io`, driven by the official Python client against a
real ApiServer (see test_server_kubectl.py for the server fixture).

The kubernetes client leaks its TLS sockets in reference cycles, and the server's end of
them outlives the test: their ResourceWarnings are the client's, so they are ignored in
this module, and collected (after the server fixture's teardown) before it ends.
"""

from __future__ import annotations

import gc
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from miniorch.api.kinds import PODS
from tests.api.test_server_kubectl import Cluster, cluster, running_pod

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning")
__all__ = ["cluster"]  # the fixture, used by name


@pytest.fixture(autouse=True)
def _collect_client_garbage() -> Iterator[None]:
    yield
    gc.collect()


def test_port_forward_through_the_python_client(cluster: Cluster) -> None:
    """`kubernetes.stream.portforward` (WebSocket `v4.channel.k8s.io`) to two ports of a
    "pod" at 127.0.0.1: an echo server, and a port nothing listens on (its error
    channel carries the connect error)."""

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(4096):
                self.request.sendall(data.upper())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    target = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # free once the block ends: nothing listens there
    running_pod(cluster, "pyforward")
    cluster.call(cluster.registry.update_status, PODS, "default", "pyforward",
                 {**cluster.call(cluster.registry.get, PODS, "default", "pyforward")["status"],
                  "podIP": "127.0.0.1"})
    from kubernetes import client, config
    from kubernetes.stream import portforward
    config.load_kube_config(config_file=str(cluster.kubeconfig))
    v1 = client.CoreV1Api()
    try:
        pf = portforward(v1.connect_get_namespaced_pod_portforward, "pyforward", "default",
                         ports=f"{target},{closed}")
        try:
            sock = pf.socket(target)
            sock.settimeout(10)
            got, sent = b"", 0
            for word in (b"hello ", b"world"):
                sock.sendall(word)
                sent += len(word)
                while len(got) < sent:
                    got += sock.recv(4096)
            assert got == b"HELLO WORLD"
            sock.close()
            error_sock = pf.socket(closed)
            error_sock.settimeout(10)
            assert error_sock.recv(10) == b""  # closed by the error frame
            assert pf.error(closed) is not None
            assert f"error forwarding port {closed} to pod pyforward" in pf.error(closed)
            assert pf.error(target) is None
        finally:
            pf.close()
        with pytest.raises(client.ApiException) as raised:
            v1.connect_get_namespaced_pod_portforward("pyforward", "default", ports="x")
        assert raised.value.status in (400, 403)
    finally:
        v1.api_client.close()
        server.shutdown()
        server.server_close()
