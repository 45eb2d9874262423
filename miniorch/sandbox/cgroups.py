"""cgroups for pods and containers, on cgroup v1 or v2 (detected, never configured).

Layout (``miniorch`` is the parent every cgroup of ours lives under, so a crashed run's
leftovers are easy to find)::

    v1: /sys/fs/cgroup/{cpu,memory,pids}/miniorch/<pod>/<leaf>   (one dir per hierarchy;
        also cpuacct/… where cpuacct is not co-mounted with cpu: usage is read there)
    v2: /sys/fs/cgroup/miniorch/<pod>/<leaf>                      (one dir)

The pod cgroup carries the limits; processes live only in leaves below it (``init``,
``c-<container>``) because v2 forbids processes in a cgroup that has children, and so a
container's whole process tree can be found and killed without touching its neighbours.

Invariants: `destroy()` kills whatever is still inside before rmdir (a cgroup with
processes cannot be removed), children first; everything is idempotent so cleanup paths
can call it blindly. All calls are small synchronous sysfs writes (microseconds).
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from miniorch.core.logging import get_logger

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "miniorch"
V1_CONTROLLERS = ("cpu", "memory", "pids")
V1_ACCOUNTING = "cpuacct"
"""v1's CPU usage counter lives in cpuacct: co-mounted with cpu on most systems (then
the same directory), a hierarchy of its own on some, where pods get a fourth dir."""
CPU_PERIOD_US = 100_000


class CgroupVersion(enum.Enum):
    V1 = "v1"
    V2 = "v2"


def detect_version(root: Path = CGROUP_ROOT) -> CgroupVersion | None:
    """v2 when the unified hierarchy is mounted at the root; v1 when the controllers
    we need have their own hierarchies; None when neither (no cgroups for us)."""
    if (root / "cgroup.controllers").exists():
        return CgroupVersion.V2
    if all((root / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        return CgroupVersion.V1
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_ints(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


@dataclass(frozen=True)
class CgroupHandle:
    """One cgroup (a directory per v1 hierarchy, or one v2 directory)."""

    version: CgroupVersion
    dirs: tuple[Path, ...]
    """v1: (cpu, memory, pids[, cpuacct]) dirs in that order; v2: (dir,)."""

    @property
    def name(self) -> str:
        return self.dirs[0].name

    @property
    def procs_files(self) -> list[str]:
        """Files a process writes "0" into to join this cgroup (see _shim.join_cgroups)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def _dir(self, controller: str) -> Path:
        if self.version is CgroupVersion.V2:
            return self.dirs[0]
        if controller == V1_ACCOUNTING:
            return self.dirs[3] if len(self.dirs) > 3 else self.dirs[0]
        return self.dirs[V1_CONTROLLERS.index(controller)]

    def child(self, name: str) -> CgroupHandle:
        """A leaf below this cgroup, without limits of its own (created if missing)."""
        if self.version is CgroupVersion.V2:
            # Leaves need the controllers enabled in their parent to be accounted.
            _enable_controllers(self.dirs[0])
        dirs = tuple(d / name for d in self.dirs)
        for d in dirs:
            d.mkdir(exist_ok=True)
        return CgroupHandle(self.version, dirs)

    def add_pid(self, pid: int) -> None:
        for f in self.procs_files:
            _write(Path(f), str(pid))

    def pids(self) -> list[int]:
        """Processes in this cgroup and below it."""
        seen: set[int] = set()
        for d in self._walk(self._dir("pids")):
            seen.update(_read_ints(d / "cgroup.procs"))
        return sorted(seen)

    def memory_usage(self) -> int:
        name = "memory.current" if self.version is CgroupVersion.V2 else "memory.usage_in_bytes"
        values = _read_ints(self._dir("memory") / name)
        return values[0] if values else 0

    def cpu_usage_ns(self) -> int | None:
        """CPU time used by this cgroup's subtree since it was made, in nanoseconds
        (a counter: usage is its rate). None if the cgroup is gone."""
        if self.version is CgroupVersion.V2:
            stat = _read_stat(self._dir("cpu") / "cpu.stat")
            usec = stat.get("usage_usec")
            return None if usec is None else usec * 1000
        values = _read_ints(self._dir(V1_ACCOUNTING) / "cpuacct.usage")
        return values[0] if values else None

    def memory_working_set(self) -> int | None:
        """Bytes of memory the kernel could not reclaim at once: usage minus the
        inactive file cache (what the kubelet and metrics-server report, and what an
        eviction or the OOM killer is judged by). None if the cgroup is gone."""
        memory = self._dir("memory")
        if self.version is CgroupVersion.V2:
            usage, inactive_key = _read_ints(memory / "memory.current"), "inactive_file"
        else:
            usage, inactive_key = (_read_ints(memory / "memory.usage_in_bytes"),
                                   "total_inactive_file")
        if not usage:
            return None
        inactive = _read_stat(memory / "memory.stat").get(inactive_key, 0)
        return max(0, usage[0] - inactive)

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup's subtree (only
        ever compare two readings: v1 may count a kill at the victim's and the limit's
        memcg)."""
        if self.version is CgroupVersion.V2:
            # memory.events is hierarchical already.
            return _oom_kill_count(self._dir("memory") / "memory.events")
        return sum(_oom_kill_count(d / "memory.oom_control")
                   for d in self._walk(self._dir("memory")))

    def kill_all(self, *, timeout: float = 5.0) -> None:
        """SIGKILL everything in this cgroup and below; return once it is empty.

        Killed processes leave the cgroup when they exit (zombies are no longer
        members), so waiting for emptiness also means the tree is dead. A forking
        process could add members while we kill, hence the loop.
        """
        kill_file = self.dirs[0] / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            if self.version is CgroupVersion.V2 and kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
            else:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise TimeoutError(f"cgroup {self.dirs[0]} still has processes {pids}")
            time.sleep(0.002)

    def destroy(self) -> None:
        """Kill what is left, remove this cgroup and its children. Idempotent."""
        if not any(d.exists() for d in self.dirs):
            return
        self.kill_all()
        for d in self.dirs:
            for sub in sorted(self._walk(d), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(FileNotFoundError):
                    sub.rmdir()

    @staticmethod
    def _walk(top: Path) -> Iterator[Path]:
        if not top.is_dir():
            return
        yield top
        for entry in os.scandir(top):
            if entry.is_dir(follow_symlinks=False):
                yield from CgroupHandle._walk(Path(entry.path))


def _read_stat(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (`cpu.stat`, `memory.stat`): `key value` per line."""
    try:
        text = path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _oom_kill_count(path: Path) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except FileNotFoundError:
        pass
    return 0


