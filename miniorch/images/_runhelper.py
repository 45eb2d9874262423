"""Build-time RUN sandbox, executed as a *script* (`python _runhelper.py SPEC_JSON`).

It runs in a fresh, single-threaded interpreter so that unshare(2) affects only itself,
never the (threaded) cluster process. Steps:
  unshare(mount | net | uts) → make / private (recursive) → mount overlay
  (lowerdirs given relative to `lower_base`, which keeps the option string under the
  kernel's one-page limit) → /proc and a tiny /dev (tmpfs + bind-mounted null, zero,
  full, random, urandom, tty) if the image has those directories → chroot → chdir →
  drop to USER → exec. The overlay dies with the namespace when the command exits;
  the caller then reads the upper directory. No network: the new net namespace has
  only a down loopback, so builds are offline by construction.
Only the standard library is used (no miniorch import: fast start, no threads).
"""

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc: ctypes.CDLL, src: str, dst: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(libc.mount(src.encode(), dst.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None),
           f"mount {fstype or 'bind'} on {dst}")


def _user_ids(spec: str) -> tuple[int, int]:
    user, _, group = spec.partition(":")

    def lookup(path: str, name: str, field: int) -> list[str] | None:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.rstrip("\n").split(":")
                    if len(parts) > field and parts[0] == name:
                        return parts
        except OSError:
            pass
        return None

    if user.isdigit():
        uid = int(user)
        ent = None
        try:
            with open("/etc/passwd") as f:
                for line in f:
                    p = line.split(":")
                    if len(p) > 3 and p[2] == user:
                        ent = p
                        break
        except OSError:
            pass
        gid = int(ent[3]) if ent else uid
    else:
        ent = lookup("/etc/passwd", user, 3)
        if ent is None:
            raise OSError(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = int(ent[2]), int(ent[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = lookup("/etc/group", group, 2)
            if g is None:
                raise OSError(f"unable to find group {group}")
            gid = int(g[2])
    return uid, gid


def main() -> int:
    spec = json.loads(sys.argv[1])
    libc = _libc()
    merged: str = spec["merged"]
    try:
        _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS), "unshare")
        _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE)
        hostname = b"buildsandbox"
        libc.sethostname(hostname, len(hostname))
        os.chdir(spec["lower_base"])
        opts = (f"lowerdir={':'.join(spec['lowers'])},upperdir={spec['upper']},"
                f"workdir={spec['work']}")
        _mount(libc, "overlay", merged, "overlay", 0, opts)
        if os.path.isdir(os.path.join(merged, "proc")):
            _mount(libc, "proc", os.path.join(merged, "proc"), "proc",
                   MS_NOSUID | MS_NODEV | MS_NOEXEC)
        dev = os.path.join(merged, "dev")
        if os.path.isdir(dev):
            _mount(libc, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m")
            for name in ("null", "zero", "full", "random", "urandom", "tty"):
                host = f"/dev/{name}"
                if os.path.exists(host):
                    target = os.path.join(dev, name)
                    open(target, "w").close()
                    _mount(libc, host, target, None, MS_BIND)
        os.chroot(merged)
        workdir = spec.get("workdir") or "/"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        if spec.get("user"):
            uid, gid = _user_ids(spec["user"])
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        argv = spec["argv"]
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as e:
        print(f"RUN failed to start: {e}", file=sys.stderr, flush=True)
        return 127
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
