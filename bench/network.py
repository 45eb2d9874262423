"""The data path: endpoint propagation into the proxy, and the proxy's throughput.

Propagation: the kubia RC is scaled up by one while a thread sends short requests to
the EXTERNAL-IP (a new connection each, so every request picks a backend afresh). A
pod watch stamps the moment the new pod is seen Ready; the first answer from the new
pod ("You've hit <name>") is when the proxy routes to it. Both stamps are on the
bench's clock, so `ready_to_routed` = routed - Ready-seen (it can be a little
negative: the proxy may learn of the endpoint before the bench's watch delivers the
pod). The Ready condition's lastTransitionTime has only 1 s resolution, so it is not used.

Throughput (`compare`): wrk, 32 connections, on the same kubia pods in the same run:
  - `proxy_http`  the LoadBalancer address (the Service proxy's HTTP/1 path),
  - `nginx`, `haproxy` started here on loopback ports, balancing over the same pod IPs
    (Debian packages; one worker / one thread each: like the proxy, one event loop),
  - `proxy_tcp`   a Service port with `appProtocol: tcp` (the byte splice) made here,
  - `direct`      three wrk at once, one per pod, with the connections split between
    them (wrk takes one URL): what connecting to the pods directly gives.
  - `tcp_stream`  bulk bytes: 4 connections streaming for 3 s into a sink pod (Python),
    through its ClusterIP (spliced) and to the pod IP directly.
Ratios: proxy/nginx throughput, proxy/nginx p50, proxy_tcp/direct requests (a new
connection per request: kubia answers HTTP/1.0), tcp_stream proxied/direct bytes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.api import Api
from bench.burst import _ready
from bench.cluster import LB_URL, free_port


class _Hitter(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.first_seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=0.5) as resp:
                    body = resp.read().decode()
            except OSError:
                continue
            t = time.monotonic()
            name = body.strip().rsplit(" ", 1)[-1]
            self.first_seen.setdefault(name, t)


def _one(api: Api, rc: str, selector: str, replicas: int) -> dict[str, Any]:
    pods = api.request("GET", f"/api/v1/namespaces/default/pods?labelSelector={selector}")
    known = {p["metadata"]["name"] for p in pods["items"]}
    hitter = _Hitter(LB_URL)
    hitter.start()
    ready_seen: dict[str, float] = {}
    try:
        api.scale_rc("default", rc, replicas + 1)
        path = f"/api/v1/namespaces/default/pods?labelSelector={selector}"
        for t, event in api.watch(path, resource_version=pods["metadata"]["resourceVersion"]):
            name = event["object"]["metadata"]["name"]
            if name not in known and event["type"] != "DELETED" and _ready(event["object"]):
                ready_seen[name] = t
                break
        new = next(iter(ready_seen))
        deadline = time.monotonic() + 10
        while new not in hitter.first_seen and time.monotonic() < deadline:
            time.sleep(0.001)
        routed = hitter.first_seen.get(new)
    finally:
        hitter.stop.set()
        hitter.join()
        api.scale_rc("default", rc, replicas)
    return {"pod": new, "ready_to_routed_s": None if routed is None
            else round(routed - ready_seen[new], 4)}


def endpoint_propagation(api: Api, *, repeat: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(repeat):
        runs.append(_one(api, "kubia", "run%3Dkubia", 3))
        time.sleep(1.0)  # let the extra pod finish terminating
    return runs


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _quantile(out: str, q: int) -> float | None:
    found = re.search(rf"^\s*{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    return round(float(found.group(1)) * _UNITS[found.group(2)], 6) if found else None


def _wrk_cmd(url: str, seconds: int, connections: int, threads: int) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]


def _parse(out: str, connections: int, seconds: int) -> dict[str, Any]:
    rps = _RPS.search(out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": float(rps.group(1)) if rps else None,
            "p50_s": _quantile(out, 50), "p99_s": _quantile(out, 99),
            "connections": connections, "seconds": seconds,
            "socket_errors": errors.group(1) if errors else None,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def wrk(url: str = LB_URL, *, seconds: int = 5, connections: int = 32) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"error": "wrk not installed (apt-get install -y wrk)"}
    out = subprocess.run(_wrk_cmd(url, seconds, connections, 2),
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    return _parse(out, connections, seconds)


def wrk_split(urls: list[str], *, seconds: int = 5, connections: int = 32) -> dict[str, Any]:
    """wrk on several URLs at once, the connections split between them; figures summed
    (throughput) and worst (latency)."""
    share = [connections // len(urls) + (i < connections % len(urls))
             for i in range(len(urls))]
    procs = [subprocess.Popen(_wrk_cmd(url, seconds, c, 1), stdout=subprocess.PIPE,
                              text=True) for url, c in zip(urls, share, strict=True)]
    parts = [_parse(p.communicate(timeout=seconds + 30)[0], c, seconds)
             for p, c in zip(procs, share, strict=True)]
    rates = [p["requests_per_s"] for p in parts]
    return {"requests_per_s": round(sum(rates), 2) if None not in rates else None,
            "p50_s": max((p["p50_s"] or 0) for p in parts),
            "p99_s": max((p["p99_s"] or 0) for p in parts),
            "connections": connections, "seconds": seconds, "parts": parts}


_NGINX = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream pods {{ {servers} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://pods; }}
    }}
}}
"""

