"""Service-account tokens: signed JWTs bound to a pod (Kubernetes' BoundServiceAccountToken).

    kubelet (projected volume) ──request_token(boundObjectRef: Pod)──┐
    POST …/serviceaccounts/<sa>/token (kubectl create token) ────────┴─► ServiceAccountTokens
                                                                          .issue() ─► JWT
    any request ── Authorization: Bearer <jwt> ──► server._auth ──► authenticate()
        verify (ES256 signature, iss, aud, nbf/exp) ─► the SA (and the bound pod) still
        exist with the uids in the token ─► UserInfo(system:serviceaccount:<ns>:<sa>)

A token is `base64url(header).base64url(claims).base64url(r||s)`, signed with ES256 by
the key `tls/sa.key` (EC P-256, created once next to the CA, reused across starts so
tokens handed out before a restart keep working until they expire). Claims are
Kubernetes' own: `iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `jti` and `kubernetes.io`
{namespace, serviceaccount{name, uid}, pod{name, uid}} — so what a program inside the
pod decodes from its token looks as on a real cluster.

Invariants:
- A token is never stored: the API checks it on every request against the objects it
  names. Deleting the pod (or the ServiceAccount, or recreating either under a new uid)
  makes it fail at once, as kube-apiserver's `service account token has been
  invalidated`. A pod that is terminating keeps its token for 60 s past its
  deletionTimestamp, as in Kubernetes (a preStop hook may still call the API).
- Verifying the signature is the only cost beyond two dictionary reads, and it is
  cached per token string for the token's lifetime (bounded cache).
- No authorisation here: who the caller is, not what it may do (see review.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from miniorch.api.authn import AUTHENTICATED, UserInfo
from miniorch.api.errors import BadRequest, Cause, Invalid, NotFound
from miniorch.api.kinds import PODS, SERVICE_ACCOUNTS
from miniorch.api.registry import Registry
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj

ISSUER = "https://kubernetes.default.svc.cluster.local"
"""kube-apiserver's `--service-account-issuer` on most clusters (kind, kubeadm)."""
API_AUDIENCES = (ISSUER,)
"""`--api-audiences` defaults to the issuer: a token for any other audience (one a
pod asked for to show to someone else) is not accepted by the API."""
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
"""TokenRequest refuses less than 10 minutes, as kube-apiserver."""
MAX_EXPIRATION = 2**32
DELETED_POD_GRACE = 60.0
"""Seconds past a bound pod's deletionTimestamp its tokens still work (Kubernetes)."""
SA_GROUP = "system:serviceaccounts"
KEY_FILE = "sa.key"
_CACHE_SIZE = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ensure_signing_key(tls_dir: Path) -> ec.EllipticCurvePrivateKey:
    """Load `tls_dir/sa.key`, creating it (0600, atomically) on first use."""
    path = tls_dir / KEY_FILE
    if not path.exists():
        tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            # link, not rename: if another process made the key meanwhile, keep its key
            # (both must sign with the same one).
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: expected an EC private key")
    return loaded


@dataclass(frozen=True)
class Claims:
    namespace: str
    service_account: str
    service_account_uid: str
    pod: str
    pod_uid: str
    expires: float
    jti: str


