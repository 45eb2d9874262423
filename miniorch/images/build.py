"""`build()`: a Dockerfile and a context directory → an image in the store.

Data flow. The Dockerfile is parsed whole first (syntax errors name their line before
any work). Each instruction then turns a build *state* (the OCI config document being
built, the layer descriptors so far, and a chain key) into the next one:

    key(step) = sha256(key(previous step), instruction after variable expansion,
                       content hash of the files it reads (COPY/ADD), build args seen)

The build cache (`<store>/build-cache/<key>.json`) maps a step key to the resulting
state. A hit prints `CACHED` and reuses the state as is — including its timestamps —
so an unchanged rebuild yields the very same config, hence the same image ID. A cached
state whose layer blobs were garbage-collected is a miss.

Layers. COPY/ADD build a layer from context files (ownership 0:0 unless `--chown`);
WORKDIR adds a layer only if the directory is new; RUN runs the command in a sandbox
(`_runhelper.py`: own mount/net/UTS namespaces, overlay of the unpacked lower layers +
an empty upper dir, chroot) and the upper dir's changes become the layer. Parent
directories in a layer carry the metadata they have in the image below (see
layers.with_parents), and destinations are resolved through the image's symlinks.

Failure. Nothing touches index.json until the last step succeeded; a failed build
leaves no image (its new layer blobs stay as build cache until the next `gc`). Temp
dirs (RUN upper dirs, extracted ADD archives) are removed on every path out.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import posixpath
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniorch.core.logging import get_logger
from miniorch.images.context import DockerIgnore, clean_source, resolve_in_context
from miniorch.images.dockerfile import (
    Dockerfile,
    Instruction,
    expand,
    parse_dockerfile,
    parse_key_values,
    split_words,
)
from miniorch.images.errors import BuildError, DockerfileError, ImageError, UnsafePath
from miniorch.images.layers import (
    LayerEntry,
    diff_upper,
    entry_for,
    unpack_layer,
    walk_tree,
    with_parents,
    write_layer,
)
from miniorch.images.oci import Descriptor, Image
from miniorch.images.reference import parse_reference
from miniorch.images.store import ImageStore, Lease, Progress, now_rfc3339

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

DEFAULT_SHELL = ("/bin/sh", "-c")
CACHE_VERSION = "miniorch-build-1"
_BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                           "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                           "all_proxy"})


def _no_progress(_line: str) -> None:
    pass


# --------------------------------------------------------------------------- image view


class LowerView:
    """Read-only view of an image's merged filesystem, over its unpacked layers.

    Used to look up what a path is in the image below a step (does WORKDIR exist? what
    are /tmp's permissions? is /lib a symlink?) without mounting anything.
    """

    def __init__(self, layers_top_first: list[Path]) -> None:
        self.layers = layers_top_first

    def lstat(self, rel: str) -> tuple[os.stat_result, Path] | None:
        """(stat, host path) of `rel` (no leading slash) as the merged view shows it."""
        if not rel:
            return (os.lstat(self.layers[0]), self.layers[0]) if self.layers else None
        parts = rel.split("/")
        for layer in self.layers:
            opaque_here = False
            cur = layer
            blocked = False
            for i, part in enumerate(parts[:-1]):
                cur = cur / part
                try:
                    st = os.lstat(cur)
                except FileNotFoundError:
                    break
                if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    blocked = True  # deleted here, or shadowed by a non-directory
                    break
                if _is_opaque(cur) and i < len(parts) - 1:
                    opaque_here = True
            if blocked:
                return None
            host = layer.joinpath(*parts)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                if opaque_here:
                    return None
                continue
            return None if _is_whiteout(st) else (st, host)
        return None

    def resolve(self, path: str) -> str:
        """Follow symlinks in `path` (absolute, image-side), staying inside the image root."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            rel = "/".join([*done, part])
            found = self.lstat(rel)
            if found is not None and stat.S_ISLNK(found[0].st_mode):
                hops += 1
                if hops > 40:
                    raise BuildError(f"too many levels of symbolic links in {path}")
                target = os.readlink(found[1])
                parts = [p for p in target.split("/") if p] + parts
                if target.startswith("/"):
                    done = []
                continue
            done.append(part)
        return "/" + "/".join(done)

    def is_dir(self, rel: str) -> bool:
        found = self.lstat(rel)
        return found is not None and stat.S_ISDIR(found[0].st_mode)

    def parent_entry(self, rel: str) -> LayerEntry:
        """A directory entry for `rel` with the image's metadata (new dirs: 0755 root)."""
        found = self.lstat(rel)
        if found is not None and stat.S_ISDIR(found[0].st_mode):
            st = found[0]
            return LayerEntry(path=rel, kind="dir", mode=stat.S_IMODE(st.st_mode),
                              uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime))
        return LayerEntry(path=rel, kind="dir", mode=0o755)

    def read_text(self, rel: str) -> str | None:
        found = self.lstat(rel)
        if found is None or not stat.S_ISREG(found[0].st_mode):
            return None
        return found[1].read_text(errors="replace")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