def _enable_controllers(directory: Path) -> None:
    """v2: let children of `directory` use cpu, memory and pids."""
    available = set((directory / "cgroup.controllers").read_text().split())
    enabled = set((directory / "cgroup.subtree_control").read_text().split())
    missing = [c for c in V1_CONTROLLERS if c in available and c not in enabled]
    if missing:
        _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


class Cgroups:
    """Creates and finds miniorch's cgroups. Raises RuntimeError if there are none."""

    def __init__(self, *, root: Path = CGROUP_ROOT, parent: str = PARENT) -> None:
        version = detect_version(root)
        if version is None:
            raise RuntimeError(f"no usable cgroup hierarchy under {root}")
        self.version = version
        self.root = root
        self.parent = parent
        self.v1_hierarchies: tuple[str, ...] = V1_CONTROLLERS
        accounting = root / V1_ACCOUNTING
        if version is CgroupVersion.V1 and (accounting / "cgroup.procs").exists() \
                and accounting.resolve() != (root / "cpu").resolve():
            self.v1_hierarchies = (*V1_CONTROLLERS, V1_ACCOUNTING)

    def parent_dirs(self) -> tuple[Path, ...]:
        if self.version is CgroupVersion.V2:
            return (self.root / self.parent,)
        return tuple(self.root / c / self.parent for c in self.v1_hierarchies)

    def _ensure_parent(self) -> None:
        if self.version is CgroupVersion.V2:
            _enable_controllers(self.root)
            parent = self.root / self.parent
            parent.mkdir(exist_ok=True)
            _enable_controllers(parent)
            return
        for d in self.parent_dirs():
            d.mkdir(exist_ok=True)

    def handle(self, path: str) -> CgroupHandle:
        """The handle of an existing (or not) cgroup, without creating anything."""
        return CgroupHandle(self.version, tuple(d / path for d in self.parent_dirs()))

    def create(self, path: str, *, cpu_millis: int | None = None,
               memory_bytes: int | None = None, pids_max: int | None = None) -> CgroupHandle:
        """Create (or reuse) miniorch/<path> with these limits (None = unlimited)."""
        self._ensure_parent()
        handle = self.handle(path)
        for d in handle.dirs:
            d.mkdir(parents=True, exist_ok=True)
        cpu = handle._dir("cpu")
        mem = handle._dir("memory")
        pids = handle._dir("pids")
        if self.version is CgroupVersion.V2:
            quota = str(cpu_millis * CPU_PERIOD_US // 1000) if cpu_millis else "max"
            _write(cpu / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            _write(mem / "memory.max", str(memory_bytes) if memory_bytes else "max")
            if memory_bytes and (mem / "memory.swap.max").exists():
                _write(mem / "memory.swap.max", "0")  # a limit that swaps is no limit
            _write(pids / "pids.max", str(pids_max) if pids_max else "max")
        else:
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            quota = str(cpu_millis * CPU_PERIOD_US // 1000) if cpu_millis else "-1"
            _write(cpu / "cpu.cfs_quota_us", quota)
            _write(mem / "memory.limit_in_bytes", str(memory_bytes) if memory_bytes else "-1")
            with contextlib.suppress(OSError):
                _write(mem / "memory.swappiness", "0")
            _write(pids / "pids.max", str(pids_max) if pids_max else "max")
        return handle

    def list(self, prefix: str = "") -> list[CgroupHandle]:
        """Our cgroups (direct children of the parent) whose name starts with prefix."""
        names: set[str] = set()
        for d in self.parent_dirs():
            if d.is_dir():
                names.update(e.name for e in os.scandir(d)
                             if e.is_dir() and e.name.startswith(prefix))
        return [self.handle(n) for n in sorted(names)]
