"""TLS material for the API server: a cluster CA, a serving certificate, a bearer token.

kubectl sends a bearer token only over HTTPS (kubectl-compat.md, "Three things"), so
the API always serves TLS. At first start `ensure_tls()` creates, under `tls_dir`:

    ca.crt  ca.key         the cluster CA (EC P-256, 10 years)
    server.crt server.key  the serving certificate, signed by the CA, for loopback,
                           localhost, the `kubernetes` Service names and its ClusterIP
    token                  the admin bearer token (secrets.token_urlsafe)

Invariants:
- Later starts reuse everything, so kubeconfigs already handed out stay valid. The
  serving certificate alone is re-issued (by the same CA) when it lacks a name or
  address this start needs, or is about to expire.
- Private keys and the token are written with mode 0600, atomically (write to a temp
  file, then rename), so a crash never leaves half a key behind.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=825)
RENEW_BEFORE = dt.timedelta(days=30)

DEFAULT_DNS_NAMES = (
    "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
DEFAULT_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True, kw_only=True)
class TlsMaterial:
    """Paths of the files on disk plus what clients need in memory."""

    ca_cert_path: Path
    cert_path: Path
    key_path: Path
    ca_pem: bytes
    token: str

    def server_ssl_context(self) -> ssl.SSLContext:
        """An SSL context serving our certificate (HTTP/1.1 only: aiohttp has no h2)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        context.set_alpn_protocols(["http/1.1"])
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only our CA (for in-process clients and tests)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def ensure_tls(tls_dir: Path, *, ips: Iterable[str] = (), dns_names: Iterable[str] = (),
               now: dt.datetime | None = None) -> TlsMaterial:
    """Create (first start) or load the CA, serving certificate and token under `tls_dir`.

    `ips` and `dns_names` are added to the defaults (loopback, localhost, the
    `kubernetes` Service names); pass the API host and the first ClusterIP here.
    """
    moment = now or dt.datetime.now(dt.UTC)
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_crt, ca_key = tls_dir / "ca.crt", tls_dir / "ca.key"
    srv_crt, srv_key = tls_dir / "server.crt", tls_dir / "server.key"
    token_path = tls_dir / "token"

    if ca_crt.exists() and ca_key.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key}: expected an EC private key")
        ca_private = loaded
    else:
        ca_private = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_private, moment)
        _write(ca_key, _key_pem(ca_private), mode=0o600)
        _write(ca_crt, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        # A new CA invalidates any serving certificate signed by an older one.
        srv_crt.unlink(missing_ok=True)

    wanted_ips = {ipaddress.ip_address(a) for a in (*DEFAULT_IPS, *ips) if _is_ip(a)}
    wanted_dns = {*DEFAULT_DNS_NAMES, *dns_names, *(a for a in ips if not _is_ip(a))}
    if not _serving_cert_ok(srv_crt, srv_key, ca_cert, wanted_ips, wanted_dns, moment):
        private = ec.generate_private_key(ec.SECP256R1())
        cert = _make_serving(private, ca_private, ca_cert, wanted_ips, wanted_dns, moment)
        _write(srv_key, _key_pem(private), mode=0o600)
        _write(srv_crt, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)

    if token_path.exists() and token_path.read_text().strip():
        token = token_path.read_text().strip()
    else:
        token = secrets.token_urlsafe(32)
        _write(token_path, token.encode(), mode=0o600)

    return TlsMaterial(ca_cert_path=ca_crt, cert_path=srv_crt, key_path=srv_key,
                       ca_pem=ca_crt.read_bytes(), token=token)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # the umask may have narrowed or widened os.open's mode
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _make_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "miniorch-ca")])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_serving(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                  ca_cert: x509.Certificate, ips: set[ipaddress.IPv4Address |
                                                       ipaddress.IPv6Address],
                  dns: set[str], now: dt.datetime) -> x509.Certificate:
    public = key.public_key()
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(dns)]
    sans += [x509.IPAddress(a) for a in sorted(ips, key=str)]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_cert.subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVING_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, key_cert_sign=False,
            crl_sign=False, content_commitment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _serving_cert_ok(crt: Path, key: Path, ca_cert: x509.Certificate,
                     ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address], dns: set[str],
                     now: dt.datetime) -> bool:
    if not (crt.exists() and key.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    have_dns = set(san.get_values_for_type(x509.DNSName))
    return ips <= have_ips and dns <= have_dns
