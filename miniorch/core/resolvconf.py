"""resolv.conf(5), read and written: the host's resolver settings and each pod's.

    /etc/resolv.conf ──ResolvConf.parse──► ResolvConf(nameservers, searches, options)
                                                 │ (the DNS server's upstreams; the kubelet's
                                                 ▼  base for a `dnsPolicy: Default` pod)
                                           .render() ──► a pod's /etc/resolv.conf

Parsing follows glibc's resolver: `nameserver` lines accumulate in order, the last
`search` or `domain` line wins, `options` accumulate; `#` and `;` start comments and
unknown keywords are ignored. Rendering writes lines in the order containerd's CRI
does (search, nameserver..., options), so a pod's file looks like one in Kubernetes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        nameservers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].split(";", 1)[0].split()
            if not line:
                continue
            keyword, args = line[0], line[1:]
            if keyword == "nameserver" and args:
                nameservers.append(args[0])
            elif keyword == "search":
                searches = list(args)
            elif keyword == "domain" and args:
                searches = [args[0]]
            elif keyword == "options":
                options.extend(args)
        return cls(tuple(nameservers), tuple(searches), tuple(options))

    @classmethod
    def read(cls, path: Path) -> ResolvConf:
        """The file's settings; a missing or unreadable file is an empty one (glibc then
        asks the local machine, which is what an empty ResolvConf renders as)."""
        try:
            return cls.parse(path.read_text())
        except (OSError, UnicodeDecodeError):
            return cls()

    def render(self) -> str:
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines.extend(f"nameserver {ns}" for ns in self.nameservers)
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1 (systemd-resolved's 127.0.0.53 is one): only reachable from
    the host's own network namespace, never from a pod's."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