_HAPROXY = """
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 3s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    default_backend pods
backend pods
    balance roundrobin
{servers}
"""


@contextlib.contextmanager
def _started(cmd: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
                    raise RuntimeError(f"{cmd[0]} did not start: {why}") from None
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pod_addresses(api: Api, service: str) -> list[str]:
    ep = api.request("GET", f"/api/v1/namespaces/default/endpoints/{service}")
    return sorted(f"{a['ip']}:{p['port']}" for s in ep.get("subsets") or []
                  for a in s.get("addresses") or [] for p in s.get("ports") or [])


def _tcp_service(api: Api, name: str, port: int) -> str:
    """A ClusterIP Service over the kubia pods whose port is spliced (appProtocol tcp)."""
    with contextlib.suppress(Exception):
        api.request("DELETE", f"/api/v1/namespaces/default/services/{name}")
    svc = api.request("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"run": "kubia"}, "ports": [
            {"port": port, "targetPort": 8080, "appProtocol": "tcp"}]}})
    url = f"http://{svc['spec']['clusterIP']}:{port}/"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the proxy listens and the endpoints are in
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return url
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


_SINK = """
import socket, threading
def serve(conn):
    total, buf = 0, bytearray(1 << 20)
    while n := conn.recv_into(buf):
        total += n
    conn.sendall(str(total).encode())
    conn.close()
with socket.create_server(("", 9000), backlog=64) as srv:
    while True:
        threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
"""


def _stream(host: str, port: int, *, seconds: float, streams: int) -> float:
    """MB/s that `streams` connections push to the sink in `seconds` (as it counted)."""
    chunk = b"\x5a" * (1 << 20)
    counted: list[int] = []

    def one() -> None:
        with socket.create_connection((host, port), timeout=10) as sock:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            counted.append(int(sock.recv(64) or b"0"))
    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(counted) / (time.monotonic() - started) / 1e6, 1)


