"""Services as Kubernetes has them, on a real cluster: any TCP, TLS untouched, no lost request.

- raw TCP (busybox `nc -ll -e cat` in a pod) answered through its ClusterIP, NodePort
  and LoadBalancer address, half-close included;
- a TLS server in a pod (Python's ssl, a certificate made here) reached through its
  Service, with its own certificate checked by the client;
- churn: 6 clients (4 keep-alive, 2 a new connection per request) on the demo Service
  while pods are deleted every 5 s, an app is `kill -9`ed every 7 s and the RC is
  scaled 3→6→2→3 — and not one request fails.
Everything is loopback or miniorch's own addresses (ClusterIPs, pod IPs).
"""

from __future__ import annotations

import datetime
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

CHURN_SECONDS = 38
CLIENTS_KEEPALIVE = 4
CLIENTS_NEW_CONNECTION = 2


def apply(cluster: RunningCluster, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": objects}))


def echo_once(host: str, port: int, payload: bytes) -> bytes:
    """Send `payload`, half-close, read until the server closes."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_raw_tcp_through_cluster_ip_node_port_and_load_balancer(
        cluster: RunningCluster) -> None:
    apply(cluster, [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "nc-echo", "labels": {"app": "nc-echo"}},
         "spec": {"containers": [{"name": "nc", "image": "busybox",
                                  "command": ["nc", "-ll", "-p", "9000", "-e", "cat"],
                                  "ports": [{"containerPort": 9000}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nc-echo"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "nc-echo"},
                  "ports": [{"port": 9000, "targetPort": 9000}]}},
    ])
    try:
        svc = wait_for(lambda: (lambda s: s if (s.get("status") or {}).get("loadBalancer", {})
                                .get("ingress") else None)(cluster.get_json("svc", "nc-echo")),
                       what="an EXTERNAL-IP")
        addresses = {
            "ClusterIP": (svc["spec"]["clusterIP"], 9000),
            "NodePort": ("127.0.0.1", svc["spec"]["ports"][0]["nodePort"]),
            "LoadBalancer": (svc["status"]["loadBalancer"]["ingress"][0]["ip"], 9000),
        }
        payload = os.urandom(100_000)  # binary: spliced at its first byte
        for kind, (host, port) in addresses.items():
            got = wait_for(lambda h=host, p=port: _try_echo(h, p, payload), timeout=60,
                           what=f"the echo through {kind} {host}:{port}")
            assert got == payload, kind
    finally:
        cluster.cli("delete", "svc", "nc-echo", check=False)
        cluster.cli("delete", "pod", "nc-echo", "--grace-period=0", check=False)


def _try_echo(host: str, port: int, payload: bytes) -> bytes | None:
    try:
        got = echo_once(host, port, payload)
    except OSError:
        return None
    return got or None


TLS_SERVER = """
import os, socket, ssl
open("/tmp/tls.crt", "w").write(os.environ["CERT"])
open("/tmp/tls.key", "w").write(os.environ["KEY"])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tmp/tls.crt", "/tmp/tls.key")
with socket.create_server(("", 8443)) as srv:
    while True:
        conn, _ = srv.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = tls.recv(1024)
                tls.sendall(b"tls says: " + data + b" (" + tls.version().encode() + b")")
        except (OSError, ssl.SSLError):
            pass
"""


def make_certificate(name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def test_tls_server_reached_through_its_service_with_its_own_certificate(
        cluster: RunningCluster) -> None:
    name = "tls-echo.default.svc"
    cert, key = make_certificate(name)
    apply(cluster, [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "tls-echo", "labels": {"app": "tls-echo"}},
         "spec": {"containers": [{"name": "tls", "image": "python",
                                  "command": ["python3", "-c", TLS_SERVER],
                                  "env": [{"name": "CERT", "value": cert},
                                          {"name": "KEY", "value": key}],
                                  "ports": [{"containerPort": 8443}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tls-echo"},
         "spec": {"selector": {"app": "tls-echo"},
                  "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}},
    ])
    try:
        ip = cluster.get_json("svc", "tls-echo")["spec"]["clusterIP"]
        context = ssl.create_default_context(cadata=cert)

        def talk() -> tuple[bytes, bytes] | None:
            try:
                with socket.create_connection((ip, 443), timeout=5) as raw, \
                        context.wrap_socket(raw, server_hostname=name) as tls:
                    tls.sendall(b"hello")
                    return tls.recv(1024), tls.getpeercert(binary_form=True) or b""
            except (OSError, ssl.SSLError):
                return None
        answer, peer = wait_for(talk, timeout=60, what="the TLS server through its Service")
        assert answer.startswith(b"tls says: hello (TLSv1.")
        assert peer == x509.load_pem_x509_certificate(cert.encode()).public_bytes(
            serialization.Encoding.DER)  # the pod's own certificate, untouched
    finally:
        cluster.cli("delete", "svc", "tls-echo", check=False)
        cluster.cli("delete", "pod", "tls-echo", "--grace-period=0", check=False)


# ---- churn ------------------------------------------------------------------------

LOAD = r"""
import asyncio, json, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
keepalive, fresh = int(sys.argv[4]), int(sys.argv[5])
REQUEST = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
ok = 0
failures = []
start = time.monotonic()

async def one(reader, writer):
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length)
    if status != 200 or not body.startswith(b"You've hit "):
        raise RuntimeError(f"{status} {body[:80]!r}")
    return b"connection: close" in head.lower()

