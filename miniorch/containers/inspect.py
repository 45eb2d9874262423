"""`container inspect`: Docker's JSON shape (the fields users and tools read) from the
container's config.json and state.json."""

from __future__ import annotations

from typing import Any

from miniorch.containers.state import STATUS_RUNNING, Container


def _mac_of(ip: str) -> str:
    """Docker derives the MAC from the IP: 02:42:<ip bytes>."""
    try:
        octets = [int(x) for x in ip.split(".")]
    except ValueError:
        return ""
    return "02:42:" + ":".join(f"{o:02x}" for o in octets) if len(octets) == 4 else ""


def inspect_document(c: Container) -> dict[str, Any]:
    cfg, st = c.config, c.state
    running = st.status == STATUS_RUNNING
    ports: dict[str, Any] = {}
    for port in cfg.exposed_ports:
        ports[port] = None
    bindings: dict[str, list[dict[str, str]]] = {}
    for b in cfg.ports:
        key = f"{b.container_port}/{b.protocol}"
        bindings.setdefault(key, []).append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
        if running:
            ports[key] = bindings[key]
        else:
            ports.setdefault(key, None)
    ip = st.ip if running else ""
    gateway = st.gateway if running else ""
    prefix = int(cfg.settings.subnet.split("/")[1]) if running else 0
    network = {
        "IPAMConfig": None, "Links": None, "Aliases": None,
        "MacAddress": _mac_of(ip) if ip else "",
        "NetworkID": cfg.settings.bridge, "EndpointID": cfg.sandbox_id if running else "",
        "Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefix,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
    }
    return {
        "Id": cfg.id,
        "Created": cfg.created,
        "Path": cfg.path,
        "Args": list(cfg.args),
        "State": {
            "Status": st.status,
            "Running": running,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": st.oom_killed,
            "Dead": False,
            "Pid": st.pid if running else 0,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": cfg.image_id,
        "ResolvConfPath": str(c.dir / "sandbox" / "etc" / "resolv.conf"),
        "HostnamePath": str(c.dir / "sandbox" / "etc" / "hostname"),
        "HostsPath": str(c.dir / "sandbox" / "etc" / "hosts"),
        "LogPath": str(c.dir / "container.log"),
        "Name": "/" + cfg.name,
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": "bridge",
            "PortBindings": bindings,
            "AutoRemove": cfg.auto_remove,
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"LowerDir": ":".join(cfg.lower_dirs),
                     "UpperDir": str(c.dir / "rw" / "upper"),
                     "WorkDir": str(c.dir / "rw" / "work"),
                     "MergedDir": str(c.dir / "rootfs")},
        },
        "Mounts": [],
        "Config": {
            "Hostname": cfg.short_id,
            "Domainname": "",
            "User": "",
            "AttachStdin": cfg.interactive,
            "AttachStdout": True,
            "AttachStderr": True,
            "ExposedPorts": {p: {} for p in sorted(set(cfg.exposed_ports) | {
                f"{b.container_port}/{b.protocol}" for b in cfg.ports})} or None,
            "Tty": cfg.tty,
            "OpenStdin": cfg.interactive,
            "StdinOnce": cfg.interactive,
            "Env": list(cfg.env),
            "Cmd": list(cfg.cmd) if cfg.cmd is not None else None,
            "Image": cfg.image_ref,
            "Volumes": None,
            "WorkingDir": cfg.workdir,
            "Entrypoint": list(cfg.entrypoint) if cfg.entrypoint is not None else None,
            "OnBuild": None,
            "Labels": dict(cfg.labels),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": cfg.sandbox_id if running else "",
            "SandboxKey": f"/run/netns/{cfg.sandbox_id}" if running else "",
            "Ports": ports,
            "Gateway": gateway,
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "MacAddress": network["MacAddress"],
            "Networks": {"bridge": network},
        },
    }
