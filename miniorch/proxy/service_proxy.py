"""The ServiceProxy actor: kube-proxy and the LoadBalancer implementation in one.

Data flow:

    informer(SERVICES)  ─► _services cache ─► dirty keys ─► _worker ─► _reconcile(key)
    informer(NODES)     ─► node InternalIPs ─► dirty NodePort/LoadBalancer keys  │
    informer(ENDPOINTS) ─► _endpoints cache ─► Balancer.update() (at once)       │
                                                                                 ▼
        listeners (asyncio servers / UDP sockets) + routes + EXTERNAL-IP + status

For every TCP and UDP port of a Service the proxy listens on
  (a) `clusterIP:port`,
  (b) for NodePort and LoadBalancer, `127.0.0.1:nodePort` and `InternalIP:nodePort` of
      every Node whose InternalIP is a local address of this host (others are skipped),
  (c) for LoadBalancer, `EXTERNAL-IP:port`, the address coming from `ExternalIPPool`.
A TCP listener accepts any protocol (listener.py: appProtocol or sniffing picks the
HTTP/1 path or a byte splice); a UDP listener relays datagrams (udp.py). Both find
their route from the local address a connection or datagram arrived on.

Rootless mode (a Dialer reaches pods, no bridge): TCP works as above; UDP ports are
not served (the dialer has no datagrams) and ClusterIPs are loopback addresses, so
pods cannot reach them — only the host can.

Invariants:
- Level-triggered: `_reconcile(key)` reads the cached Service and the listeners it
  holds and makes them agree; events only say *which* key to look at. One worker
  reconciles one key at a time, so no two reconciles of a key overlap.
- Endpoints changes bypass the worker: they edit the Service's `Balancer`s in place
  as the watch event arrives, so the next request already sees them (no polling).
- The informers are the cluster's shared ones (machinery/informer.py): the proxy only
  registers handlers, each first fed the informer's cache as ADDED events; a watch
  that expires is re-listed there and reported here as ordinary events. Cached
  objects are read-only copies shared with the other consumers.
- `status.loadBalancer.ingress` is written only once every `EXTERNAL-IP:port`
  listener is bound, so `kubectl get svc` shows `<pending>` until the proxy really
  listens. Published addresses are claimed first at start, so they survive restarts.
- A listener that cannot be bound (port taken, address missing) never stops the
  proxy: it is logged, a Warning Event `FailedToBind` goes on the Service, and the
  key is retried with exponential back-off (`retry_backoff`).
- ClusterIPs and EXTERNAL-IPs that are not loopback are made local through
  `LocalAddresses.add()` before binding and removed after their last listener
  closes (reference-counted); loopback addresses need nothing and are never passed.
- Cancellation closes every listener, removes every address added, and closes every
  proxied connection, under a shielded grace period.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import math
import os
import socket
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc
import structlog

from miniorch.api.errors import ApiError
from miniorch.api.kinds import ENDPOINTS, NODES, SERVICES
from miniorch.api.registry import Registry
from miniorch.core.clock import Clock, SystemClock
from miniorch.core.dialer import Dialer
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory
from miniorch.proxy.balancer import Balancer, affinity_timeout, endpoint_wait, ready_backends
from miniorch.proxy.connections import ProxyCore, ProxyStats, Route
from miniorch.proxy.external_ips import ExternalIPPool, ServiceKey
from miniorch.proxy.fastpath import Acceptor
from miniorch.proxy.listener import http_hand_off
from miniorch.proxy.sniff import mode_for
from miniorch.proxy.udp import UdpFrontend

log = structlog.get_logger(__name__)

COMPONENT = "service-proxy"
"""`source.component` of the Events the proxy records."""
RECONCILE_TIMEOUT_SECONDS = 10.0
SHUTDOWN_GRACE_SECONDS = 5.0
NODE_LOOPBACK = "127.0.0.1"
"""NodePorts always listen here, so `curl 127.0.0.1:<nodePort>` works on the host."""
PROXIED_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
LISTEN_BACKLOG = 1024

Address = tuple[str, int]
"""(ip, port) a listener is bound to."""
Bind = tuple[str, int, str]
"""(ip, port, protocol): what one listener holds."""
Problem = tuple[str, str]
"""(Event reason, message) of something that keeps a Service from being fully served."""


class LocalAddresses(Protocol):
    """Makes an IP a local address of the host, so a host socket can bind it.

    Production: the sandbox layer's HostNetwork (`add_local_address` /
    `remove_local_address`). The proxy calls these for non-loopback ClusterIPs and
    EXTERNAL-IPs only, once per address however many ports use it.
    """

    async def add(self, ip: str) -> None: ...

    async def remove(self, ip: str) -> None: ...


class NoLocalAddresses:
    """`LocalAddresses` for loopback-only setups (tests, rootless mode): does nothing."""

    async def add(self, ip: str) -> None:
        return None

    async def remove(self, ip: str) -> None:
        return None


@dataclass(frozen=True)
class _Want:
    """A listener the current Service spec asks for."""

    service: ServiceKey
    port_name: str
    owned: bool
    """The address is the Service's own (ClusterIP/EXTERNAL-IP), not a Node's."""


@dataclass
class _Listener:
    server: Acceptor | None
    udp: UdpFrontend | None
    want: _Want
    managed_address: bool
    """We added the IP through LocalAddresses and must remove it."""


class ServiceProxy:
    """Listens for every Service and forwards to its Ready endpoints."""

    def __init__(self, *, registry: Registry, settings: Settings,
                 local_addresses: LocalAddresses, clock: Clock | None = None,
                 retry_backoff: tuple[float, float] = (1.0, 30.0),
                 dialer: Dialer | None = None,
                 informers: SharedInformerFactory | None = None) -> None:
        """`retry_backoff`: (first, max) seconds between attempts to bind a listener
        that failed; doubles per failure, resets on success. `dialer`: how backend
        connections reach pods (None: plain TCP; rootless mode passes its own).
        `informers`: the cluster's shared factory; None: a private one, run by `run`."""
        self._dialer = dialer
        self._registry = registry
        self._informers = informers or SharedInformerFactory(registry)
        self._own_informers = informers is None
        self._settings = settings
        self._local = local_addresses
        self._clock = clock or SystemClock()
        self._retry_first, self._retry_max = retry_backoff
        self._pool = ExternalIPPool(settings.network.loadbalancer_cidr)
        self._services: dict[ServiceKey, Obj] = {}
        self._endpoints: dict[ServiceKey, Obj] = {}
        self._node_ips: dict[str, tuple[str, ...]] = {}
        self._balancers: dict[ServiceKey, dict[str, Balancer]] = {}
        self._routes: dict[Address, Route] = {}
        self._udp_routes: dict[Address, Route] = {}
        self._core = ProxyCore(routes=self._routes, udp_routes=self._udp_routes, dialer=dialer)
        self._listeners: dict[Bind, _Listener] = {}
        self._port_protocols: dict[ServiceKey, dict[str, str]] = {}
        self._address_refs: Counter[str] = Counter()
        self._dirty: dict[ServiceKey, None] = {}  # an ordered set
        self._retry_at: dict[ServiceKey, float] = {}
        self._backoff: dict[ServiceKey, float] = {}
        # anyio Events need a running loop: made in run().
        self._wake: anyio.Event | None = None
        self._changed: anyio.Event | None = None

    # ---- introspection (dashboard, tests) ------------------------------------------

    @property
    def listening(self) -> frozenset[Address]:
        """Every TCP (ip, port) the proxy is bound to right now."""
        return frozenset((ip, port) for ip, port, proto in self._listeners if proto == "TCP")

    @property
    def listening_udp(self) -> frozenset[Address]:
        return frozenset((ip, port) for ip, port, proto in self._listeners if proto == "UDP")

    @property
    def stats(self) -> ProxyStats:
        """Counters of connections, retries and failures (clients that got a 503,
        502 or refusal), for the dashboard, tests and the bench."""
        return self._core.stats

    def backends(self, namespace: str, name: str, port_name: str = "") -> tuple[Address, ...]:
        """The Ready backends the proxy balances over for one Service port."""
        balancer = self._balancers.get((namespace, name), {}).get(port_name)
        return tuple((b.ip, b.port) for b in balancer.backends) if balancer else ()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; re-checked after every change the proxy
        applies (a watch event handled, a reconcile done). Bound it with a timeout."""
        while True:
            changed = self._changed
            if predicate():
                return
            if changed is None:
                await anyio.sleep(0.01)  # run() has not started yet
            else:
                await changed.wait()

    # ---- the actor -----------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                if self._own_informers:
                    await tg.start(self._informers.run)
                with ExitStack() as subscriptions:
                    # Each handler first gets its informer's cache; the three and the
                    # claim run with no await in between, so no Service can take a
                    # published EXTERNAL-IP before its owner claims it back.
                    for resource, handler in ((SERVICES, self._on_service),
                                              (ENDPOINTS, self._on_endpoints),
                                              (NODES, self._on_node)):
                        informer = self._informers.informer(resource)
                        subscriptions.enter_context(informer.add_handler(handler))
                    self._claim_published_ips()
                    # Events keep arriving during these reconciles: they mark keys
                    # dirty again, and the worker takes those.
                    for key in sorted(self._dirty):
                        self._dirty.pop(key, None)
                        await self._reconcile_guarded(key)
                    log.info("service proxy started", listeners=len(self._listeners),
                             services=len(self._services))
                    tg.start_soon(self._worker)
                    task_status.started()
                    await anyio.sleep_forever()
        finally:
            with anyio.move_on_after(SHUTDOWN_GRACE_SECONDS, shield=True):
                await self._shutdown()

    async def _shutdown(self) -> None:
        for address in list(self._listeners):
            try:
                await self._close(address)
            except Exception:
                log.exception("closing listener failed", address=_fmt(address))
        self._core.close()  # every proxied connection and idle upstream
        log.info("service proxy stopped", **vars(self._core.stats))

    # ---- informer handlers -----------------------------------------------------------

    def _on_service(self, event: InformerEvent) -> None:
        key = _key(event.object)
        if event.type == "DELETED":
            self._services.pop(key, None)
        else:
            self._services[key] = event.object
        self._mark_dirty(key)
        self._notify()

    def _on_endpoints(self, event: InformerEvent) -> None:
        key = _key(event.object)
        if event.type == "DELETED":
            self._endpoints.pop(key, None)
        else:
            self._endpoints[key] = event.object
        self._refresh_backends(key)
        if self._core.idle:
            self._core.prune_idle({b for ports in self._balancers.values()
                                   for balancer in ports.values() for b in balancer.backends})
        self._notify()

    def _on_node(self, event: InformerEvent) -> None:
        name = str(event.object["metadata"]["name"])
        before = self._all_node_ips()
        if event.type == "DELETED":
            self._node_ips.pop(name, None)
        else:
            self._node_ips[name] = _internal_ips(event.object)
        if self._all_node_ips() != before:
            self._mark_node_port_services_dirty()
        self._notify()

    def _all_node_ips(self) -> list[str]:
        return sorted({ip for ips in self._node_ips.values() for ip in ips})

    def _mark_node_port_services_dirty(self) -> None:
        for key, svc in self._services.items():
            if (svc.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer"):
                self._mark_dirty(key)

    def _claim_published_ips(self) -> None:
        """Before allocating anything, give every LoadBalancer Service back the
        EXTERNAL-IP its status already shows (oldest Service first on a clash)."""
        def age(item: tuple[ServiceKey, Obj]) -> tuple[str, ServiceKey]:
            return (str(item[1]["metadata"].get("creationTimestamp", "")), item[0])
        for key, svc in sorted(self._services.items(), key=age):
            spec = svc.get("spec") or {}
            published = _published_ip(svc)
            if spec.get("type") != "LoadBalancer" or not published:
                continue
            if spec.get("loadBalancerIP") and spec["loadBalancerIP"] != published:
                continue  # it asked for another address; _reconcile deals with that
            if not self._pool.claim(key, published):
                log.warning("published EXTERNAL-IP not reusable", service=_fmt_key(key),
                            ip=published)

    # ---- the worker ----------------------------------------------------------------

    def _mark_dirty(self, key: ServiceKey) -> None:
        self._dirty[key] = None
        if self._wake is not None:
            self._wake.set()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def _worker(self) -> None:
        while True:
            now = anyio.current_time()
            for key, at in list(self._retry_at.items()):
                if at <= now:
                    del self._retry_at[key]
                    self._dirty[key] = None
            if not self._dirty:
                wake = self._wake
                assert wake is not None
                timeout = min(self._retry_at.values()) - now if self._retry_at else math.inf
                with anyio.move_on_after(timeout):
                    await wake.wait()
                if wake.is_set():
                    self._wake = anyio.Event()
                continue  # re-check: keys marked before the new Event are in _dirty
            key = next(iter(self._dirty))
            del self._dirty[key]
            await self._reconcile_guarded(key)
            self._notify()

    async def _reconcile_guarded(self, key: ServiceKey) -> None:
        """`_reconcile` with a timeout and a catch-all: a bug or a stuck bind in one
        Service must never stop the proxy for the others."""
        try:
            with anyio.fail_after(RECONCILE_TIMEOUT_SECONDS):
                problems = await self._reconcile(key)
        except Exception:
            log.exception("reconcile failed", service=_fmt_key(key))
            problems = [("InternalError", "reconcile failed")]
        if problems:
            delay = self._backoff.get(key, self._retry_first)
            self._backoff[key] = min(delay * 2, self._retry_max)
            self._retry_at[key] = anyio.current_time() + delay
        else:
            self._backoff.pop(key, None)
            self._retry_at.pop(key, None)

    # ---- reconcile -----------------------------------------------------------------

    async def _reconcile(self, key: ServiceKey) -> list[Problem]:
        """Make listeners, balancers, EXTERNAL-IP and status agree with the cached
        Service `key` (absent = deleted). Returns the problems that need a retry."""
        svc = self._services.get(key)
        spec: Obj = (svc or {}).get("spec") or {}
        svc_type = spec.get("type") or "ClusterIP"
        problems: list[Problem] = []
        desired: dict[Bind, _Want] = {}
        external_ip: str | None = None
        external: list[Bind] = []
        port_names: dict[str, str] = {}

        if svc is not None and svc_type in PROXIED_TYPES:
            if svc_type == "LoadBalancer":
                external_ip = self._external_ip(key, svc, problems)
            cluster_ip = spec.get("clusterIP")
            if cluster_ip in (None, "", "None"):
                cluster_ip = None  # headless: no virtual IP to listen on
            node_hosts = [NODE_LOOPBACK, *self._all_node_ips()]
            for port in spec.get("ports") or []:
                protocol = str(port.get("protocol") or "TCP")
                if protocol not in ("TCP", "UDP") or not port.get("port"):
                    continue  # SCTP: not proxied
                if protocol == "UDP" and self._dialer is not None:
                    log.warning("UDP service port not served in rootless mode",
                                service=_fmt_key(key), port=port.get("port"))
                    continue
                name = str(port.get("name") or "")
                port_names[name] = protocol
                number = int(port["port"])
                if cluster_ip:
                    desired[(cluster_ip, number, protocol)] = _Want(key, name, owned=True)
                if svc_type != "ClusterIP" and port.get("nodePort"):
                    for host in node_hosts:
                        desired.setdefault((host, int(port["nodePort"]), protocol),
                                           _Want(key, name, owned=False))
                if external_ip:
                    desired[(external_ip, number, protocol)] = _Want(key, name, owned=True)
                    external.append((external_ip, number, protocol))
        if svc_type != "LoadBalancer" or svc is None:
            released = self._pool.release(key)
            if released:
                log.info("released EXTERNAL-IP", service=_fmt_key(key), ip=released)

        self._sync_balancers(key, svc, port_names)

        for address, listener in list(self._listeners.items()):
            if listener.want.service == key and desired.get(address) != listener.want:
                await self._close(address)
            elif listener.want.service == key:
                self._set_route(address, listener.want, svc)  # appProtocol may change
        for address, want in desired.items():
            holder = self._listeners.get(address)
            if holder is not None:
                if holder.want.service != key:
                    problems.append(("FailedToBind", f"failed to listen on {_fmt(address)}: "
                                     f"already used by service {_fmt_key(holder.want.service)}"))
                continue
            try:
                await self._open(address, want)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL and not want.owned:
                    # A Node's InternalIP that is not an address of this host.
                    log.debug("node address not local, skipped", address=_fmt(address))
                    continue
                problems.append(("FailedToBind",
                                 f"failed to listen on {_fmt(address)}: {_why(exc)}"))
            except Exception as exc:
                problems.append(("FailedToBind", f"failed to listen on {_fmt(address)}: {exc}"))

        if svc is not None:
            bound = bool(external) and all(a in self._listeners for a in external)
            self._publish(key, svc_type, external_ip, bound)
            for reason, message in problems:
                log.error("service not fully served", service=_fmt_key(key), reason=reason,
                          problem=message)
                self._warn(svc, reason, message)
        return problems

    def _external_ip(self, key: ServiceKey, svc: Obj, problems: list[Problem]
                     ) -> str | None:
        wanted = (svc.get("spec") or {}).get("loadBalancerIP")
        held = self._pool.held_by(key)
        if wanted:
            if held == wanted or self._pool.claim(key, wanted):
                return str(wanted)
            owner = self._pool.owner(wanted)
            why = (f"it is used by service {_fmt_key(owner)}" if owner
                   else f"it is not in {self._settings.network.loadbalancer_cidr}")
            problems.append(("AllocationFailed",
                             f"cannot assign EXTERNAL-IP {wanted} (spec.loadBalancerIP): {why}"))
            self._pool.release(key)
            return None
        if held:
            return held
        published = _published_ip(svc)
        if published and self._pool.claim(key, published):
            return published
        allocated = self._pool.allocate(key)
        if allocated is None:
            problems.append(("AllocationFailed", "no free EXTERNAL-IP left in "
                             f"{self._settings.network.loadbalancer_cidr}"))
        else:
            log.info("allocated EXTERNAL-IP", service=_fmt_key(key), ip=allocated)
        return allocated

    def _sync_balancers(self, key: ServiceKey, svc: Obj | None,
                        port_names: dict[str, str]) -> None:
        mine = self._balancers.setdefault(key, {})
        for name in [n for n in mine if n not in port_names]:
            del mine[name]
        affinity = affinity_timeout(svc) if svc else None
        wait = endpoint_wait(svc) if svc else 0.0
        for name in port_names:
            balancer = mine.get(name)
            if balancer is None:
                label = f"{key[0]}/{key[1]}" + (f":{name}" if name else "")
                balancer = mine[name] = Balancer(clock=self._clock, description=label)
            balancer.configure(affinity_seconds=affinity, wait_seconds=wait)
        if mine:
            self._port_protocols[key] = dict(port_names)
        else:
            del self._balancers[key]
            self._port_protocols.pop(key, None)
        self._refresh_backends(key)

    def _refresh_backends(self, key: ServiceKey) -> None:
        mine = self._balancers.get(key)
        if not mine:
            return
        endpoints = self._endpoints.get(key)
        protocols = self._port_protocols.get(key, {})
        svc = self._services.get(key)
        # A Service with a selector whose Endpoints are not written yet expects some:
        # its endpoints controller has not caught up (a new Service, a restart).
        unwritten = endpoints is None and bool(((svc or {}).get("spec") or {}).get("selector"))
        for name, balancer in mine.items():
            protocol = protocols.get(name, "TCP")
            single = len(mine) == 1
            ready = ready_backends(endpoints, port_name=name, single_port=single,
                                   protocol=protocol)
            starting = ready_backends(endpoints, port_name=name, single_port=single,
                                      protocol=protocol, field="notReadyAddresses")
            balancer.update(ready, expecting=bool(starting) or unwritten)

    def _publish(self, key: ServiceKey, svc_type: str, ip: str | None, bound: bool) -> None:
        """Write `status.loadBalancer` if it should change: the ingress appears once
        the EXTERNAL-IP listeners are bound and stays while the address is ours."""
        def edit(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            current = (status.get("loadBalancer") or {}).get("ingress") or []
            current_ip = current[0].get("ip") if current else None
            want: list[Obj]
            if svc_type == "LoadBalancer" and ip and bound:
                want = [{"ip": ip, "ipMode": "VIP"}]
            elif svc_type == "LoadBalancer" and ip and current_ip == ip:
                want = current  # published before; a later bind problem does not undo it
            else:
                want = []
            if want != current:
                status["loadBalancer"] = {"ingress": want} if want else {}
        try:
            self._registry.mutate(SERVICES, key[0], key[1], edit, subresource="status")
        except ApiError as exc:
            # Deleted meanwhile: its DELETED event is on the way and will clean up.
            log.debug("status not written", service=_fmt_key(key), error=str(exc))

    def _warn(self, svc: Obj, reason: str, message: str) -> None:
        try:
            self._registry.record_event(svc, type="Warning", reason=reason, message=message,
                                        component=COMPONENT)
        except ApiError as exc:
            log.debug("event not recorded", error=str(exc))

    # ---- listeners -----------------------------------------------------------------

    def _set_route(self, address: Bind, want: _Want, svc: Obj | None) -> None:
        host, port, protocol = address
        app_protocol = None
        for item in ((svc or {}).get("spec") or {}).get("ports") or []:
            if str(item.get("name") or "") == want.port_name:
                app_protocol = item.get("appProtocol")
        route = Route(service=_fmt_key(want.service), port_name=want.port_name,
                      balancer=self._balancers[want.service][want.port_name],
                      mode=mode_for(app_protocol))
        table = self._udp_routes if protocol == "UDP" else self._routes
        if table.get((host, port)) != route:
            table[(host, port)] = route

    async def _open(self, address: Bind, want: _Want) -> None:
        host, port, protocol = address
        managed = want.owned and not ipaddress.ip_address(host).is_loopback
        if managed and self._address_refs[host] == 0:
            await self._local.add(host)
        loop = asyncio.get_running_loop()
        server: Acceptor | None = None
        udp: UdpFrontend | None = None
        core = self._core
        try:
            if protocol == "UDP":
                frontend = UdpFrontend(core, (host, port))
                await loop.create_datagram_endpoint(lambda: frontend, local_addr=(host, port),
                                                    reuse_port=False)
                udp = frontend
            else:
                where = (host, port)
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(where)
                    sock.listen(LISTEN_BACKLOG)
                except BaseException:
                    sock.close()
                    raise
                server = Acceptor(core, where, sock, http_hand_off(core, where))
        except BaseException:
            if managed and self._address_refs[host] == 0:
                await self._local.remove(host)
            raise
        if managed:
            self._address_refs[host] += 1
        self._listeners[address] = _Listener(server, udp, want, managed)
        self._set_route(address, want, self._services.get(want.service))
        log.info("listening", service=_fmt_key(want.service), address=_fmt(address))

    async def _close(self, address: Bind) -> None:
        listener = self._listeners.pop(address)
        host, port, protocol = address
        (self._udp_routes if protocol == "UDP" else self._routes).pop((host, port), None)
        if listener.server is not None:
            # Accepted connections live on: kept-alive HTTP clients get a 503 and a
            # close at their next request, splices run until their ends close.
            listener.server.close()
        if listener.udp is not None:
            listener.udp.close()
        if listener.managed_address:
            self._address_refs[host] -= 1
            if self._address_refs[host] <= 0:
                del self._address_refs[host]
                await self._local.remove(host)
        log.info("stopped listening", service=_fmt_key(listener.want.service),
                 address=_fmt(address))


def _key(obj: Obj) -> ServiceKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name", "")))


def _fmt_key(key: ServiceKey) -> str:
    return f"{key[0]}/{key[1]}"


def _fmt(address: Address | Bind) -> str:
    suffix = "/UDP" if len(address) == 3 and address[2] == "UDP" else ""
    return f"{address[0]}:{address[1]}{suffix}"


def _why(exc: OSError) -> str:
    # asyncio wraps bind errors in a long sentence; say it the way `ss`/`netstat` users
    # expect, with the likely cause.
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (another process holds this port); will retry"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "cannot assign requested address (not an address of this host); will retry"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root); will retry"
    return (os.strerror(exc.errno) if exc.errno else str(exc)) + "; will retry"


def _published_ip(svc: Obj) -> str | None:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ip = ingress[0].get("ip") if ingress else None
    return str(ip) if ip else None


def _internal_ips(node: Obj) -> tuple[str, ...]:
    found = []
    for entry in (node.get("status") or {}).get("addresses") or []:
        if entry.get("type") == "InternalIP" and entry.get("address"):
            try:
                if ipaddress.ip_address(entry["address"]).version == 4:
                    found.append(str(entry["address"]))
            except ValueError:
                continue
    return tuple(found)
