"""ContainerEngine: Docker's container verbs over the container dirs and supervisors.

    create   image (ImageStore.ensure) + argv + ports ─► reserve dir (config.json)
    start_detached ─► spawn `python -m miniorch.containers.supervisor <dir>` in its own
                      session, wait for its `ok`/`error` line
    run_attached   ─► Supervisor in this process (output to the terminal, Ctrl-C stops)
    stop     SIGTERM the app's host pid, wait -t, SIGKILL its cgroup, wait for "exited"
    remove   refuse a running one unless force (then kill); delete the dir
    exec     exec_in_sandbox(pid, argv, container_pid=pid): the app's namespaces and root
    cleanup  what supervisors killed with -9 left: cgroups, netns, veths, bridge

No daemon: every verb reads the dirs; only a container's supervisor writes its state.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from miniorch.containers.inspect import inspect_document
from miniorch.containers.network import host_network
from miniorch.containers.state import (
    STATUS_EXITED,
    STATUS_RUNNING,
    Container,
    ContainerConfig,
    ContainerDirs,
    ContainerId,
    ContainerSettings,
    PortBinding,
    now_rfc3339,
    pid_alive,
    write_json_atomic,
)
from miniorch.containers.supervisor import Attach, StartError, Supervisor
from miniorch.images import ImageStore
from miniorch.images.regconfig import open_store
from miniorch.sandbox.cgroups import Cgroups, detect_version
from miniorch.sandbox.network import bridge_ports, delete_link, delete_netns, list_links, list_netns

START_TIMEOUT = 30.0


class ContainerError(Exception):
    """A user-facing failure; the message is Docker's wording."""

    exit_code = 1