# --------------------------------------------------------------------------- state


@dataclass
class _State:
    config: dict[str, Any]
    layers: list[Descriptor]
    key: str
    cmd_set: bool = False
    """CMD given in this stage (else ENTRYPOINT resets an inherited CMD, as Docker does)."""
    args: dict[str, str] = field(default_factory=dict)
    """ARG values in scope for this stage."""

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])

    @property
    def cfg(self) -> dict[str, Any]:
        c: dict[str, Any] = self.config.setdefault("config", {})
        return c

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for kv in self.cfg.get("Env") or []:
            k, _, v = kv.partition("=")
            out[k] = v
        return out

    def lookup(self, name: str) -> str | None:
        env = self.env()
        return env[name] if name in env else self.args.get(name)


def _hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


class _Builder:
    def __init__(self, store: ImageStore, context: Path, df: Dockerfile, *,
                 build_args: Mapping[str, str], progress: Progress, lease: Lease,
                 cleanup: contextlib.ExitStack) -> None:
        self.store = store
        self.context = context
        self.df = df
        self.build_args = dict(build_args)
        self.used_args: set[str] = set()
        self.progress = progress
        self.lease = lease
        self.cleanup = cleanup
        self.ignore = DockerIgnore.load(context)
        self.stages: dict[str, _State] = {}
        self.global_args: dict[str, str] = {}

    # -- cache

    def _cache_get(self, key: str) -> _State | None:
        path = self.store.cache_dir / f"{key}.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        layers = [Descriptor.from_json(d) for d in doc["layers"]]
        if not all(self.store.has_blob(d.digest) for d in layers):
            return None
        for d in layers:
            self.lease.add(d.digest)
        for diff in doc["config"]["rootfs"]["diff_ids"]:
            self.lease.add(diff)
        return _State(doc["config"], layers, key, doc.get("cmd_set", False))

    def _cache_put(self, state: _State) -> None:
        doc = {"config": state.config, "layers": [d.to_json() for d in state.layers],
               "cmd_set": state.cmd_set}
        path = self.store.cache_dir / f"{state.key}.json"
        tmp = self.store.tmp_dir / f".cache-{state.key[:16]}-{os.urandom(4).hex()}"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    # -- helpers

    def view(self, state: _State) -> LowerView:
        dirs = [self.store.unpacked_layer(d, diff)
                for d, diff in zip(state.layers, state.diff_ids, strict=True)]
        return LowerView(dirs[::-1])

    def err(self, instr: Instruction, message: str) -> DockerfileError:
        return self.df.error(instr, message)

    def expand(self, state: _State, instr: Instruction, text: str) -> str:
        try:
            return expand(text, state.lookup, escape=self.df.escape)
        except ValueError as e:
            raise self.err(instr, str(e)) from None

    def words(self, state: _State, instr: Instruction, text: str) -> list[str]:
        try:
            return split_words(text, state.lookup, escape=self.df.escape)
        except ValueError as e:
            raise self.err(instr, str(e)) from None

    def command(self, state: _State, instr: Instruction) -> list[str]:
        if instr.exec_form is not None:
            return list(instr.exec_form)
        if not instr.rest:
            return []
        shell = state.cfg.get("Shell") or list(DEFAULT_SHELL)
        return [*shell, instr.rest]

    def _add_layer(self, state: _State, entries: list[LayerEntry]) -> tuple[Descriptor, str]:
        blob = write_layer(entries, self.store.tmp_dir)
        self.lease.add(blob.digest)
        self.lease.add(blob.diff_id)
        return self.store.put_layer(blob), blob.diff_id

    def _commit(self, state: _State, instr: Instruction, key: str, created_by: str,
                layer: tuple[Descriptor, str] | None, mutate: Callable[[_State], None] | None
                ) -> _State:
        new = _State(copy.deepcopy(state.config), list(state.layers), key, state.cmd_set,
                     dict(state.args))
        if mutate is not None:
            mutate(new)
        created = now_rfc3339()
        new.config["created"] = created
        hist: dict[str, Any] = {"created": created, "created_by": created_by}
        if layer is None:
            hist["empty_layer"] = True
        else:
            new.layers.append(layer[0])
            new.config["rootfs"]["diff_ids"].append(layer[1])
        new.config.setdefault("history", []).append(hist)
        self._cache_put(new)
        return new

    # -- the walk

    def run(self) -> _State:
        instrs = self.df.instructions
        total = len(instrs)
        state: _State | None = None
        for n, instr in enumerate(instrs, start=1):
            label = f"Step {n}/{total} : {instr.original}"
            if instr.keyword == "ARG" and state is None:
                self._arg(None, instr)
                self.progress(label)
                continue
            if instr.keyword == "FROM":
                state = self._from(instr, label)
                continue
            if state is None:
                raise self.err(instr, f"{instr.keyword} before the first FROM")
            state = self._step(state, instr, label)
        assert state is not None
        unused = sorted(set(self.build_args) - self.used_args - _BUILTIN_ARGS)
        if unused:
            self.progress(f"[Warning] One or more build-args {unused} were not consumed")
        return state

    def _from(self, instr: Instruction, label: str) -> _State:
        words = split_words(instr.rest, self.global_args.get)
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise self.err(instr, "FROM requires either one or three arguments: "
                           "FROM <image> [AS <name>]")
        ref = words[0]
        if "platform" in instr.flags:
            pass  # single-platform store: the host's
        if ref in self.stages:
            base = self.stages[ref]
            state = _State(copy.deepcopy(base.config), list(base.layers), base.key)
            self.progress(label)
        elif ref == "scratch":
            state = _State(self.store.new_config(), [], _hash(CACHE_VERSION, "scratch"))
            state.config["created"] = "1970-01-01T00:00:00Z"
            self.progress(label)
        else:
            self.progress(label)
            try:
                image = self.store.ensure(ref, progress=self.progress)
            except ImageError as e:
                raise BuildError(f"{self.df.filename}:{instr.line}: {e}") from e
            state = self._state_of(image)
        if len(words) == 3:
            self.stages[words[2].lower()] = state
        return state

    def _state_of(self, image: Image) -> _State:
        cfg = self.store.raw_config(image)
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        cfg.setdefault("config", {})
        cfg.setdefault("history", [])
        for d in image.layers:
            self.lease.add(d.digest)
        return _State(cfg, list(image.layers), _hash(CACHE_VERSION, "image", image.id))

    def _step(self, state: _State, instr: Instruction, label: str) -> _State:
        kw = instr.keyword
        if kw == "ARG":
            self._arg(state, instr)
            self.progress(label)
            return _State(state.config, state.layers,
                          _hash(state.key, "ARG", json.dumps(sorted(state.args.items()))),
                          state.cmd_set, state.args)
        # Everything else: compute the key, then hit or execute.
        plan = self._plan(state, instr)
        cached = self._cache_get(plan.key)
        if cached is not None:
            self.progress(f"{label} CACHED")
            cached.args = dict(state.args)
            return cached
        self.progress(label)
        layer = plan.produce() if plan.produce is not None else None
        return self._commit(state, instr, plan.key, plan.created_by, layer, plan.mutate)

    def _arg(self, state: _State | None, instr: Instruction) -> None:
        lookup = state.lookup if state is not None else self.global_args.get
        try:
            words = split_words(instr.rest, lookup)
        except ValueError as e:
            raise self.err(instr, str(e)) from None
        for w in words:
            name, eq, default = w.partition("=")
            if not name.replace("_", "a").isalnum():
                raise self.err(instr, f"invalid ARG name {name!r}")
            if name in self.build_args:
                value: str | None = self.build_args[name]
                self.used_args.add(name)
            elif eq:
                value = default
            elif state is None:
                value = None
            else:
                value = self.global_args.get(name)
            if state is None:
                if value is not None:
                    self.global_args[name] = value
            elif value is not None:
                state.args[name] = value
            else:
                state.args.setdefault(name, "")

    # -- per instruction: what it reads (key), what it does

    def _plan(self, state: _State, instr: Instruction) -> _Plan:
        kw = instr.keyword
        handler = getattr(self, f"_plan_{kw.lower()}", None)
        if handler is None:
            raise self.err(instr, f"{kw} is not supported yet")
        plan: _Plan = handler(state, instr)
        return plan

    def _meta(self, state: _State, instr: Instruction, canon: str,
              mutate: Callable[[_State], None]) -> _Plan:
        return _Plan(_hash(state.key, canon), f"/bin/sh -c #(nop) {canon}", mutate)

    def _plan_env(self, state: _State, instr: Instruction) -> _Plan:
        try:
            pairs = parse_key_values(instr.rest, state.lookup, keyword="ENV",
                                     escape=self.df.escape)
        except ValueError as e:
            raise self.err(instr, str(e)) from None

        def mutate(s: _State) -> None:
            env = s.env()
            for k, v in pairs:
                env[k] = v
            s.cfg["Env"] = [f"{k}={v}" for k, v in env.items()]

        canon = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        return self._meta(state, instr, canon, mutate)

    def _plan_label(self, state: _State, instr: Instruction) -> _Plan:
        try:
            pairs = parse_key_values(instr.rest, state.lookup, keyword="LABEL",
                                     escape=self.df.escape)
        except ValueError as e:
            raise self.err(instr, str(e)) from None

        def mutate(s: _State) -> None:
            labels = dict(s.cfg.get("Labels") or {})
            labels.update(pairs)
            s.cfg["Labels"] = labels

        return self._meta(state, instr, "LABEL " + json.dumps(pairs), mutate)

    def _plan_maintainer(self, state: _State, instr: Instruction) -> _Plan:
        author = self.expand(state, instr, instr.rest)

        def mutate(s: _State) -> None:
            s.config["author"] = author

        return self._meta(state, instr, f"MAINTAINER {author}", mutate)

    def _plan_expose(self, state: _State, instr: Instruction) -> _Plan:
        ports = []
        for w in self.words(state, instr, instr.rest):
            port, _, proto = w.partition("/")
            proto = (proto or "tcp").lower()
            lo, _, hi = port.partition("-")
            if (not lo.isdigit() or (hi and not hi.isdigit()) or not 0 < int(lo) < 65536
                    or proto not in ("tcp", "udp", "sctp")):
                raise self.err(instr, f"invalid port {w!r}: want PORT[/tcp|udp|sctp]")
            ports.append(f"{port}/{proto}")

        def mutate(s: _State) -> None:
            exposed = dict(s.cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            s.cfg["ExposedPorts"] = exposed

        return self._meta(state, instr, "EXPOSE " + " ".join(ports), mutate)

    def _plan_user(self, state: _State, instr: Instruction) -> _Plan:
        user = self.expand(state, instr, instr.rest).strip()

        def mutate(s: _State) -> None:
            s.cfg["User"] = user

        return self._meta(state, instr, f"USER {user}", mutate)

    def _plan_stopsignal(self, state: _State, instr: Instruction) -> _Plan:
        sig = self.expand(state, instr, instr.rest).strip()

        def mutate(s: _State) -> None:
            s.cfg["StopSignal"] = sig

        return self._meta(state, instr, f"STOPSIGNAL {sig}", mutate)

    def _plan_volume(self, state: _State, instr: Instruction) -> _Plan:
        vols = (list(instr.exec_form) if instr.exec_form is not None
                else self.words(state, instr, instr.rest))

        def mutate(s: _State) -> None:
            v = dict(s.cfg.get("Volumes") or {})
            for p in vols:
                v[p] = {}
            s.cfg["Volumes"] = v

        return self._meta(state, instr, "VOLUME " + json.dumps(vols), mutate)

    def _plan_shell(self, state: _State, instr: Instruction) -> _Plan:
        if instr.exec_form is None or not instr.exec_form:
            raise self.err(instr, 'SHELL requires the exec form: SHELL ["executable", "param"]')
        shell = list(instr.exec_form)

        def mutate(s: _State) -> None:
            s.cfg["Shell"] = shell

        return self._meta(state, instr, "SHELL " + json.dumps(shell), mutate)

    def _plan_onbuild(self, state: _State, instr: Instruction) -> _Plan:
        trigger = instr.rest

        def mutate(s: _State) -> None:
            s.cfg["OnBuild"] = [*(s.cfg.get("OnBuild") or []), trigger]

        return self._meta(state, instr, f"ONBUILD {trigger}", mutate)

    def _plan_healthcheck(self, state: _State, instr: Instruction) -> _Plan:
        rest = instr.rest.strip()
        if rest.upper() == "NONE":
            test = ["NONE"]
        else:
            word, _, cmd = rest.partition(" ")
            if word.upper() != "CMD" or not cmd.strip():
                raise self.err(instr, "HEALTHCHECK wants NONE or [OPTIONS] CMD command")
            inner = parse_dockerfile(f"CMD {cmd}", filename=self.df.filename).instructions[0]
            test = (["CMD", *inner.exec_form] if inner.exec_form is not None
                    else ["CMD-SHELL", inner.rest])

        def mutate(s: _State) -> None:
            s.cfg["Healthcheck"] = {"Test": test}

        return self._meta(state, instr, "HEALTHCHECK " + json.dumps(test), mutate)

    def _plan_cmd(self, state: _State, instr: Instruction) -> _Plan:
        cmd = self.command(state, instr)

        def mutate(s: _State) -> None:
            s.cfg["Cmd"] = cmd
            s.cmd_set = True

        return self._meta(state, instr, "CMD " + json.dumps(cmd), mutate)

    def _plan_entrypoint(self, state: _State, instr: Instruction) -> _Plan:
        ep = self.command(state, instr)

        def mutate(s: _State) -> None:
            s.cfg["Entrypoint"] = ep or None
            if not s.cmd_set:
                s.cfg["Cmd"] = None  # Docker: a new ENTRYPOINT drops the base image's CMD

        return self._meta(state, instr, "ENTRYPOINT " + json.dumps(ep), mutate)

    def _plan_workdir(self, state: _State, instr: Instruction) -> _Plan:
        raw = self.expand(state, instr, instr.rest).strip()
        current = state.cfg.get("WorkingDir") or "/"
        path = posixpath.normpath(posixpath.join(current, raw))
        view = self.view(state)
        resolved = view.resolve(path).lstrip("/")
        produce = None
        if resolved and not view.is_dir(resolved):
            def produce() -> tuple[Descriptor, str]:
                entry = LayerEntry(path=resolved, kind="dir", mode=0o755)
                return self._add_layer(state, with_parents([entry], view.parent_entry))

        def mutate(s: _State) -> None:
            s.cfg["WorkingDir"] = path

        return _Plan(_hash(state.key, f"WORKDIR {path}"), f"WORKDIR {path}", mutate, produce)

    def _plan_run(self, state: _State, instr: Instruction) -> _Plan:
        argv = self.command(state, instr)
        if not argv:
            raise self.err(instr, "RUN requires a command")
        for flag in instr.flags:
            raise self.err(instr, f"RUN --{flag} is not supported")
        args_env = {k: v for k, v in state.args.items()}
        key = _hash(state.key, "RUN", json.dumps(argv), json.dumps(sorted(args_env.items())))
        created_by = " ".join(argv) if instr.exec_form is None else json.dumps(argv)

        def produce() -> tuple[Descriptor, str] | None:
            return self._run(state, instr, argv, args_env)

        return _Plan(key, created_by, None, produce)

    def _plan_copy(self, state: _State, instr: Instruction) -> _Plan:
        return self._copy(state, instr, add=False)

    def _plan_add(self, state: _State, instr: Instruction) -> _Plan:
        return self._copy(state, instr, add=True)

    # -- COPY / ADD

    def _copy(self, state: _State, instr: Instruction, *, add: bool) -> _Plan:
        kw = instr.keyword
        for flag in instr.flags:
            if flag == "from":
                raise self.err(instr, f"{kw} --from is not supported yet")
            if flag not in ("chown", "chmod", "link"):
                raise self.err(instr, f"{kw}: unknown flag --{flag}")
        args = (list(instr.exec_form) if instr.exec_form is not None
                else self.words(state, instr, instr.rest))
        if len(args) < 2:
            raise self.err(instr, f"{kw} requires at least two arguments: {kw} <src>... <dest>")
        sources, dest = args[:-1], args[-1]
        view = self.view(state)
        uid, gid = self._chown(state, instr, view)
        chmod = None
        if "chmod" in instr.flags:
            try:
                chmod = int(instr.flags["chmod"], 8)
            except ValueError:
                raise self.err(instr, f"invalid --chmod {instr.flags['chmod']!r}") from None

        workdir = state.cfg.get("WorkingDir") or "/"
        dest_abs = posixpath.normpath(posixpath.join(workdir, dest))
        dest_dir_syntax = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")

        # Expand sources (wildcards, ignore rules) into host paths.
        hosts: list[tuple[str, Path]] = []
        for src in sources:
            if "://" in src:
                if add:
                    raise self.err(instr, f"ADD {src}: remote URLs are not supported: "
                                   "miniorch builds without network access")
                raise self.err(instr, f"COPY {src}: source can't be a URL")
            try:
                hosts += self._sources(src)
            except UnsafePath as e:
                raise BuildError(f"{self.df.filename}:{instr.line}: {e}") from e
        if not hosts:
            raise BuildError(f"{self.df.filename}:{instr.line}: {kw} failed: no source files "
                             f"were specified")
        multi = len(hosts) > 1 or any(os.path.isdir(h) for _, h in hosts)
        dest_parent = view.resolve(posixpath.dirname(dest_abs)).lstrip("/")
        dest_resolved = posixpath.join(dest_parent, posixpath.basename(dest_abs)).lstrip("/")
        if dest_abs == "/":
            dest_resolved = ""
        dest_is_dir = dest_dir_syntax or multi or not dest_resolved or view.is_dir(dest_resolved)
        if len(hosts) > 1 and not dest_dir_syntax and not view.is_dir(dest_resolved):
            raise self.err(instr, f"When using {kw} with more than one source file, the "
                           "destination must be a directory and end with a /")

        entries: list[LayerEntry] = []

        def own(e: LayerEntry) -> LayerEntry:
            mode = e.mode
            if chmod is not None and e.kind in ("file", "dir"):
                mode = chmod
            return LayerEntry(path=e.path, kind=e.kind, mode=mode, uid=uid, gid=gid,
                              mtime=e.mtime, source=e.source, linkname=e.linkname)

        def join(*parts: str) -> str:
            return "/".join(p for p in parts if p)

        for rel, host in hosts:
            st = os.stat(host)
            if stat.S_ISDIR(st.st_mode):
                if dest_resolved and not view.is_dir(dest_resolved):
                    entries.append(own(entry_for(host, dest_resolved, st=st)))
                for child, crel, _cst in walk_tree(host):
                    ctx_rel = join(rel, crel)
                    if self.ignore.excluded(ctx_rel):
                        continue
                    entries.append(own(entry_for(child, join(dest_resolved, crel))))
            elif add and _is_archive(host):
                extracted = self._extract(host, instr)
                for child, crel, _cst in walk_tree(extracted):
                    ent = entry_for(child, join(dest_resolved, crel))
                    entries.append(ent if "chown" not in instr.flags else own(ent))
            elif stat.S_ISREG(st.st_mode):
                arc = (join(dest_resolved, posixpath.basename(rel) or host.name)
                       if dest_is_dir else dest_resolved)
                if not arc:
                    raise self.err(instr, f"{kw}: cannot copy a file onto /")
                entries.append(own(entry_for(host, arc, st=st)))
            else:
                raise BuildError(f"{self.df.filename}:{instr.line}: {kw} {rel}: "
                                 "not a regular file or directory")
        entries = with_parents(entries, view.parent_entry)
        content = _content_hash(entries)
        canon = f"{kw} {json.dumps(sources)} {dest_abs} {uid}:{gid} {chmod}"
        key = _hash(state.key, canon, content)
        created_by = f"{kw} {'dir' if multi else 'file'}:{content[:16]} in {dest_abs}"

        def produce() -> tuple[Descriptor, str]:
            return self._add_layer(state, entries)

        return _Plan(key, created_by, None, produce)

    def _sources(self, src: str) -> list[tuple[str, Path]]:
        rel = clean_source(src)
        if any(c in rel for c in "*?["):
            matches = []
            pattern = rel.split("/")
            for host_path, crel, _st in walk_tree(self.context):
                parts = crel.split("/")
                if (len(parts) == len(pattern)
                        and all(_fnmatch(p, q) for p, q in zip(parts, pattern, strict=True))
                        and not self.ignore.excluded(crel)):
                    resolve_in_context(self.context, crel)
                    matches.append((crel, host_path))
            return matches
        host = resolve_in_context(self.context, rel)
        if (rel and self.ignore.excluded(rel)) or not os.path.exists(host):
            raise UnsafePath(f"{src}: file not found in build context or excluded by "
                             ".dockerignore")
        return [(rel, host)]

    def _chown(self, state: _State, instr: Instruction, view: LowerView) -> tuple[int, int]:
        spec = instr.flags.get("chown")
        if not spec:
            return 0, 0
        spec = self.expand(state, instr, spec)
        user, _, group = spec.partition(":")

        def lookup(file: str, name: str, idx: int) -> int:
            if name.isdigit():
                return int(name)
            for line in (view.read_text(file) or "").splitlines():
                parts = line.split(":")
                if len(parts) > idx and parts[0] == name:
                    return int(parts[idx])
            what = "user" if "passwd" in file else "group"
            raise self.err(instr, f"--chown: unable to find {what} {name}")

        uid = lookup("etc/passwd", user, 2)
        if group:
            gid = lookup("etc/group", group, 2)
        elif user.isdigit():
            gid = uid
        else:
            gid = lookup("etc/passwd", user, 3)
        return uid, gid

    def _extract(self, archive: Path, instr: Instruction) -> Path:
        tmp = Path(self.cleanup.enter_context(_tempdir(self.store.tmp_dir, "add")))
        target = tmp / "x"
        try:
            # The same confinement and bounds as a registry's layer; whiteouts are only
            # names in a local archive (Docker's ADD does not apply them either).
            unpack_layer(archive, target, limits=self.store.limits, whiteouts=False)
        except (ImageError, tarfile.TarError) as e:
            raise BuildError(f"{self.df.filename}:{instr.line}: ADD {archive.name}: {e}") from e
        return target

    # -- RUN

    def _run(self, state: _State, instr: Instruction, argv: list[str],
             args_env: dict[str, str]) -> tuple[Descriptor, str] | None:
        if not state.layers:
            raise BuildError(f"{self.df.filename}:{instr.line}: RUN needs a base image with "
                             "a filesystem (FROM scratch has none)")
        if os.geteuid() != 0:
            raise BuildError(f"{self.df.filename}:{instr.line}: RUN needs root (mount "
                             "namespaces and overlayfs); not supported yet without root")
        lowers = self.view(state).layers
        env = {**args_env, **state.env()}
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        with _tempdir(self.store.tmp_dir, "run") as tmp:
            upper, work, merged = tmp / "upper", tmp / "work", tmp / "merged"
            for d in (upper, work, merged):
                d.mkdir()
            spec = {
                "lower_base": str(self.store.unpacked_dir),
                "lowers": [p.name for p in lowers],
                "upper": str(upper), "work": str(work), "merged": str(merged),
                "workdir": state.cfg.get("WorkingDir") or "/",
                "user": state.cfg.get("User") or "",
                "argv": argv, "env": env,
            }
            helper = Path(__file__).with_name("_runhelper.py")
            with subprocess.Popen(
                [sys.executable, "-I", "-S", str(helper), json.dumps(spec)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd="/",
            ) as proc:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    self.progress(" | " + raw.decode(errors="replace").rstrip("\n"))
                code = proc.wait()
            if code != 0:
                raise BuildError(
                    f"{self.df.filename}:{instr.line}: RUN {' '.join(argv)!s} returned a "
                    f"non-zero code: {code}")
            # The layer is written here, while the upper dir (its file contents) exists.
            entries = diff_upper(upper)
            return self._add_layer(state, entries) if entries else None


@dataclass
class _Plan:
    key: str
    created_by: str
    mutate: Callable[[_State], None] | None = None
    produce: Callable[[], tuple[Descriptor, str] | None] | None = None


def _fnmatch(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


@contextlib.contextmanager
def _tempdir(parent: Path, what: str) -> Iterator[Path]:
    path = parent / f".{what}-{os.getpid()}-{os.urandom(6).hex()}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _content_hash(entries: list[LayerEntry]) -> str:
    """What a COPY layer is made of, without mtimes: the cache key's content part."""
    h = hashlib.sha256()
    for e in entries:
        h.update(repr((e.path, e.kind, e.mode, e.uid, e.gid, e.linkname)).encode())
        if e.kind == "file" and e.source is not None:
            with open(e.source, "rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
        h.update(b"\n")
    return h.hexdigest()


def build(
    store: ImageStore,
    context_dir: Path,
    *,
    tag: str | None,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    progress: Progress = _no_progress,
) -> Image:
    """`docker build -t TAG -f DOCKERFILE CONTEXT`: build, store, tag, return the image.

    Raises DockerfileError (bad Dockerfile, names the line), BuildError (a step failed),
    UnsafePath (a source outside the context), ImageNotFound/PullAccessDenied (FROM).
    """
    ref = parse_reference(tag) if tag else None
    context = context_dir.resolve()
    if not context.is_dir():
        raise BuildError(f"unable to prepare context: path {str(context_dir)!r} not found")
    df_rel = clean_source(dockerfile)
    df_path = resolve_in_context(context, df_rel)
    if not df_path.is_file():
        raise BuildError(f"failed to read dockerfile: open {dockerfile}: no such file")
    df = parse_dockerfile(df_path.read_text(), filename=posixpath.basename(dockerfile))
    with store.lease() as lease, contextlib.ExitStack() as cleanup:
        builder = _Builder(store, context, df, build_args=build_args or {},
                           progress=progress, lease=lease, cleanup=cleanup)
        state = builder.run()
        image = store.add_image(state.config, state.layers, [ref] if ref else [])
    progress(f"Successfully built {image.short_id}")
    if ref is not None:
        progress(f"Successfully tagged {ref.familiar}")
    return image