async def client(reuse):
    global ok
    conn = None
    while time.monotonic() - start < seconds:
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            closing = await asyncio.wait_for(one(*conn), 10)
            ok += 1
            if closing or not reuse:
                conn[1].close()
                conn = None
        except Exception as exc:
            failures.append((round(time.monotonic() - start, 3), reuse, repr(exc)[:200]))
            if conn is not None:
                conn[1].close()
            conn = None

async def main():
    await asyncio.gather(*[client(True) for _ in range(keepalive)],
                         *[client(False) for _ in range(fresh)])

asyncio.run(main())
print(json.dumps({"ok": ok, "failed": len(failures), "failures": failures[:30],
                  "seconds": round(time.monotonic() - start, 2)}))
"""


def _app_pid(cluster: RunningCluster, name: str) -> int | None:
    for path in (cluster.home / "pods").glob(f"default_{name}_*/sandbox.json"):
        try:
            return int(json.loads(path.read_text())["containers"]["kubia"]["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def _ready_kubia(cluster: RunningCluster) -> list[dict[str, Any]]:
    pods = cluster.get_json("pods", "-l", "run=kubia")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and all(c.get("ready") for c in (p.get("status") or {}).get("containerStatuses")
                    or [{}])]


def test_churn_loses_no_request(cluster: RunningCluster) -> None:
    svc = cluster.get_json("svc", "kubia-http")
    host = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    log_start = (cluster.home / "cluster.log").stat().st_size
    load = subprocess.Popen(
        [sys.executable, "-c", LOAD, host, "8080", str(CHURN_SECONDS),
         str(CLIENTS_KEEPALIVE), str(CLIENTS_NEW_CONNECTION)],
        stdout=subprocess.PIPE, text=True)
    actions: list[tuple[float, str]] = []
    background: list[subprocess.Popen[str]] = []
    killed: set[str] = set()
    rng = random.Random(9)
    scale_plan = {8: 6, 18: 2, 27: 3}
    started = time.monotonic()
    try:
        next_delete, next_kill, tick = 5.0, 7.0, 0
        while (now := time.monotonic() - started) < CHURN_SECONDS - 2:
            for at, replicas in list(scale_plan.items()):
                if now >= at:
                    del scale_plan[at]
                    background.append(subprocess.Popen(
                        [sys.executable, "-m", "miniorch", "--state-dir", str(cluster.home),
                         "scale", "rc", "kubia", f"--replicas={replicas}"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
                    actions.append((now, f"scale {replicas}"))
            if now >= next_delete:
                next_delete += 5
                pods = _ready_kubia(cluster)
                if len(pods) > 1:
                    victim = rng.choice(pods)["metadata"]["name"]
                    background.append(subprocess.Popen(
                        [sys.executable, "-m", "miniorch", "--state-dir", str(cluster.home),
                         "delete", "pod", victim, "--wait=false"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
                    actions.append((now, f"delete {victim}"))
            if now >= next_kill:
                next_kill += 7
                # Not the same pod twice: its second crash would wait out the back-off.
                pods = [p for p in _ready_kubia(cluster)
                        if p["metadata"]["name"] not in killed]
                if pods:
                    name = rng.choice(pods)["metadata"]["name"]
                    pid = _app_pid(cluster, name)
                    if pid is not None:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            killed.add(name)
                            actions.append((now, f"kill -9 {name}"))
                        except ProcessLookupError:
                            pass
            tick += 1
            time.sleep(0.25)
        out, _ = load.communicate(timeout=CHURN_SECONDS + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        for proc in background:
            proc.wait(timeout=60)
    try:
        result = json.loads(out)
        total = result["ok"] + result["failed"]
        print(f"churn: {total} requests in {result['seconds']} s "
              f"({total / result['seconds']:.0f}/s), {result['failed']} failed; actions: {actions}")
        assert [a for _, a in actions if a.startswith("delete")], "no pod was deleted"
        assert [a for _, a in actions if a.startswith("kill")], "no app was killed"
        assert not scale_plan, "not every scale step ran"
        assert result["failed"] == 0, result["failures"]
        # The proxy's own failure counter (logged with every 503/502/refusal) stayed at 0.
        with Path(cluster.home / "cluster.log").open("rb") as file:
            file.seek(log_start)
            log = file.read().decode(errors="replace")
        assert "answered 503" not in log and "answered 502" not in log
        assert total >= 20_000, f"only {total} requests: the machine is too busy to churn"
    finally:
        # Leave the walkthrough's app as later tests expect it: fresh pods, no restarts.
        kubia = cluster.get_json("pods", "-l", "run=kubia")["items"]
        restarted = [p["metadata"]["name"] for p in kubia
                     if any(c.get("restartCount")
                            for c in p["status"].get("containerStatuses", []))]
        if restarted:
            cluster.kubectl("delete", "pod", *restarted, "--wait=false")
        wait_for(lambda: len(_ready_kubia(cluster)) == 3, timeout=60, what="3 kubia pods again")
