"""TLS material and kubeconfig: created once, reused, private files 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from miniorch.api.kubeconfig import KubeConfigError, load_kubeconfig, write_kubeconfig
from miniorch.api.tls import ensure_tls


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sans(path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(a) for a in san.get_values_for_type(x509.IPAddress)},
            set(san.get_values_for_type(x509.DNSName)))


def test_first_start_creates_ca_cert_and_token(tmp_path: Path) -> None:
    material = ensure_tls(tmp_path / "tls", ips=["10.96.0.1"])
    ips, names = _sans(material.cert_path)
    assert {"127.0.0.1", "::1", "10.96.0.1"} <= ips
    assert {"localhost", "kubernetes", "kubernetes.default.svc"} <= names
    assert _mode(material.key_path) == 0o600
    assert _mode(tmp_path / "tls" / "ca.key") == 0o600
    assert _mode(tmp_path / "tls" / "token") == 0o600
    assert len(material.token) >= 32
    # The serving certificate chains to the CA.
    ca = x509.load_pem_x509_certificate(material.ca_pem)
    cert = x509.load_pem_x509_certificate(material.cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert material.server_ssl_context() is not None


def test_later_starts_reuse_everything(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path, ips=["10.96.0.1"])
    second = ensure_tls(tmp_path, ips=["10.96.0.1"])
    assert first.token == second.token
    assert first.ca_pem == second.ca_pem
    assert first.cert_path.read_bytes() == second.cert_path.read_bytes()


def test_serving_cert_reissued_by_same_ca_for_a_new_address(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    old_cert = first.cert_path.read_bytes()
    second = ensure_tls(tmp_path, ips=["127.0.0.42", "myhost"])
    assert second.ca_pem == first.ca_pem and second.token == first.token
    assert second.cert_path.read_bytes() != old_cert
    ips, names = _sans(second.cert_path)
    assert "127.0.0.42" in ips and "myhost" in names


def test_serving_cert_renewed_before_expiry(tmp_path: Path) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=820)
    first = ensure_tls(tmp_path, now=long_ago)
    old = first.cert_path.read_bytes()
    assert ensure_tls(tmp_path).cert_path.read_bytes() != old


def test_kubeconfig_shape_mode_and_round_trip(tmp_path: Path) -> None:
    material = ensure_tls(tmp_path / "tls")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server="https://127.0.0.1:7443", ca_pem=material.ca_pem,
                     token=material.token)
    assert _mode(path) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "miniorch"
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:7443"
    assert "insecure-skip-tls-verify" not in cluster
    assert doc["users"][0] == {"name": "miniorch-admin", "user": {"token": material.token}}
    assert doc["contexts"][0]["context"] == {"cluster": "miniorch", "user": "miniorch-admin",
                                             "namespace": "default"}
    loaded = load_kubeconfig(path)
    assert (loaded.server, loaded.ca_pem, loaded.token, loaded.namespace) == (
        "https://127.0.0.1:7443", material.ca_pem, material.token, "default")


def test_load_kubeconfig_errors(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="cannot read"):
        load_kubeconfig(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(KubeConfigError, match="current-context"):
        load_kubeconfig(bad)


def test_ip_sans_are_addresses_not_names(tmp_path: Path) -> None:
    material = ensure_tls(tmp_path, ips=["::1"])
    ips, names = _sans(material.cert_path)
    assert all(ipaddress.ip_address(a) for a in ips)
    assert "::1" not in names


# ---- the ApiServer actor: binding, kubeconfig, shutdown ------------------------------------

async def test_busy_port_fails_with_a_clear_error(tmp_path: Path) -> None:
    import socket

    from miniorch.api.server import ApiServer
    from miniorch.core.clock import SystemClock
    from miniorch.core.settings import Settings
    from tests.api.server_support import local_spawner, make_registry

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        settings = Settings(home=tmp_path, api_port=port)
        registry = make_registry(tmp_path)
        server = ApiServer(settings=settings, registry=registry, clock=SystemClock(),
                           spawn_exec=local_spawner)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            await server.run()
        registry.store.close()


async def test_serves_tls_writes_kubeconfig_and_stops_despite_open_watch(
        tmp_path: Path) -> None:
    import json

    import aiohttp
    import anyio

    from miniorch.api.server import ApiServer
    from miniorch.core.clock import SystemClock
    from miniorch.core.settings import Settings
    from tests.api.server_support import local_spawner, make_registry

    settings = Settings(home=tmp_path, api_port=0)
    registry = make_registry(tmp_path)
    server = ApiServer(settings=settings, registry=registry, clock=SystemClock(),
                       spawn_exec=local_spawner)
    async with aiohttp.ClientSession() as session:
        # The client stays connected (its session outlives the server) while it stops.
        async with anyio.create_task_group() as tg:
            url = await tg.start(server.run)
            config = load_kubeconfig(settings.kubeconfig_path)
            assert config.server == url == server.url
            assert server.material is not None
            response = await session.get(
                f"{url}/api/v1/namespaces?watch=true",
                headers={"Authorization": f"Bearer {config.token}"},
                ssl=server.material.client_ssl_context())
            first = json.loads(await response.content.readline())
            assert first["type"] == "ADDED"
            started = anyio.current_time()
            tg.cancel_scope.cancel()
        assert await response.content.read() == b"" or response.content.at_eof()
        response.release()
    assert anyio.current_time() - started < 3
    registry.store.close()