class ServiceAccountTokens:
    """Issues and verifies the cluster's service-account JWTs (one signing key)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str = ISSUER,
                 api_audiences: tuple[str, ...] = API_AUDIENCES) -> None:
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer
        self.api_audiences = api_audiences
        der = self._public.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        # kube-apiserver's key id: base64url(sha256(DER public key)).
        self.key_id = _b64(hashlib.sha256(der).digest())
        self._verified: OrderedDict[str, Claims] = OrderedDict()

    @classmethod
    def load(cls, tls_dir: Path) -> ServiceAccountTokens:
        return cls(ensure_signing_key(tls_dir))

    def issue(self, *, namespace: str, service_account: Obj, pod: Obj | None,
              audiences: list[str], expiration_seconds: int, now: float) -> tuple[str, float]:
        """A signed token and its expiry (Unix seconds)."""
        sa_meta = service_account["metadata"]
        private: Obj = {"namespace": namespace,
                        "serviceaccount": {"name": sa_meta["name"], "uid": sa_meta["uid"]}}
        if pod is not None:
            private["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                private["node"] = {"name": node}
        issued = int(now)
        expires = issued + expiration_seconds
        claims: Obj = {"aud": audiences, "exp": expires, "iat": issued, "iss": self.issuer,
                       "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": issued,
                       "sub": f"system:serviceaccount:{namespace}:{sa_meta['name']}"}
        header = {"alg": "ES256", "kid": self.key_id}
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64(json.dumps(claims, separators=(",", ":")).encode()))
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64(signature)}", float(expires)

    def verify(self, token: str, now: float) -> Claims | None:
        """The token's claims if it is ours, for the API, and within its lifetime."""
        cached = self._verified.get(token)
        if cached is None:
            cached = self._check_signature(token, now)
            if cached is None:
                return None
            self._verified[token] = cached
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        if now >= cached.expires:
            self._verified.pop(token, None)
            return None
        return cached

    def _check_signature(self, token: str, now: float) -> Claims | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            signature = _unb64(parts[2])
            if not isinstance(header, dict) or header.get("alg") != "ES256" \
                    or len(signature) != 64:
                return None
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))
            self._public.verify(der, f"{parts[0]}.{parts[1]}".encode(),
                                ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error, InvalidSignature, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            return None
        audiences = claims.get("aud")
        if isinstance(audiences, str):
            audiences = [audiences]
        if not isinstance(audiences, list) or not set(audiences) & set(self.api_audiences):
            return None
        try:
            expires, not_before = float(claims["exp"]), float(claims.get("nbf", 0))
            private = claims["kubernetes.io"]
            sa = private["serviceaccount"]
            pod = private.get("pod") or {}
            parsed = Claims(namespace=str(private["namespace"]), service_account=str(sa["name"]),
                            service_account_uid=str(sa["uid"]), pod=str(pod.get("name", "")),
                            pod_uid=str(pod.get("uid", "")), expires=expires,
                            jti=str(claims.get("jti", "")))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        # A minute of leeway for clocks, as Kubernetes' jwt validation allows.
        if now + 60 < not_before or now >= expires:
            return None
        return parsed

    def authenticate(self, registry: Registry, token: str, now: float) -> UserInfo | None:
        """The service account a token stands for, if it is still valid: signature and
        lifetime, and the ServiceAccount and bound pod still exist with the same uids."""
        claims = self.verify(token, now)
        if claims is None:
            return None
        sa = registry.try_get(SERVICE_ACCOUNTS, claims.namespace, claims.service_account)
        if sa is None or sa["metadata"].get("uid") != claims.service_account_uid:
            return None
        extra: dict[str, list[str]] = {
            "authentication.kubernetes.io/credential-id": [f"JTI={claims.jti}"]}
        if claims.pod:
            pod = registry.try_get(PODS, claims.namespace, claims.pod)
            if pod is None or pod["metadata"].get("uid") != claims.pod_uid:
                return None
            deleting = pod["metadata"].get("deletionTimestamp")
            if deleting and _unix(deleting) + DELETED_POD_GRACE < now:
                return None
            extra["authentication.kubernetes.io/pod-name"] = [claims.pod]
            extra["authentication.kubernetes.io/pod-uid"] = [claims.pod_uid]
        return UserInfo(
            username=f"system:serviceaccount:{claims.namespace}:{claims.service_account}",
            uid=claims.service_account_uid,
            groups=(SA_GROUP, f"{SA_GROUP}:{claims.namespace}", AUTHENTICATED), extra=extra)

    def request_token(self, registry: Registry, namespace: str, name: str, request: Obj, *,
                      now: float) -> Obj:
        """serviceaccounts/token (TokenRequest): the request answered with a token.

        `spec.boundObjectRef` may name a Pod (its uid, when given, must match), which
        the token is then bound to; without one the token lives as long as the
        ServiceAccount (and its expiry)."""
        sa = registry.try_get(SERVICE_ACCOUNTS, namespace, name)
        if sa is None:
            raise NotFound.of("serviceaccounts", name)
        spec = request.get("spec") or {}
        if not isinstance(spec, dict):
            raise BadRequest("spec must be an object")
        seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION
        causes: list[Cause] = []
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise BadRequest("spec.expirationSeconds must be an integer")
        if seconds < MIN_EXPIRATION:
            causes.append(Cause("spec.expirationSeconds", "Invalid value: "
                                f"{seconds}: may not specify a duration less than 10 minutes",
                                "FieldValueInvalid"))
        if seconds > MAX_EXPIRATION:
            causes.append(Cause("spec.expirationSeconds", f"Invalid value: {seconds}: may not "
                                "specify a duration larger than 2^32 seconds",
                                "FieldValueInvalid"))
        audiences = spec.get("audiences") or list(self.api_audiences)
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise BadRequest("spec.audiences must be a list of strings")
        pod: Obj | None = None
        ref = spec.get("boundObjectRef")
        if ref:
            if not isinstance(ref, dict):
                raise BadRequest("spec.boundObjectRef must be an object")
            kind, ref_name = ref.get("kind"), str(ref.get("name") or "")
            if kind != "Pod":
                causes.append(Cause("spec.boundObjectRef.kind", f'Unsupported value: "{kind}": '
                                    'supported values: "Pod"', "FieldValueNotSupported"))
            else:
                pod = registry.try_get(PODS, namespace, ref_name)
                if pod is None:
                    raise NotFound.of("pods", ref_name)
                if ref.get("uid") and ref["uid"] != pod["metadata"].get("uid"):
                    raise Invalid.of("TokenRequest", name, [Cause(
                        "spec.boundObjectRef.uid", f"Invalid value: \"{ref['uid']}\": the UID "
                        "in the bound object reference does not match the pod",
                        "FieldValueInvalid")], group="authentication.k8s.io")
        if causes:
            raise Invalid.of("TokenRequest", name, causes, group="authentication.k8s.io")
        token, expires = self.issue(namespace=namespace, service_account=sa, pod=pod,
                                    audiences=audiences, expiration_seconds=seconds, now=now)
        meta = request.get("metadata") if isinstance(request.get("metadata"), dict) else {}
        bound = dict(ref) if isinstance(ref, dict) else None
        if bound is not None and pod is not None:
            bound.setdefault("apiVersion", "v1")
            bound["uid"] = pod["metadata"]["uid"]
        out_spec: Obj = {"audiences": audiences, "expirationSeconds": seconds,
                         "boundObjectRef": bound}
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {**(meta or {}), "name": name, "namespace": namespace,
                             "creationTimestamp": rfc3339(_from_unix(now))},
                "spec": out_spec,
                "status": {"token": token,
                           "expirationTimestamp": rfc3339(_from_unix(expires))}}


def _unix(text: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _from_unix(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


__all__ = ["API_AUDIENCES", "DEFAULT_EXPIRATION", "ISSUER", "Claims", "ServiceAccountTokens",
           "ensure_signing_key"]
