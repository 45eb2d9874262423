"""A pod's volumes on the host, and the mounts each container gets.

    pod spec volumes ──► PodVolumes.setup()  (before the sandbox, as kubelet mounts first)
       configMap / secret ──► <pod dir>/.volumes/kubernetes.io~configmap/<name>/   atomic
                              <pod dir>/.volumes/kubernetes.io~secret/<name>/      writer
       emptyDir           ──► <pod dir>/.volumes/kubernetes.io~empty-dir/<name>/  (0777)
         medium: Memory   ──► same dir, a tmpfs over it in the pod's mount namespace
                              (SandboxConfig.tmpfs: it lives and dies with the sandbox)
    ConfigWatch change   ──► PodVolumes.refresh() ──► atomic swap of the changed volumes
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
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from miniorch.core.objects import Obj, namespace_of
from miniorch.core.quantity import QuantityError, parse_quantity
from miniorch.node import atomicwriter
from miniorch.node.atomicwriter import FileProjection, PayloadError
from miniorch.node.cri import Mount, Tmpfs
from miniorch.node.envvars import Sources, decode_secret_value

VOLUMES_DIR = ".volumes"
_PLUGINS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
            "emptyDir": "kubernetes.io~empty-dir"}
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
    def __init__(self, pod: Obj, pod_dir: Path, sources: Sources) -> None:
        self.namespace = namespace_of(pod)
        self.root = pod_dir / VOLUMES_DIR
        self.sources = sources
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
        """The files of a configMap/secret volume (None: optional and absent)."""
        spec = volume.spec
        optional = bool(spec.get("optional"))
        if volume.plugin == "configMap":
            name = str(spec.get("name") or "")
            obj = self.sources.config_map(self.namespace, name)
            kind = "configmap"
            if obj is None:
                if optional:
                    return None
                raise VolumeError(volume.name, f'configmap "{name}" not found')
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
                raise VolumeError(volume.name, f'secret "{name}" not found')
            data = {k: decode_secret_value(v) for k, v in (obj.get("data") or {}).items()}
        default_mode = int(spec.get("defaultMode", 0o644))
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
                raise VolumeError(volume.name, f"{kind} references non-existent {noun}: {key}")
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
                elif volume.plugin in ("configMap", "secret"):
                    self._write(volume)
            except VolumeError as exc:
                first = first or exc
        if first is not None:
            raise first
        self.ready = True

    def refresh(self) -> list[str]:
        """Rewrite the configMap/secret volumes whose data changed (atomic swap); the
        names of those rewritten. A source that went away keeps its last files (as
        kubelet does); the errors are raised after the others are refreshed."""
        if not self.ready:
            return []
        changed: list[str] = []
        first: VolumeError | None = None
        for volume in self.volumes.values():
            if volume.plugin not in ("configMap", "secret"):
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
