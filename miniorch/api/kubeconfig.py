"""The kubeconfig miniorch writes for kubectl, the Python client and its own CLI.

    ApiServer (at start) ──write_kubeconfig──► $MINIORCH_HOME/kubeconfig (0600)
    CLI / tests          ──load_kubeconfig───► KubeConfig(server, ca_pem, token, namespace)

The file is exactly kubectl-compat.md §10: one cluster with the CA inline
(`certificate-authority-data`, never combined with `insecure-skip-tls-verify`, which
client-go refuses), one user with a bearer token, one context, current. The loader
reads the current context of any kubeconfig of that shape (including ones kubectl
edited, e.g. `kubectl config set-context --current --namespace=x`).
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CLUSTER = "miniorch"
USER = "miniorch-admin"
CONTEXT = "miniorch"


@dataclass(frozen=True, kw_only=True)
class KubeConfig:
    server: str
    """`https://127.0.0.1:6443`"""
    ca_pem: bytes
    token: str
    namespace: str = "default"


class KubeConfigError(ValueError):
    """The kubeconfig is missing, unreadable or lacks what we need."""


def render_kubeconfig(*, server: str, ca_pem: bytes, token: str,
                      namespace: str = "default") -> str:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": USER, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {
            "cluster": CLUSTER, "user": USER, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, *, server: str, ca_pem: bytes, token: str,
                     namespace: str = "default") -> None:
    """Write atomically with mode 0600 (it holds the admin token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_kubeconfig(server=server, ca_pem=ca_pem, token=token, namespace=namespace)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _named(entries: Any, name: str, what: str, path: Path) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(what)
            if isinstance(body, dict):
                return body
    raise KubeConfigError(f"{path}: no {what} named {name!r}")


def load_kubeconfig(path: Path, *, context: str | None = None) -> KubeConfig:
    """Read the current (or the given) context's server, CA, token and namespace."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise KubeConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeConfigError(f"{path}: not a kubeconfig")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise KubeConfigError(f"{path}: no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context", path)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster", "")), "cluster", path)
    user = _named(doc.get("users"), str(ctx.get("user", "")), "user", path)
    server = cluster.get("server")
    if not server:
        raise KubeConfigError(f"{path}: cluster has no server")
    if cluster.get("certificate-authority-data"):
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        if not ca_path.is_absolute():
            ca_path = path.parent / ca_path
        ca_pem = ca_path.read_bytes()
    else:
        raise KubeConfigError(f"{path}: cluster has no certificate authority")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    if not token:
        raise KubeConfigError(f"{path}: user has no token")
    return KubeConfig(server=str(server), ca_pem=ca_pem, token=str(token),
                      namespace=str(ctx.get("namespace") or "default"))
