"""A reusable leak checker: what a test created and did not remove.

Takes a snapshot of the kernel objects miniorch creates — named netns, network links,
cgroups under a ``miniorch`` parent, mounts (netns bind mounts, and anything under
given directories), and this process's child processes — before a test and again after,
and fails with a list of whatever is new.

Other engineers' tests run at the same time on the same machine, so pass `prefixes` (the
random names your test uses) to look only at your own netns, links and cgroups; without
prefixes every new one counts. Processes and exits are asynchronous, so `check()`
polls for a short while before declaring a leak.

    with leak_check(prefixes=["zt1a2b", "mot1a2b"], mount_roots=[tmp_path]):
        ...
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Snapshot:
    netns: frozenset[str]
    links: frozenset[str]
    cgroups: frozenset[str]
    mounts: frozenset[str]
    children: frozenset[tuple[int, float]]
    """(pid, create_time): a pid alone could be reused."""

    def minus(self, before: Snapshot) -> dict[str, list[str]]:
        leaks = {
            "netns": sorted(self.netns - before.netns),
            "links": sorted(self.links - before.links),
            "cgroups": sorted(self.cgroups - before.cgroups),
            "mounts": sorted(self.mounts - before.mounts),
            "processes": [_describe(pid) for pid, _ in sorted(self.children - before.children)],
        }
        return {k: v for k, v in leaks.items() if v}


def _describe(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        return f"{pid} {' '.join(p.cmdline())[:120]!r} ({p.status()})"
    except psutil.Error:
        return str(pid)


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return not prefixes or any(name.startswith(p) for p in prefixes)


def _cgroups(prefixes: Sequence[str], parent: str) -> set[str]:
    tops = [CGROUP_ROOT / parent] + [d / parent for d in CGROUP_ROOT.iterdir()
                                      if d.is_dir() and not d.is_symlink()]
    found: set[str] = set()
    for top in tops:
        if not top.is_dir():
            continue
        for dirpath, _dirnames, _ in os.walk(top):
            rel = Path(dirpath).relative_to(top)
            if rel.parts and _matches(rel.parts[0], prefixes):
                found.add(f"{top.parent.name}:{rel}")
    return found


def _mounts(prefixes: Sequence[str], roots: Sequence[Path]) -> set[str]:
    resolved = [str(r.resolve()) for r in roots]
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            point = fields[4]
            fstype = fields[fields.index("-") + 1]
            if point.startswith(str(NETNS_DIR) + "/"):
                if _matches(Path(point).name, prefixes):
                    found.add(f"{fstype} {point}")
            elif any(point == r or point.startswith(r + "/") for r in resolved):
                found.add(f"{fstype} {point}")
    return found


def snapshot(*, prefixes: Sequence[str] = (), mount_roots: Sequence[Path] = (),
             cgroup_parent: str = "miniorch") -> Snapshot:
    try:
        netns = {n for n in os.listdir(NETNS_DIR) if _matches(n, prefixes)}
    except FileNotFoundError:
        netns = set()
    links = {n for n in os.listdir("/sys/class/net") if _matches(n, prefixes)}
    children: set[tuple[int, float]] = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE:
                children.add((child.pid, child.create_time()))
    return Snapshot(netns=frozenset(netns), links=frozenset(links),
                    cgroups=frozenset(_cgroups(prefixes, cgroup_parent)),
                    mounts=frozenset(_mounts(prefixes, mount_roots)),
                    children=frozenset(children))


class LeakChecker:
    def __init__(self, *, prefixes: Sequence[str] = (), mount_roots: Sequence[Path] = (),
                 cgroup_parent: str = "miniorch") -> None:
        self.prefixes = list(prefixes)
        self.mount_roots = list(mount_roots)
        self.cgroup_parent = cgroup_parent
        self.before: Snapshot | None = None

    def _take(self) -> Snapshot:
        return snapshot(prefixes=self.prefixes, mount_roots=self.mount_roots,
                        cgroup_parent=self.cgroup_parent)

    def start(self) -> None:
        self.before = self._take()

    def leaks(self) -> dict[str, list[str]]:
        assert self.before is not None, "call start() first"
        return self._take().minus(self.before)

    def check(self, *, timeout: float = 3.0) -> None:
        """Raise AssertionError listing what is still there after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            leaks = self.leaks()
            if not leaks or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if leaks:
            lines = [f"  {kind}: {', '.join(items)}" for kind, items in leaks.items()]
            raise AssertionError("resources leaked by the test:\n" + "\n".join(lines))


@contextlib.contextmanager
def leak_check(*, prefixes: Sequence[str] = (), mount_roots: Sequence[Path] = (),
               timeout: float = 3.0) -> Iterator[LeakChecker]:
    """Fails (after the body succeeded) if the body left netns, links, cgroups, mounts
    or child processes behind."""
    checker = LeakChecker(prefixes=prefixes, mount_roots=mount_roots)
    checker.start()
    yield checker
    checker.check(timeout=timeout)
