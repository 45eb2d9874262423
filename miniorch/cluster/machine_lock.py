"""One cluster per machine: an flock held by the running cluster process.

A cluster owns machine-wide things — the bridge `miniorch0`, the pod and Service
address ranges, the LoadBalancer pool, and the right to remove leftovers named `mo-*`.
Two clusters (from two state dirs) would fight over all of them; worse, the second
one's start-up cleanup would tear down the first one's pods. So the cluster process
holds an exclusive `flock` on `/run/miniorch/cluster.lock` for as long as it runs; the
kernel drops it when the process dies, even by `kill -9`, so a stale lock is impossible.
The file also names the holder (`<pid> <state dir>`) for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LOCK_PATH = Path("/run/miniorch/cluster.lock")


def default_lock_path() -> Path:
    """Root: the machine's lock. A user without root cannot write /run/miniorch, and
    a rootless cluster owns no machine-wide things (no bridge, no `mo-*` links, its
    own address ranges): one cluster per *user*, at `$XDG_RUNTIME_DIR/miniorch/` or
    else `/tmp/miniorch-<uid>/`."""
    if os.geteuid() == 0:
        return DEFAULT_LOCK_PATH
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.access(runtime_dir, os.W_OK):
        return Path(runtime_dir) / "miniorch" / "cluster.lock"
    import tempfile
    return Path(tempfile.gettempdir()) / f"miniorch-{os.geteuid()}" / "cluster.lock"


@dataclass(frozen=True)
class Holder:
    pid: int
    home: str


class ClusterRunningElsewhere(RuntimeError):
    def __init__(self, holder: Holder | None) -> None:
        where = (f" (pid {holder.pid}, state dir {holder.home})" if holder else "")
        super().__init__(f"another miniorch cluster is running on this machine{where}; "
                         "stop it first with `miniorch --state-dir DIR down`")
        self.holder = holder


class MachineLock:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()
        self._fd: int | None = None

    def acquire(self, home: Path) -> None:
        """Take the lock for this process, or raise `ClusterRunningElsewhere`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ClusterRunningElsewhere(self.holder()) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {home}\n".encode())
        # Children (pod shims, registry helpers) must not inherit the lock: it would
        # outlive us in them.
        os.set_inheritable(fd, False)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> Holder | None:
        """Who holds the lock now (None if nobody)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = self.path.read_text().split(maxsplit=1)
                if len(text) == 2 and text[0].isdigit():
                    return Holder(int(text[0]), text[1].strip())
                return Holder(0, "?")
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