class NoSuchContainer(ContainerError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")


def parse_port(spec: str) -> PortBinding:
    """`HOST:CONTAINER`, `IP:HOST:CONTAINER`, `CONTAINER` (host = same), `/tcp` suffix.
    Published on 127.0.0.1 only (design.md: loopback)."""
    text, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto != "tcp":
        raise ContainerError(f"invalid port spec {spec!r}: only tcp is supported")
    parts = text.split(":")
    try:
        if len(parts) == 1:
            host_ip, host, cont = "127.0.0.1", int(parts[0]), int(parts[0])
        elif len(parts) == 2:
            host_ip, host, cont = "127.0.0.1", int(parts[0]), int(parts[1])
        elif len(parts) == 3:
            host_ip = parts[0] or "127.0.0.1"
            host, cont = int(parts[1]), int(parts[2])
        else:
            raise ValueError(spec)
    except ValueError:
        raise ContainerError(f'invalid port spec "{spec}"') from None
    if not (0 < host < 65536 and 0 < cont < 65536):
        raise ContainerError(f'invalid port spec "{spec}": ports are 1..65535')
    if not host_ip.startswith("127."):
        raise ContainerError(f"publishing on {host_ip} is not allowed: miniorch publishes "
                             "container ports on loopback (127.0.0.0/8) only")
    return PortBinding(host_ip=host_ip, host_port=host, container_port=cont, protocol=proto)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    image: str
    command: Sequence[str] = ()
    name: str | None = None
    ports: Sequence[str] = ()
    env: Sequence[str] = ()
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False


class ContainerEngine:
    def __init__(self, home: Path, *, images: ImageStore | None = None,
                 settings: ContainerSettings | None = None) -> None:
        self.home = home
        self.dirs = ContainerDirs(home / "containers")
        self._images = images
        self.settings = settings or self.dirs.settings()

    @property
    def images(self) -> ImageStore:
        if self._images is None:
            self._images = open_store(self.home)
        return self._images

    # ------------------------------------------------------------------ create / start

    def create(self, opts: RunOptions) -> ContainerConfig:
        """Resolve the image and reserve the container (dir + config.json). Raises
        ImageError, ContainerError (bad port, name conflict)."""
        from miniorch.containers.state import NameConflict

        ports = tuple(parse_port(p) for p in opts.ports)
        if len({p.host_port for p in ports}) != len(ports):
            raise ContainerError("a host port is published twice")
        for item in opts.env:
            if not item or item.startswith("="):
                raise ContainerError(f'invalid environment variable: "{item}"')
        image = self.images.ensure(opts.image)
        config = self.images.config(image)
        # Docker: a command after the image replaces CMD and keeps ENTRYPOINT.
        argv = config.process_args(args=list(opts.command) if opts.command else None)
        if not argv:
            raise ContainerError("no command specified")
        env = dict(item.partition("=")[::2] for item in config.env)
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        for item in opts.env:
            key, sep, value = item.partition("=")
            if sep:
                env[key] = value
            elif key in os.environ:  # Docker's `-e KEY`: take it from the caller
                env[key] = os.environ[key]
        lower = tuple(str(p) for p in self.images.unpacked_layers(image))
        settings = self.settings

        def build(cid: ContainerId, name: str) -> ContainerConfig:
            return ContainerConfig(
                id=cid, name=name, created=now_rfc3339(), image_ref=opts.image,
                image_id=image.id, path=argv[0], args=tuple(argv[1:]),
                entrypoint=config.entrypoint,
                cmd=tuple(opts.command) if opts.command else config.cmd,
                env=tuple(f"{k}={v}" for k, v in env.items()), workdir=config.workdir,
                exposed_ports=config.exposed_ports, labels=dict(config.labels), ports=ports,
                tty=opts.tty, interactive=opts.interactive, auto_remove=opts.auto_remove,
                lower_dirs=lower, settings=settings)

        try:
            return self.dirs.reserve(build, name=opts.name)
        except NameConflict as exc:
            raise ContainerError(str(exc)) from None

    def start_detached(self, config: ContainerConfig) -> None:
        """Spawn the container's supervisor and return once the app runs. On failure
        the container is removed (nothing left behind) and StartError raised."""
        directory = self.dirs.root / config.id
        proc = subprocess.Popen(
            [sys.executable, "-m", "miniorch.containers.supervisor", str(directory)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline().decode(errors="replace").strip()
        finally:
            proc.stdout.close()
        if line == "ok":
            # Not our child to wait for: it runs on; the kernel reparents it when we exit.
            proc.returncode = 0  # keep Popen.__del__ quiet; the pid stays alive
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=START_TIMEOUT)
        shutil.rmtree(directory, ignore_errors=True)
        if line.startswith("error "):
            _, code, message = line.split(" ", 2)
            raise StartError(message, exit_code=int(code))
        raise StartError(f"the container's supervisor failed (see {directory}/supervisor.log)")

    def run_attached(self, config: ContainerConfig, attach: Attach) -> int:
        """Run in this process until the app exits; its exit code. StartError removes it."""
        supervisor = Supervisor(self.dirs, config, attach=attach)
        try:
            return anyio.run(supervisor.run)
        except StartError:
            shutil.rmtree(self.dirs.root / config.id, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ queries

    def list(self, *, all: bool = False) -> builtins.list[Container]:
        return [c for c in self.dirs.all() if all or c.running]

    def get(self, ref: str) -> Container:
        found = self.dirs.find(ref)
        if found is None:
            raise NoSuchContainer(ref)
        return found

    def inspect(self, ref: str) -> dict[str, Any]:
        return inspect_document(self.get(ref))

    def image_in_use(self, image_id: str) -> bool:
        return any(c.config.image_id == image_id for c in self.dirs.all())

    def log_lines(self, ref: str, *, follow: bool = False) -> Iterator[tuple[str, str]]:
        """(stream, text) of each logged line; with `follow`, until the container exits."""
        container = self.get(ref)
        path = container.dir / "container.log"
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            while True:
                line = f.readline()
                if line.endswith(b"\n"):
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        yield entry["stream"], entry["log"]
                    continue
                if not follow:
                    return
                current = self.dirs.load(container.dir)
                if current is None or current.state.status == STATUS_EXITED:
                    follow = False  # one more pass picks up the last lines
                    continue
                f.seek(f.tell() - len(line))
                time.sleep(0.1)

    # ------------------------------------------------------------------ stop / rm

    def _cgroup(self, container: Container) -> Any:
        return Cgroups().handle(container.config.sandbox_id) if detect_version() else None

    def _wait_exited(self, container: Container, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            current = self.dirs.load(container.dir)
            if current is None or current.state.status == STATUS_EXITED:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self, ref: str, *, timeout: float = 10.0) -> Container:
        """SIGTERM, `timeout` seconds, SIGKILL of the container's whole cgroup; returns
        once its supervisor recorded the exit. Stopping a stopped container is a no-op."""
        container = self.get(ref)
        if not container.running:
            return container
        pid = container.state.pid
        if pid and timeout > 0 and self._owns(container, pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if self._wait_exited(container, timeout):
                return self.get(container.id)
        cgroup = self._cgroup(container)
        if cgroup is not None:
            cgroup.kill_all()
        elif pid and self._owns(container, pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not self._wait_exited(container, 15):
            raise ContainerError(f"cannot stop container: {ref}: it did not exit")
        return self.get(container.id)

    def _owns(self, container: Container, pid: int) -> bool:
        """Guard against pid reuse: the pid must sit in the container's cgroup."""
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False
        return container.config.sandbox_id in text

    def remove(self, ref: str, *, force: bool = False) -> Container:
        container = self.get(ref)
        if container.running:
            if not force:
                raise ContainerError(
                    f"cannot remove container \"/{container.name}\": container is running: "
                    "stop the container before removing or force remove")
            self.stop(container.id, timeout=0)
        with self.dirs.locked():
            shutil.rmtree(container.dir, ignore_errors=True)
        return container

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> builtins.list[str]:
        """Remove what dead supervisors left (kill -9): processes in their cgroups, their
        netns, veths and cgroups; record them as exited; drop the bridge if no container
        runs. Only this state dir's containers and prefix are touched."""
        removed: builtins.list[str] = []
        prefix = self.settings.id_prefix
        with self.dirs.locked():
            containers = self.dirs.all()
            live = {c.config.sandbox_id for c in containers
                    if pid_alive(c.state.supervisor_pid) and c.state.status != STATUS_EXITED}
            ours = {c.config.sandbox_id for c in containers}
            cgroups = Cgroups() if detect_version() else None
            if cgroups is not None:
                for handle in cgroups.list(prefix):
                    if handle.name in ours and handle.name not in live:
                        handle.kill_all()
                        handle.destroy()
                        removed.append(f"cgroup {handle.name}")
            for name, kind in list_links(prefix):
                if kind == "veth" and name in ours and name not in live and delete_link(name):
                    removed.append(f"veth {name}")
            for name in list_netns(prefix):
                if name in ours and name not in live and delete_netns(name):
                    removed.append(f"netns {name}")
            for c in containers:
                path = c.dir / "state.json"
                with contextlib.suppress(OSError, ValueError):
                    raw = json.loads(path.read_text())
                    if raw.get("status") != STATUS_EXITED and c.config.sandbox_id not in live:
                        raw.update(status=STATUS_EXITED, pid=0,
                                   exit_code=raw.get("exit_code") or 137,
                                   finished_at=now_rfc3339(),
                                   error=raw.get("error") or "the container's supervisor died")
                        write_json_atomic(path, raw)
            if not live and not bridge_ports(self.settings.bridge) \
                    and self.settings.bridge in {n for n, _ in list_links(self.settings.bridge)}:
                anyio.run(host_network(self.settings).teardown)
                removed.append(f"bridge {self.settings.bridge}")
        return removed

    # ------------------------------------------------------------------ exec

    def exec_target(self, ref: str) -> tuple[Container, int]:
        container = self.get(ref)
        if container.state.status != STATUS_RUNNING or not pid_alive(container.state.pid):
            raise ContainerError(f"container {container.id} is not running")
        return container, container.state.pid
