"""Throughput of the Service proxy for kubia-style GETs, measured with `wrk`.

Not a test (no timing assertions anywhere): run it by hand,
    .venv/bin/python tests/proxy/bench_proxy.py [--seconds 10] [--connections 64]
Two kubia-like backends run in a child process (so they do not share the proxy's
event loop); the proxy runs here with a real Store + Registry and a ClusterIP
Service on a loopback address; wrk hits the backend directly (baseline) and then
the Service. Prints wrk's summary lines and a JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio

from miniorch.api.kinds import ENDPOINTS, NAMESPACES, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.proxy import NoLocalAddresses, ServiceProxy

BACKENDS = """
import asyncio, socket, sys
from aiohttp import web

async def main(ip):
    runners = []
    for name in ("kubia-a", "kubia-b"):
        async def hello(request, name=name):
            return web.Response(text=f"You've hit {name}\\n")
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, ip, 0)
        await site.start()
        runners.append(runner)
        print(site.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


def wrk(url: str, seconds: int, connections: int) -> dict[str, float | str]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    print(out)
    return {"requests_per_second": rps, "p50": p50, "p99": p99,
            "non_2xx": int(errors.group(1)) if errors else 0}


async def measure(seconds: int, connections: int, a: int, backend_ip: str,
                  ports: list[int]) -> None:
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), network=NetworkSettings(
            service_cidr=f"127.{a}.1.0/24", loadbalancer_cidr=f"127.{a}.3.0/24"))
        store = Store(None)
        registry = Registry(store, network=settings.network)
        registry.create(NAMESPACES, {"metadata": {"name": "default"}})
        svc = registry.create(SERVICES, {"metadata": {"name": "kubia"}, "spec": {
            "ports": [{"port": 8080, "targetPort": 8080}], "selector": {"app": "kubia"}}})
        registry.create(ENDPOINTS, {"metadata": {"name": "kubia"}, "subsets": [
            {"addresses": [{"ip": backend_ip}], "ports": [{"port": p}]} for p in ports]})
        proxy = ServiceProxy(registry=registry, settings=settings,
                             local_addresses=NoLocalAddresses())
        async with anyio.create_task_group() as tg:
            await tg.start(proxy.run)
            direct = await anyio.to_thread.run_sync(
                wrk, f"http://{backend_ip}:{ports[0]}/", seconds, connections)
            proxied = await anyio.to_thread.run_sync(
                wrk, f"http://{svc['spec']['clusterIP']}:8080/", seconds, connections)
            tg.cancel_scope.cancel()
        store.close()
    print(json.dumps({"connections": connections, "seconds": seconds,
                      "direct_backend": direct, "through_proxy": proxied}))


def main(seconds: int, connections: int) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    a = random.randint(1, 254)
    backend_ip = f"127.{a}.2.1"
    child = subprocess.Popen([sys.executable, "-c", BACKENDS, backend_ip],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ports = [int(child.stdout.readline()), int(child.stdout.readline())]
        anyio.run(measure, seconds, connections, a, backend_ip, ports)
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    main(args.seconds, args.connections)
