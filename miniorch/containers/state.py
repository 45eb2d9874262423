"""Containers on disk: `$MINIORCH_HOME/containers/<id>/`, the only shared state.

    <id>/config.json     what the container was asked to be (written once, by `run`)
    <id>/state.json      what it is (written atomically by its supervisor only)
    <id>/container.log   Docker's json-file log: {"log": "...", "stream": "stdout", "time"}
    <id>/supervisor.log  the supervisor's own log
    <id>/rw/{upper,work} the writable layer (kept until `rm`, like Docker's)
    <id>/sandbox/        runtime files of the sandbox (shim log, /etc files)
    settings.json        (optional) ContainerSettings for this state dir (tests use it)
    .lock                flock: name reservation, IP allocation, bridge create/remove

Invariants:
- A container dir exists iff the container exists (`rm` removes it); config.json is
  written before the dir becomes visible (rename), so a listed container always has one.
- state.json says "running" only while its supervisor process lives; a reader that finds
  the supervisor dead sees the container as exited (137) until `cleanup` records it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NewType

from miniorch.containers.names import random_name

ContainerId = NewType("ContainerId", str)
"""64 lowercase hex digits; the first 12 are the short id and the hostname."""

STATUS_CREATED = "created"
STATUS_RUNNING = "running"
STATUS_EXITED = "exited"


@dataclass(frozen=True, kw_only=True)
class ContainerSettings:
    """Where containers plug in. One bridge per state dir's settings, created on first
    use and removed with the last running container."""

    bridge: str = "mo-docker0"
    """The containers' bridge (≤ 15 chars); not the cluster's `miniorch0`."""
    subnet: str = "10.88.0.0/16"
    """Container IPs; the gateway (host side) is the first address."""
    id_prefix: str = "moc-"
    """Names every sandbox (netns, host veth, cgroup) as prefix + id hex, ≤ 15 chars.
    Not `mo-`: a cluster's cleanup (prefix `mo-`) must never touch containers."""

    @classmethod
    def load(cls, root: Path) -> ContainerSettings:
        """`<root>/settings.json` if present (tests give each run its own), else defaults."""
        try:
            doc = json.loads((root / "settings.json").read_text())
        except FileNotFoundError:
            return cls()
        return cls(**doc)

    def save(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "settings.json").write_text(json.dumps(asdict(self)))


@dataclass(frozen=True, kw_only=True)
class PortBinding:
    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"


@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    """config.json: fixed at `run`."""

    id: ContainerId
    name: str
    created: str
    """RFC 3339 with nanoseconds, as Docker's."""
    image_ref: str
    """What the user typed (`kubia`): Docker's Config.Image."""
    image_id: str
    """sha256:… of the image config (Docker's IMAGE ID)."""
    path: str
    args: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    env: tuple[str, ...]
    workdir: str
    exposed_ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortBinding, ...] = ()
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    lower_dirs: tuple[str, ...] = ()
    """The image's unpacked layers, topmost first (overlay lowerdirs)."""
    settings: ContainerSettings = field(default_factory=ContainerSettings)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def argv(self) -> list[str]:
        return [self.path, *self.args]

    @property
    def sandbox_id(self) -> str:
        return (self.settings.id_prefix + self.id)[:15]

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["labels"] = dict(self.labels)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ContainerConfig:
        d = dict(doc)
        d["id"] = ContainerId(d["id"])
        for key in ("args", "env", "exposed_ports", "lower_dirs"):
            d[key] = tuple(d.get(key) or ())
        for key in ("entrypoint", "cmd"):
            d[key] = tuple(d[key]) if d.get(key) is not None else None
        d["ports"] = tuple(PortBinding(**p) for p in d.get("ports") or ())
        d["settings"] = ContainerSettings(**(d.get("settings") or {}))
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class ContainerState:
    """state.json: written by the supervisor at each transition."""

    status: str = STATUS_CREATED
    pid: int = 0
    """The app's host pid while running."""
    supervisor_pid: int = 0
    ip: str = ""
    gateway: str = ""
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ContainerState:
        return cls(**doc)


@dataclass(frozen=True)
class Container:
    config: ContainerConfig
    state: ContainerState
    dir: Path

    @property
    def id(self) -> ContainerId:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def running(self) -> bool:
        return self.state.status == STATUS_RUNNING


def now_rfc3339() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def parse_time(text: str) -> datetime | None:
    with contextlib.suppress(ValueError):
        # Python's fromisoformat takes at most microseconds: drop the nanoseconds.
        head, _, frac = text.rstrip("Z").partition(".")
        return datetime.fromisoformat(head + ("." + frac[:6] if frac else "")).replace(
            tzinfo=UTC)
    return None


def pid_alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def write_json_atomic(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


class ContainerDirs:
    """The `containers/` folder of one state dir: listing, lookup, reservation."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def settings(self) -> ContainerSettings:
        return ContainerSettings.load(self.root)

    def load(self, directory: Path) -> Container | None:
        try:
            config = ContainerConfig.from_json(json.loads((directory / "config.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        try:
            state = ContainerState.from_json(json.loads((directory / "state.json").read_text()))
        except (OSError, ValueError, TypeError):
            state = ContainerState()
        if state.status == STATUS_RUNNING and not pid_alive(state.supervisor_pid):
            # The supervisor was killed: the container died with it (PDEATHSIG chain).
            state = replace(state, status=STATUS_EXITED, exit_code=137,
                            error="the container's supervisor died", pid=0)
        return Container(config, state, directory)

    def all(self) -> list[Container]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if entry.is_dir() and len(entry.name) == 64:
                c = self.load(entry)
                if c is not None:
                    found.append(c)
        found.sort(key=lambda c: c.config.created, reverse=True)
        return found

    def find(self, ref: str) -> Container | None:
        """By name (with or without the leading /), full id or unique id prefix."""
        name = ref.removeprefix("/")
        everything = self.all()
        for c in everything:
            if c.name == name or c.id == ref:
                return c
        matches = [c for c in everything if ref and c.id.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def reserve(self, config_for: Any, *, name: str | None) -> ContainerConfig:
        """Pick an id (and a random name if none), check the name is free and create
        the container dir with its config.json, atomically with respect to other runs.

        `config_for(id, name) -> ContainerConfig`. Raises NameConflict."""
        with self.locked():
            taken = {c.name: c.id for c in self.all()}
            if name is not None and name in taken:
                raise NameConflict(name, taken[name])
            while True:
                cid = ContainerId(secrets.token_hex(32))
                if not cid[:12].isdigit():  # Docker avoids all-digit short ids too
                    break
            chosen = name
            while chosen is None or chosen in taken:
                chosen = random_name()
            config: ContainerConfig = config_for(cid, chosen)
            tmp = self.root / f".new-{cid}"
            tmp.mkdir(parents=True)
            write_json_atomic(tmp / "config.json", config.to_json())
            write_json_atomic(tmp / "state.json", asdict(ContainerState()))
            os.rename(tmp, self.root / cid)
            return config

    def running_ips(self, *, exclude: Sequence[str] = ()) -> set[str]:
        """Addresses held by a container whose supervisor lives (created or running)."""
        return {c.state.ip for c in self.all()
                if c.state.ip and c.state.status != STATUS_EXITED
                and pid_alive(c.state.supervisor_pid) and c.id not in exclude}


class NameConflict(Exception):
    def __init__(self, name: str, owner: str) -> None:
        super().__init__(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{owner}". You have to remove (or rename) that container to be able to reuse '
            "that name.")
