"""A pod's volumes on the host, and the mounts each container gets.

    pod spec volumes ──► PodVolumes.setup()  (before the sandbox, as kubelet mounts first)
       configMap / secret ──► <pod dir>/.volumes/kubernetes.io~configmap/<name>/   atomic
                              <pod dir>/.volumes/kubernetes.io~secret/<name>/      writer
       emptyDir           ──► <pod dir>/.volumes/kubernetes.io~empty-dir/<name>/  (0777)
       projected          ──► <pod dir>/.volumes/kubernetes.io~projected/<name>/  atomic
         (serviceAccountToken from the TokenSource, configMap, secret, downwardAPI
          metadata fields, in one directory: the `kube-api-access-*` volume)
         medium: Memory   ──► same dir, a tmpfs over it in the pod's mount namespace
                              (SandboxConfig.tmpfs: it lives and dies with the sandbox)
    ConfigWatch change   ──► PodVolumes.refresh() ──► atomic swap of the changed volumes
    token at 80 % of its life ──► PodVolumes.refresh() (the pod worker's timer, from
                              next_token_refresh()) ──► a fresh token, swapped in
    container volumeMounts ──► mounts_for(container) ──► cri.Mount (host path → path in
                              the container, read-only for configMap/secret; subPath: one
                              file or dir, resolved now, so later swaps do not reach it)

Errors are kubelet's (`configmap "x" not found`, `configmap references non-existent
config key: k`) and stop the pod before its sandbox (FailedMount, retried); an
`optional` source that is missing gives an empty volume.

Invariants: everything lives under `<pod dir>/.volumes` (a dot name: no container name
can clash), so removing the pod dir removes every volume; tmpfs mounts exist only inside
the pod's mount namespace, so nothing is left mounted on the host when the sandbox goes.
Secret data is base64 in the API and written decoded; ConfigMap `binaryData` too.
A projected token is re-requested once 80 % of its lifetime (or 24 h) has passed, as
kubelet's token manager does; until then every rewrite reuses the same token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from miniorch.core.objects import Obj, namespace_of
from miniorch.core.quantity import QuantityError, parse_quantity
from miniorch.node import atomicwriter
from miniorch.node.atomicwriter import FileProjection, PayloadError
from miniorch.node.cri import Mount, Tmpfs
from miniorch.node.envvars import ConfigError, PodFacts, Sources, decode_secret_value, field_value

VOLUMES_DIR = ".volumes"
_PLUGINS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
            "emptyDir": "kubernetes.io~empty-dir", "projected": "kubernetes.io~projected"}
_FILES = ("configMap", "secret", "projected")
"""Plugins whose files come from API objects (atomic writer, refreshed, read-only)."""
TOKEN_REFRESH_FRACTION = 0.8
TOKEN_REFRESH_MAX_AGE = 24 * 3600.0

TokenSource = Callable[[str, int], tuple[str, float]]
"""(audience or "" for the API's, expirationSeconds) → (token, expiry in Unix seconds);
raises VolumeError's message as a `TokenError`."""


class TokenError(Exception):
    """A token could not be had (its ServiceAccount is missing, …): FailedMount."""


def _no_tokens(audience: str, seconds: int) -> tuple[str, float]:
    raise TokenError("no service-account token issuer on this node")
_SUBPATH_BAD = re.compile(r"(^|/)\.\.(/|$)")


class VolumeError(Exception):
    """A volume cannot be set up yet (→ FailedMount, retried)."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume
        self.message = message

    def event_message(self) -> str:
        return f'MountVolume.SetUp failed for volume "{self.volume}" : {self.message}'


@dataclass(frozen=True)
class _Volume:
    name: str
    plugin: str
    """configMap, secret or emptyDir; "" for a source this kubelet does not serve."""
    spec: Obj


def _size(value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(parse_quantity(value))
    except QuantityError:
        return None


class PodVolumes:
    def __init__(self, pod: Obj, pod_dir: Path, sources: Sources, *,
                 tokens: TokenSource = _no_tokens,
                 now: Callable[[], float] = lambda: 0.0) -> None:
        self.pod = pod
        self.namespace = namespace_of(pod)
        self.root = pod_dir / VOLUMES_DIR
        self.sources = sources
        self.tokens = tokens
        self.now = now
        self._tokens: dict[tuple[str, int], tuple[str, float]] = {}
        """(audience, expirationSeconds) → (token, when to request a new one)."""
        self.volumes: dict[str, _Volume] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name"))
            plugin = next((p for p in _PLUGINS if volume.get(p) is not None), "")
            self.volumes[name] = _Volume(name, plugin, volume.get(plugin) or {})
        self.ready = False
        """True once setup() succeeded: from then on refresh() keeps them current."""

    def host_dir(self, name: str) -> Path:
        volume = self.volumes[name]
        return self.root / _PLUGINS.get(volume.plugin, "unsupported") / name

    def unsupported(self) -> list[str]:
        """Volumes of a kind this kubelet does not serve (hostPath, PVCs, ...)."""
        return sorted(v.name for v in self.volumes.values() if not v.plugin)

    # ---- payloads -------------------------------------------------------------------

    def _payload(self, volume: _Volume) -> dict[str, FileProjection] | None:
        """The files of a configMap/secret/projected volume (None: optional and absent)."""
        if volume.plugin == "projected":
            return self._projected(volume)
        return self._object_payload(volume.name, volume.plugin, volume.spec,
                                    int(volume.spec.get("defaultMode", 0o644)))

    def _projected(self, volume: _Volume) -> dict[str, FileProjection]:
        """kubelet's projected volume: every source's files in one directory."""
        default_mode = int(volume.spec.get("defaultMode", 0o644))
        payload: dict[str, FileProjection] = {}
        for source in volume.spec.get("sources") or []:
            if not isinstance(source, dict):
                continue
            if source.get("serviceAccountToken") is not None:
                token_spec = source["serviceAccountToken"] or {}
                token = self._token(volume.name, str(token_spec.get("audience") or ""),
                                    int(token_spec.get("expirationSeconds") or 3600))
                payload[str(token_spec.get("path") or "token")] = FileProjection(
                    token.encode(), default_mode)
            elif source.get("downwardAPI") is not None:
                for item in (source["downwardAPI"] or {}).get("items") or []:
                    ref = item.get("fieldRef") or {}
                    try:
                        # Volumes may only project metadata (the API refuses status.*).
                        value = field_value(self.pod, str(ref.get("fieldPath") or ""),
                                            PodFacts(pod_ip="", host_ip=""))
                    except ConfigError as exc:
                        raise VolumeError(volume.name, str(exc)) from exc
                    payload[str(item.get("path"))] = FileProjection(
                        value.encode(), int(item.get("mode", default_mode)))
            else:
                for plugin in ("configMap", "secret"):
                    spec = source.get(plugin)
                    if spec is None:
                        continue
                    # A projected secret names itself with `name`, a volume with secretName.
                    spec = {**spec, "secretName": spec.get("name")} if plugin == "secret" \
                        else spec
                    payload.update(self._object_payload(volume.name, plugin, spec,
                                                        default_mode) or {})
        return payload

    def _token(self, volume: str, audience: str, seconds: int) -> str:
        key = (audience, seconds)
        cached = self._tokens.get(key)
        now = self.now()
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            token, expires = self.tokens(audience, seconds)
        except TokenError as exc:
            if cached is not None:
                return cached[0]  # keep serving the old one while it lasts, as kubelet
            raise VolumeError(volume, f"failed to fetch token: {exc}") from exc
        life = max(expires - now, 0.0)
        self._tokens[key] = (token, now + min(life * TOKEN_REFRESH_FRACTION,
                                              TOKEN_REFRESH_MAX_AGE))
        return token

    @property
    def has_tokens(self) -> bool:
        """A projected volume carries a service-account token (renewed on a timer)."""
        return any(v.plugin == "projected" and any(
            isinstance(src, dict) and src.get("serviceAccountToken") is not None
            for src in v.spec.get("sources") or []) for v in self.volumes.values())

    def next_token_refresh(self) -> float | None:
        """When the earliest projected token is due for renewal (None: no token)."""
        return min((at for _token, at in self._tokens.values()), default=None)

    def _object_payload(self, volume_name: str, plugin: str, spec: Obj,
                        default_mode: int) -> dict[str, FileProjection] | None:
        optional = bool(spec.get("optional"))
        if plugin == "configMap":
            name = str(spec.get("name") or "")
            obj = self.sources.config_map(self.namespace, name)
            kind = "configmap"
            if obj is None:
                if optional:
                    return None
                raise VolumeError(volume_name, f'configmap "{name}" not found')
            data: dict[str, bytes] = {k: str(v).encode()
                                      for k, v in (obj.get("data") or {}).items()}
            binary = obj.get("binaryData") or {}
            data.update({k: decode_secret_value(v) for k, v in binary.items()})
        else:
            name = str(spec.get("secretName") or "")
            obj = self.sources.secret(self.namespace, name)
            kind = "secret"
            if obj is None:
                if optional:
                    return None
                raise VolumeError(volume_name, f'secret "{name}" not found')
            data = {k: decode_secret_value(v) for k, v in (obj.get("data") or {}).items()}
        items = spec.get("items")
        if not items:
            return {key: FileProjection(value, default_mode) for key, value in data.items()}
        payload: dict[str, FileProjection] = {}
        for item in items:
            key = str(item.get("key"))
            if key not in data:
                if optional:
                    continue
                noun = "config key" if kind == "configmap" else "secret key"
                raise VolumeError(volume_name, f"{kind} references non-existent {noun}: {key}")
            payload[str(item.get("path"))] = FileProjection(
                data[key], int(item.get("mode", default_mode)))
        return payload

    def _write(self, volume: _Volume) -> bool:
        payload = self._payload(volume) or {}
        try:
            return atomicwriter.write(self.host_dir(volume.name), payload)
        except PayloadError as exc:
            raise VolumeError(volume.name, str(exc)) from exc
        except OSError as exc:
            raise VolumeError(volume.name, f"writing the volume: {exc}") from exc

    # ---- life -----------------------------------------------------------------------

    def setup(self) -> None:
        """Create every volume; raises the first VolumeError (the others are set up)."""
        first: VolumeError | None = None
        for volume in self.volumes.values():
            try:
                if volume.plugin == "emptyDir":
                    directory = self.host_dir(volume.name)
                    directory.mkdir(parents=True, exist_ok=True)
                    directory.chmod(0o777)  # kubelet's emptyDir: any container user writes
                elif volume.plugin in _FILES:
                    self._write(volume)
            except VolumeError as exc:
                first = first or exc
        if first is not None:
            raise first
        self.ready = True

    def refresh(self) -> list[str]:
        """Rewrite the configMap/secret/projected volumes whose data changed (atomic
        swap), renewing projected tokens that are due; the names of those rewritten.
        A source that went away keeps its last files (as kubelet does); the errors
        are raised after the others are refreshed."""
        if not self.ready:
            return []
        changed: list[str] = []
        first: VolumeError | None = None
        for volume in self.volumes.values():
            if volume.plugin not in _FILES:
                continue
            try:
                if self._write(volume):
                    changed.append(volume.name)
            except VolumeError as exc:
                first = first or exc
        if first is not None:
            raise first
        return changed

    def tmpfs(self) -> tuple[Tmpfs, ...]:
        """The `medium: Memory` emptyDirs: tmpfs in the pod's mount namespace."""
        return tuple(Tmpfs(path=self.host_dir(v.name), size_bytes=_size(v.spec.get("sizeLimit")))
                     for v in self.volumes.values()
                     if v.plugin == "emptyDir" and v.spec.get("medium") == "Memory")

    def mounts_for(self, container: Obj) -> tuple[Mount, ...]:
        """The container's volumeMounts as host → container binds, shallowest first (a
        mount inside another volume's mount point must come after it)."""
        mounts: list[Mount] = []
        for mount in container.get("volumeMounts") or []:
            volume = self.volumes.get(str(mount.get("name")))
            if volume is None or not volume.plugin:
                continue
            base = self.host_dir(volume.name)
            read_only = bool(mount.get("readOnly")) or volume.plugin != "emptyDir"
            sub_path = str(mount.get("subPath") or "")
            source = base
            within: Path | None = None
            if sub_path:
                if sub_path.startswith("/") or _SUBPATH_BAD.search(sub_path):
                    raise VolumeError(volume.name, f"invalid subpath {sub_path!r}")
                source = base / sub_path
                within = base
                if volume.plugin != "emptyDir":
                    # Pin this version's file: `key` → ..data/key → ..<version>/key.
                    resolved = Path(os.path.realpath(source))
                    if not resolved.is_relative_to(os.path.realpath(base)):
                        raise VolumeError(volume.name,
                                          f"subpath {sub_path!r} is outside the volume")
                    source = resolved
            mounts.append(Mount(host_path=source, container_path=str(mount["mountPath"]),
                                read_only=read_only, within=within,
                                create=bool(sub_path) and volume.plugin == "emptyDir"))
        return tuple(sorted(mounts, key=lambda m: len(Path(m.container_path).parts)))

    def mounted_names(self, containers: Mapping[str, Obj]) -> list[str]:
        """Volumes some container mounts (plain mode warns that it cannot)."""
        names = {str(m.get("name")) for c in containers.values()
                 for m in c.get("volumeMounts") or []}
        return sorted(names & set(self.volumes))