def tcp_stream(api: Api, *, seconds: float = 3.0, streams: int = 4) -> dict[str, Any]:
    """A sink pod behind a ClusterIP Service: bytes/s through the proxy and direct."""
    base = "/api/v1/namespaces/default"
    for kind in ("services", "pods"):
        with contextlib.suppress(Exception):
            api.request("DELETE", f"{base}/{kind}/bench-sink")
    api.request("POST", f"{base}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bench-sink", "labels": {"app": "bench-sink"}},
        "spec": {"containers": [{"name": "sink", "image": "python",
                                 "command": ["python3", "-c", _SINK],
                                 "ports": [{"containerPort": 9000}]}]}})
    svc = api.request("POST", f"{base}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench-sink"},
        "spec": {"selector": {"app": "bench-sink"}, "ports": [{"port": 9000}]}})
    try:
        deadline = time.monotonic() + 60
        while True:
            pods = _pod_addresses(api, "bench-sink")
            if pods:
                try:
                    _stream(svc["spec"]["clusterIP"], 9000, seconds=0.1, streams=1)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("the sink pod never answered")
            time.sleep(0.3)
        pod_ip = pods[0].split(":")[0]
        direct = _stream(pod_ip, 9000, seconds=seconds, streams=streams)
        proxied = _stream(svc["spec"]["clusterIP"], 9000, seconds=seconds, streams=streams)
        return {"direct_MBps": direct, "proxied_MBps": proxied, "streams": streams,
                "seconds": seconds}
    finally:
        for kind in ("services", "pods"):
            with contextlib.suppress(Exception):
                api.request("DELETE", f"{base}/{kind}/bench-sink")


def compare(api: Api, *, seconds: int = 5, connections: int = 32,
            lb_url: str = LB_URL) -> dict[str, Any]:
    """The Service proxy against nginx, HAProxy and the pods themselves (module doc)."""
    missing = [tool for tool in ("wrk", "nginx", "haproxy") if shutil.which(tool) is None]
    if missing:
        return {"error": f"not installed: {', '.join(missing)} (make install adds them)"}
    pods = _pod_addresses(api, "kubia-http")
    if not pods:
        return {"error": "kubia-http has no ready endpoints"}
    results: dict[str, Any] = {"pods": pods}
    results["proxy_http"] = wrk(lb_url, seconds=seconds, connections=connections)
    with tempfile.TemporaryDirectory(prefix="mo-bench-lb-") as tmp:
        work = Path(tmp)
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(_NGINX.format(dir=work, port=port,
                                      servers=" ".join(f"server {p};" for p in pods)))
        with _started(["nginx", "-p", str(work), "-e", str(work / "nginx-error.log"),
                       "-c", str(conf)], port):
            results["nginx"] = wrk(f"http://127.0.0.1:{port}/", seconds=seconds,
                                   connections=connections)
        port = free_port()
        conf = work / "haproxy.cfg"
        conf.write_text(_HAPROXY.format(port=port, servers="\n".join(
            f"    server pod{i} {p}" for i, p in enumerate(pods))))
        with _started(["haproxy", "-f", str(conf), "-db"], port):
            results["haproxy"] = wrk(f"http://127.0.0.1:{port}/", seconds=seconds,
                                     connections=connections)
    tcp_url = _tcp_service(api, "kubia-bench-tcp", 8090)
    try:
        results["proxy_tcp"] = wrk(tcp_url, seconds=seconds, connections=connections)
    finally:
        with contextlib.suppress(Exception):
            api.request("DELETE", "/api/v1/namespaces/default/services/kubia-bench-tcp")
    results["direct"] = wrk_split([f"http://{p}/" for p in pods], seconds=seconds,
                                  connections=connections)
    try:
        results["tcp_stream"] = tcp_stream(api)
    except Exception as exc:  # the HTTP figures stand on their own
        results["tcp_stream"] = {"error": repr(exc)}

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 3) if a and b else None
    http, nginx = results["proxy_http"], results["nginx"]
    results["ratios"] = {
        "http_vs_nginx_throughput": ratio(http["requests_per_s"], nginx["requests_per_s"]),
        "http_vs_haproxy_throughput": ratio(http["requests_per_s"],
                                            results["haproxy"]["requests_per_s"]),
        "http_vs_nginx_p50": ratio(http["p50_s"], nginx["p50_s"]),
        "tcp_vs_direct_throughput": ratio(results["proxy_tcp"]["requests_per_s"],
                                          results["direct"]["requests_per_s"]),
        "tcp_stream_vs_direct": ratio(results["tcp_stream"].get("proxied_MBps"),
                                      results["tcp_stream"].get("direct_MBps")),
    }
    return results
