"""Balancer, endpoint matching and the EXTERNAL-IP pool, without any sockets."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from miniorch.proxy.balancer import Backend, Balancer, affinity_timeout, ready_backends
from miniorch.proxy.external_ips import ExternalIPPool


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t


A, B, C = Backend("10.244.1.2", 8080), Backend("10.244.2.2", 8080), Backend("10.244.3.2", 8080)


def balancer(*backends: Backend, affinity: float | None = None) -> tuple[Balancer, FakeClock]:
    clock = FakeClock()
    b = Balancer(clock=clock, description="default/web")
    b.configure(affinity_seconds=affinity)
    b.update(list(backends))
    return b, clock


def test_round_robin_and_failover_order() -> None:
    b, _ = balancer(A, B, C)
    assert [b.candidates(None) for _ in range(4)] == [[A, B, C], [B, C, A], [C, A, B], [A, B, C]]


def test_update_keeps_rotation_position() -> None:
    b, _ = balancer(A, B, C)
    b.candidates(None)
    b.update([A, B, C, Backend("10.244.4.2", 8080)])
    assert b.candidates(None)[0] == B


def test_failed_backend_goes_last_for_a_while() -> None:
    b, clock = balancer(A, B, C)
    b.failed(A)
    firsts = Counter(b.candidates(None)[0] for _ in range(6))
    assert A not in firsts
    clock.t += 5
    assert A in {b.candidates(None)[0] for _ in range(3)}


def test_client_ip_affinity_expires_after_idle_timeout() -> None:
    b, clock = balancer(A, B, C, affinity=60)
    first = b.candidates("192.0.2.1")[0]
    b.succeeded("192.0.2.1", first)
    for _ in range(5):
        clock.t += 50  # each use refreshes the timer
        assert b.candidates("192.0.2.1")[0] == first
        b.succeeded("192.0.2.1", first)
    clock.t += 61
    b.candidates("192.0.2.9")  # someone else moves the rotation on
    assert b.candidates("192.0.2.1")[0] != first


def test_no_backends_means_no_candidates() -> None:
    b, _ = balancer()
    assert b.candidates("192.0.2.1") == []


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({}, None, id="none"),
    pytest.param({"sessionAffinity": "ClientIP"}, 10800.0, id="default-timeout"),
    pytest.param({"sessionAffinity": "ClientIP",
                  "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}, 30.0,
                 id="explicit"),
])
def test_affinity_timeout(spec: dict, expected: float | None) -> None:  # type: ignore[type-arg]
    assert affinity_timeout({"spec": spec}) == expected


ENDPOINTS = {"subsets": [
    {"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.2.2"}],
     "notReadyAddresses": [{"ip": "10.244.3.2"}],
     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "metrics", "port": 9090, "protocol": "TCP"}]},
]}


def test_ready_backends_match_port_by_name_and_skip_not_ready() -> None:
    assert ready_backends(ENDPOINTS, port_name="metrics", single_port=False) == [
        Backend("10.244.1.2", 9090), Backend("10.244.2.2", 9090)]
    assert ready_backends(ENDPOINTS, port_name="other", single_port=False) == []
    assert ready_backends(None, port_name="", single_port=True) == []


def test_single_port_service_accepts_unnamed_endpoint_port() -> None:
    ep = {"subsets": [{"addresses": [{"ip": "10.244.1.2"}], "ports": [{"port": 8080}]}]}
    assert ready_backends(ep, port_name="web", single_port=True) == [Backend("10.244.1.2", 8080)]


def test_pool_allocates_lowest_free_and_honours_claims() -> None:
    pool = ExternalIPPool("127.0.100.0/24")
    assert pool.claim(("default", "old"), "127.0.100.2")
    assert pool.allocate(("default", "a")) == "127.0.100.1"
    assert pool.allocate(("default", "b")) == "127.0.100.3"
    assert pool.allocate(("default", "a")) == "127.0.100.1"  # idempotent
    assert not pool.claim(("default", "c"), "127.0.100.1")  # taken
    assert not pool.claim(("default", "c"), "10.0.0.1")  # outside the pool
    assert pool.release(("default", "a")) == "127.0.100.1"
    assert pool.allocate(("default", "c")) == "127.0.100.1"


def test_pool_exhaustion() -> None:
    pool = ExternalIPPool("127.0.100.0/30")  # two host addresses
    assert pool.allocate(("n", "a")) and pool.allocate(("n", "b"))
    assert pool.allocate(("n", "c")) is None
