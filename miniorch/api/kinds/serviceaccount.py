"""ServiceAccount (core/v1): an identity for processes in pods.

    create/update ─► validation of the names it refers to
    Table ─► Name, Secrets (number of referenced secrets), Age
    serviceaccounts/token ─► the server's TokenRequest (api/satokens.py)
    pod create ─► admit_pod (the ServiceAccount admission plugin, from the pod kind's
                  prepare hook): serviceAccountName defaulted and checked, and unless
                  automount is off, the `kube-api-access-<5>` projected volume mounted
                  at /var/run/secrets/kubernetes.io/serviceaccount in every container

Every namespace has a `default` one (the service-account controller,
`controllers/serviceaccounts.py`, creates it, as kube-controller-manager does, with
the `kube-root-ca.crt` ConfigMap the projected volume reads `ca.crt` from).

One deviation: a pod naming the `default` ServiceAccount before the controller made
it is admitted (Kubernetes' plugin waits up to a second for the controller; our
registry is synchronous and must not block). Its kubelet then waits for the account
(FailedMount, retried) before it starts the pod, so no pod runs without its token.
Any other missing account refuses the pod, with kube-apiserver's message.
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause, Forbidden
from miniorch.api.kinds.base import Kind, Subresource, WriteContext
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import invalid, is_dns1123_subdomain
from miniorch.core.objects import Obj, as_dict, as_list, dicts_in, random_suffix

SERVICE_ACCOUNTS = Resource(group="", version="v1", plural="serviceaccounts",
                            singular="serviceaccount", kind="ServiceAccount", namespaced=True,
                            short_names=("sa",))

DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "ServiceAccount": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "secrets": "[]ObjectReference@name", "imagePullSecrets": "[]LocalObjectReference",
        "automountServiceAccountToken": "boolean",
    },
}


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, ref in enumerate(as_list(obj.get("imagePullSecrets"))):
        name = str(as_dict(ref).get("name") or "")
        causes.extend(invalid(f"imagePullSecrets[{i}].name", name, m)
                      for m in is_dns1123_subdomain(name))
    return causes


def _cells(sa: Obj, now: datetime) -> Row:
    meta = as_dict(sa.get("metadata"))
    return [str(meta.get("name", "")), len(as_list(sa.get("secrets"))),
            since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Secrets", "Secrets is a list of the secrets in the same namespace that pods "
                      "running using this ServiceAccount are allowed to use.",
           type="integer"),
    AGE_COLUMN,
)

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
TOKEN_EXPIRATION = 3607
"""What the admission plugin asks for (an hour and 7 s: kubelets tell it from a
user's own hour)."""


def api_access_volume(name: str) -> Obj:
    """The projected volume the admission plugin adds: token, ca.crt, namespace."""
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP,
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def admit_pod(ctx: WriteContext, pod: Obj) -> None:
    """The ServiceAccount admission plugin on a new pod (in place)."""
    meta = as_dict(pod.get("metadata"))
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    if as_dict(meta.get("annotations")).get("kubernetes.io/config.mirror"):
        return  # mirror pods are left as they are
    namespace = str(meta.get("namespace") or "default")
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account  # the deprecated alias the API still fills
    sa = ctx.store.try_get(SERVICE_ACCOUNTS, namespace, account)
    if sa is None and account != "default":
        raise Forbidden(f'pods "{meta.get("name", "")}" is forbidden: error looking up '
                        f'service account {namespace}/{account}: serviceaccount "{account}" '
                        "not found", kind="pods", name=str(meta.get("name", "")))
    automount = spec.get("automountServiceAccountToken")
    if automount is None and sa is not None:
        automount = sa.get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.setdefault("volumes", [])
    if not isinstance(volumes, list):
        return
    taken = {str(as_dict(v).get("name")) for v in volumes}
    name = VOLUME_PREFIX + random_suffix(5)
    while name in taken:
        name = VOLUME_PREFIX + random_suffix(5)
    mounted = False
    for key in ("initContainers", "containers"):
        for container in dicts_in(spec.get(key)):
            mounts = container.setdefault("volumeMounts", [])
            if not isinstance(mounts, list) or any(
                    as_dict(m).get("mountPath") == MOUNT_PATH for m in mounts):
                continue  # the user mounts something there: theirs wins, as in Kubernetes
            mounts.append({"name": name, "readOnly": True, "mountPath": MOUNT_PATH})
            mounted = True
    if mounted:
        volumes.append(api_access_volume(name))


SERVICE_ACCOUNT = Kind(resource=SERVICE_ACCOUNTS, definitions=DEFINITIONS, validate=_validate,
                       columns=COLUMNS, cells=_cells, connect=(
                           Subresource(name="token", kind="TokenRequest", verbs=("create",),
                                       group="authentication.k8s.io", version="v1"),))
