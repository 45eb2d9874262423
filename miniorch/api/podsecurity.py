"""Pod Security Admission: the Pod Security Standards, enforced as kube-apiserver does.

    Registry.create/update ──► PodSecurity.validate(resource, obj, old, subresource)
        pods          ─► enforce (403 Forbidden) + audit + warn
        workloads     ─► audit + warn only, on the pod template (RC, RS, Deployment,
                         StatefulSet, DaemonSet, Job, CronJob): their pods are enforced
                         when the controller creates them
        namespaces    ─► labels checked (422 Invalid); a stricter `enforce` dry-runs the
                         namespace's existing pods and warns about those that violate it
    warnings ─► api/warning.py ─► `Warning:` headers (kubectl prints them)
    audit    ─► one structlog line per violating request: `pod-security audit` with
                `audit-violations` (miniorch has no audit log; this is where the
                `pod-security.kubernetes.io/audit-violations` annotation would go)

The policy of a namespace comes from its labels `pod-security.kubernetes.io/<mode>`
and `<mode>-version` (mode: enforce, audit, warn; level: privileged, baseline,
restricted; version: `latest` or `v1.N`), over the cluster's defaults — here what an
AdmissionConfiguration would set: `baseline:latest` for all three modes, with
`kube-system` exempt. So a privileged or host-namespace pod is refused unless its
namespace opts in (`pod-security.kubernetes.io/enforce=privileged`).

The checks are those of k8s.io/pod-security-admission/policy, each with its versions,
with the same ids, order (baseline ids sorted, then restricted ones) and messages:
`pods "x" is forbidden: violates PodSecurity "baseline:latest": privileged (container
"x" must not set securityContext.privileged=true), host namespaces (hostNetwork=true)`.
`latest` means the newest policy this server's version knows (v1.32, as
kube-apiserver's emulation version clamps it); a newer `v1.N` label evaluates as v1.32.

Invariants:
- Pure functions of the objects and the namespace in the store: nothing is cached,
  nothing is written (the audit line is the only side effect besides warnings).
- Runs after defaulting and validation (a malformed pod gets its 422 first), also for
  dry-run requests, never for subresources that cannot change the pod spec (status,
  binding, eviction, exec, …) and, on pod updates, only when an image changed (the
  only security-relevant field a pod update may change), as isSignificantPodUpdate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from miniorch.api import warning
from miniorch.api.errors import Cause, Forbidden, Invalid
from miniorch.api.kinds import NAMESPACES, PODS
from miniorch.api.validation import invalid
from miniorch.core.objects import Obj, as_dict, as_list

if TYPE_CHECKING:
    from miniorch.api.resource import Resource
    from miniorch.api.store import Store

log = structlog.get_logger(__name__)

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
MAX_PODS_TO_CHECK = 3000
"""A namespace's new enforce level is dry-run against at most this many pods."""
SERVER_VERSION = (1, 32)
"""The newest policy version this server knows: `latest` and newer labels map here."""


# ---- levels, versions, policies --------------------------------------------------------

@dataclass(frozen=True)
class Version:
    major: int = 1
    minor: int = 0
    latest: bool = False

    def __str__(self) -> str:
        return "latest" if self.latest else f"v{self.major}.{self.minor}"

    def older(self, other: Version) -> bool:
        if self.latest:
            return False
        if other.latest:
            return True
        return (self.major, self.minor) < (other.major, other.minor)


LATEST = Version(latest=True)
_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")


def parse_version(text: str) -> Version | None:
    if text == "latest":
        return LATEST
    match = _VERSION.match(text)
    return Version(1, int(match.group(1))) if match else None


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        return (self.level == other.level == PRIVILEGED) or self == other


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    def fully_privileged(self) -> bool:
        return PRIVILEGED == self.enforce.level == self.audit.level == self.warn.level

    def equivalent(self, other: Policy) -> bool:
        return (self.enforce.equivalent(other.enforce) and self.audit.equivalent(other.audit)
                and self.warn.equivalent(other.warn))


def compare_levels(a: str, b: str) -> int:
    """-1, 0, +1: `a` less strict than, as strict as, stricter than `b`."""
    return (LEVELS.index(a) > LEVELS.index(b)) - (LEVELS.index(a) < LEVELS.index(b))


@dataclass(frozen=True, kw_only=True)
class PodSecurityConfig:
    """What a PodSecurityConfiguration (AdmissionConfiguration) holds."""

    defaults: Policy = Policy(enforce=LevelVersion(BASELINE), audit=LevelVersion(BASELINE),
                              warn=LevelVersion(BASELINE))
    exempt_namespaces: frozenset[str] = frozenset({"kube-system"})
    exempt_usernames: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()


def policy_of(labels: Obj, defaults: Policy) -> tuple[Policy, list[Cause]]:
    """PolicyToEvaluate: the namespace labels over the defaults, and the label errors.
    A bad enforce label means `restricted`; a bad audit or warn level fails open."""
    causes: list[Cause] = []
    modes = {"enforce": defaults.enforce, "audit": defaults.audit, "warn": defaults.warn}
    has_enforce_level = False
    for mode in MODES:
        level, version = modes[mode].level, modes[mode].version
        key = LABEL_PREFIX + mode
        if key in labels:
            text = str(labels[key])
            if text in LEVELS:
                level = text
                has_enforce_level = has_enforce_level or mode == "enforce"
            else:
                causes.append(invalid(f"metadata.labels[{key}]", text,
                                      "must be one of " + ", ".join(LEVELS)))
                level = RESTRICTED if mode == "enforce" else PRIVILEGED
        if key + "-version" in labels:
            text = str(labels[key + "-version"])
            parsed = parse_version(text)
            if parsed is None:
                causes.append(invalid(f"metadata.labels[{key}-version]", text,
                                      'must be "latest" or "v1.x"'))
            version = parsed or LATEST
        modes[mode] = LevelVersion(level, version)
    # Warn defaults to the enforce level when that is set stricter than warn's.
    if (LABEL_PREFIX + "warn" not in labels and has_enforce_level
            and compare_levels(modes["enforce"].level, modes["warn"].level) > 0):
        version = (modes["warn"].version if LABEL_PREFIX + "warn-version" in labels
                   else modes["enforce"].version)
        modes["warn"] = LevelVersion(modes["enforce"].level, version)
    return Policy(**modes), causes


# ---- the checks (k8s.io/pod-security-admission/policy/check_*.go) ----------------------

Result = tuple[str, str] | None
"""(forbidden reason, detail) of a failed check; None when it passes."""
CheckFn = Callable[[Obj, Obj], Result]


def _quote(items: Sequence[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers(spec: Obj) -> list[Obj]:
    """initContainers, containers, ephemeralContainers: visitContainers' order."""
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in as_list(spec.get(key)) if isinstance(c, dict)]


def _sc(obj: Obj) -> Obj:
    return as_dict(obj.get("securityContext"))


def _name(container: Obj) -> str:
    return str(container.get("name", ""))


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    setters = ["pod"] if pod_bad else []
    if containers:
        setters.append(f"{_plural('container', 'containers', len(containers))} "
                       f"{_quote(containers)}")
    return setters


def _windows(spec: Obj) -> bool:
    return as_dict(spec.get("os")).get("name") == "windows"


def privileged(meta: Obj, spec: Obj) -> Result:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if bad:
        return ("privileged", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} "
                "must not set securityContext.privileged=true")
    return None


def host_namespaces(meta: Obj, spec: Obj) -> Result:
    used = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC")
            if spec.get(key) is True]
    return ("host namespaces", ", ".join(used)) if used else None


def host_path_volumes(meta: Obj, spec: Obj) -> Result:
    bad = [str(v.get("name", "")) for v in as_list(spec.get("volumes"))
           if isinstance(v, dict) and v.get("hostPath") is not None]
    if bad:
        return ("hostPath volumes", f"{_plural('volume', 'volumes', len(bad))} {_quote(bad)}")
    return None


def host_ports(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    ports: set[int] = set()
    for c in _containers(spec):
        used = [int(p["hostPort"]) for p in as_list(c.get("ports"))
                if isinstance(p, dict) and isinstance(p.get("hostPort"), int) and p["hostPort"]]
        if used:
            bad.append(_name(c))
            ports.update(used)
    if bad:
        # Sorted as strings, as sets.String lists them ("443" before "80").
        listed = sorted(str(p) for p in ports)
        return ("hostPort", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} "
                f"{_plural('uses', 'use', len(bad))} "
                f"{_plural('hostPort', 'hostPorts', len(listed))} {', '.join(listed)}")
    return None


def _probe_hosts(handler: Any) -> list[str]:
    handler = as_dict(handler)
    return [str(as_dict(handler.get(k)).get("host")) for k in ("httpGet", "tcpSocket")
            if as_dict(handler.get(k)).get("host")]


def host_probes_and_lifecycle(meta: Obj, spec: Obj) -> Result:
    bad: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        lifecycle = as_dict(c.get("lifecycle"))
        for handler in (c.get("livenessProbe"), c.get("readinessProbe"),
                        c.get("startupProbe"), lifecycle.get("postStart"),
                        lifecycle.get("preStop")):
            found = _probe_hosts(handler)
            if found:
                bad.add(_name(c))
                hosts.update(found)
    if bad:
        return ("probe or lifecycle host",
                f"{_plural('container', 'containers', len(bad))} {_quote(sorted(bad))} "
                f"{_plural('uses', 'use', len(bad))} "
                f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
                f"{_quote(sorted(hosts))}")
    return None


_BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _added(c: Obj) -> list[str]:
    return [str(x) for x in as_list(as_dict(_sc(c).get("capabilities")).get("add"))]


def capabilities_baseline(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    extra: set[str] = set()
    for c in _containers(spec):
        wrong = [cap for cap in _added(c) if cap not in _BASELINE_CAPABILITIES]
        if wrong:
            bad.append(_name(c))
            extra.update(wrong)
    if bad:
        return ("non-default capabilities",
                f"{_plural('container', 'containers', len(bad))} {_quote(bad)} must not "
                f"include {_quote(sorted(extra))} in securityContext.capabilities.add")
    return None


def capabilities_restricted(meta: Obj, spec: Obj) -> Result:
    if _windows(spec):
        return None
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for c in _containers(spec):
        caps = _sc(c).get("capabilities")
        if not isinstance(caps, dict):
            missing_drop.append(_name(c))
            continue
        if "ALL" not in as_list(caps.get("drop")):
            missing_drop.append(_name(c))
        wrong = [cap for cap in _added(c) if cap != "NET_BIND_SERVICE"]
        if wrong:
            adding.append(_name(c))
            forbidden.update(wrong)
    details = []
    if missing_drop:
        details.append(f"{_plural('container', 'containers', len(missing_drop))} "
                       f'{_quote(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_quote(adding)} "
                       f"must not include {_quote(sorted(forbidden))} in "
                       "securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _apparmor_allowed_annotation(value: str) -> bool:
    return not value or value == "runtime/default" or value.startswith("localhost/")


def apparmor_profile(meta: Obj, spec: Obj) -> Result:
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = _sc(spec).get("appArmorProfile")
    if isinstance(pod_profile, dict) and pod_profile.get("type") not in ("RuntimeDefault",
                                                                         "Localhost"):
        setters.append("pod")
        values.add(str(pod_profile.get("type", "")))
    bad: list[str] = []
    for c in _containers(spec):
        profile = _sc(c).get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in ("RuntimeDefault",
                                                                     "Localhost"):
            bad.append(_name(c))
            values.add(str(profile.get("type", "")))
    if bad:
        setters.append(f"{_plural('container', 'containers', len(bad))} {_quote(bad)}")
    listed = sorted(values)
    annotations = sorted(
        f'{k}="{v}"' for k, v in as_dict(meta.get("annotations")).items()
        if k.startswith("container.apparmor.security.beta.kubernetes.io/")
        and not _apparmor_allowed_annotation(str(v)))
    if annotations:
        listed.extend(annotations)
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if setters:
        return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles",
                        len(listed)),
                f"{' and '.join(setters)} must not set AppArmor profile type to "
                f"{_quote(listed)}")
    return None


def proc_mount(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in _containers(spec):
        value = _sc(c).get("procMount")
        if value is not None and value != "Default":
            bad.append(_name(c))
            kinds.add(str(value))
    if bad:
        return ("procMount", f"{_plural('container', 'containers', len(bad))} {_quote(bad)} "
                f"must not set securityContext.procMount to {_quote(sorted(kinds))}")
    return None


def _user_namespaced(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


def proc_mount_1_35(meta: Obj, spec: Obj) -> Result:
    return None if _user_namespaced(spec) else proc_mount(meta, spec)


def _selinux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Obj) -> bool:
            ok = True
            if str(opts.get("type") or "") not in allowed:
                ok = False
                types.add(str(opts.get("type") or ""))
            for key in ("user", "role"):
                if opts.get(key):
                    ok = False
                    flags[key] = True
            return ok
        pod_opts = _sc(spec).get("seLinuxOptions")
        pod_bad = isinstance(pod_opts, dict) and not valid(pod_opts)
        bad = [_name(c) for c in _containers(spec)
               if isinstance(_sc(c).get("seLinuxOptions"), dict)
               and not valid(_sc(c)["seLinuxOptions"])]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = []
        if types:
            data.append(f"{_plural('type', 'types', len(types))} {_quote(sorted(types))}")
        data.extend(f"{key} may not be set" for key in ("user", "role") if flags[key])
        return ("seLinuxOptions", f"{' and '.join(setters)} set forbidden "
                f"securityContext.seLinuxOptions: {'; '.join(data)}")
    return check


_SELINUX_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
selinux_options_1_0 = _selinux(_SELINUX_1_0)
selinux_options_1_31 = _selinux(_SELINUX_1_0 | {"container_engine_t"})


def _seccomp_ok(profile: Obj) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def seccomp_baseline_annotations(meta: Obj, spec: Obj) -> Result:
    annotations = as_dict(meta.get("annotations"))
    keys = ["seccomp.security.alpha.kubernetes.io/pod"] + [
        "container.seccomp.security.alpha.kubernetes.io/" + _name(c) for c in _containers(spec)]
    forbidden = sorted({f'{k}="{annotations[k]}"' for k in keys if k in annotations and not (
        annotations[k] in ("runtime/default", "docker/default")
        or str(annotations[k]).startswith("localhost/"))})
    if forbidden:
        noun = _plural("annotation", "annotations", len(forbidden))
        return ("seccompProfile", f"forbidden {noun} {', '.join(forbidden)}")
    return None


def _seccomp(restricted: bool) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        if restricted and _windows(spec):
            return None
        values: set[str] = set()
        pod_profile = _sc(spec).get("seccompProfile")
        pod_bad = pod_set = False
        if isinstance(pod_profile, dict):
            if _seccomp_ok(pod_profile):
                pod_set = True
            else:
                pod_bad = True
                values.add(str(pod_profile.get("type", "")))
        explicit: list[str] = []
        implicit: list[str] = []
        for c in _containers(spec):
            profile = _sc(c).get("seccompProfile")
            if isinstance(profile, dict):
                if not _seccomp_ok(profile):
                    explicit.append(_name(c))
                    values.add(str(profile.get("type", "")))
            elif not pod_set:
                implicit.append(_name(c))
        setters = _setters(pod_bad, explicit)
        if setters:
            return ("seccompProfile", f"{' and '.join(setters)} must not set "
                    f"securityContext.seccompProfile.type to {_quote(sorted(values))}")
        if restricted and implicit:
            return ("seccompProfile", f"pod or {_plural('container', 'containers', len(implicit))} "
                    f"{_quote(implicit)} must set securityContext.seccompProfile.type to "
                    '"RuntimeDefault" or "Localhost"')
        return None
    return check


seccomp_baseline_1_19 = _seccomp(restricted=False)
seccomp_restricted = _seccomp(restricted=True)

_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                          "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
                          "net.ipv4.ip_unprivileged_port_start"})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad = [str(as_dict(s).get("name", "")) for s in as_list(_sc(spec).get("sysctls"))
               if as_dict(s).get("name") not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None
    return check


def windows_host_process(meta: Obj, spec: Obj) -> Result:
    def host_process(obj: Obj) -> bool:
        return as_dict(_sc(obj).get("windowsOptions")).get("hostProcess") is True
    setters = _setters(host_process(spec), [_name(c) for c in _containers(spec)
                                            if host_process(c)])
    if setters:
        return ("hostProcess", f"{' and '.join(setters)} must not set "
                "securityContext.windowsOptions.hostProcess=true")
    return None


def allow_privilege_escalation(meta: Obj, spec: Obj) -> Result:
    if _windows(spec):
        return None
    bad = [_name(c) for c in _containers(spec)
           if _sc(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false",
                f"{_plural('container', 'containers', len(bad))} {_quote(bad)} must set "
                "securityContext.allowPrivilegeEscalation=false")
    return None


def allow_privilege_escalation_1_8(meta: Obj, spec: Obj) -> Result:
    return allow_privilege_escalation(meta, {**spec, "os": None})


_ALLOWED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                    "persistentVolumeClaim", "projected", "secret")
_RESTRICTED_VOLUMES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
    "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
    "scaleIO", "storageos")


def restricted_volumes(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    kinds: set[str] = set()
    for volume in as_list(spec.get("volumes")):
        volume = as_dict(volume)
        if any(volume.get(k) is not None for k in _ALLOWED_VOLUMES):
            continue
        bad.append(str(volume.get("name", "")))
        kinds.add(next((k for k in _RESTRICTED_VOLUMES if volume.get(k) is not None), "unknown"))
    if bad:
        return ("restricted volume types",
                f"{_plural('volume', 'volumes', len(bad))} {_quote(bad)} "
                f"{_plural('uses', 'use', len(bad))} "
                f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} "
                f"{_quote(sorted(kinds))}")
    return None


def run_as_non_root(meta: Obj, spec: Obj) -> Result:
    pod_value = _sc(spec).get("runAsNonRoot")
    pod_bad = pod_value is False
    pod_ok = pod_value is True
    explicit = [_name(c) for c in _containers(spec) if _sc(c).get("runAsNonRoot") is False]
    implicit = [_name(c) for c in _containers(spec)
                if _sc(c).get("runAsNonRoot") is None and not pod_ok]
    setters = _setters(pod_bad, explicit)
    if setters:
        return ("runAsNonRoot != true",
                f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true",
                f"pod or {_plural('container', 'containers', len(implicit))} "
                f"{_quote(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def run_as_non_root_1_35(meta: Obj, spec: Obj) -> Result:
    return None if _user_namespaced(spec) else run_as_non_root(meta, spec)


def run_as_user(meta: Obj, spec: Obj) -> Result:
    def root(obj: Obj) -> bool:
        value = _sc(obj).get("runAsUser")
        return value == 0 and not isinstance(value, bool)
    setters = _setters(root(spec), [_name(c) for c in _containers(spec) if root(c)])
    if setters:
        return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")
    return None


def run_as_user_1_35(meta: Obj, spec: Obj) -> Result:
    return None if _user_namespaced(spec) else run_as_user(meta, spec)


@dataclass(frozen=True)
class Versioned:
    minimum: tuple[int, int]
    check: CheckFn
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[Versioned, ...]

    def at(self, version: tuple[int, int]) -> Versioned | None:
        """The version of this check in force at policy `version` (None: not yet)."""
        found = None
        for v in self.versions:
            if v.minimum <= version:
                found = v
        return found


def _c(id: str, level: str, *versions: Versioned) -> Check:
    return Check(id, level, versions)


CHECKS: tuple[Check, ...] = (
    _c("allowPrivilegeEscalation", RESTRICTED, Versioned((1, 8), allow_privilege_escalation_1_8),
       Versioned((1, 25), allow_privilege_escalation)),
    _c("appArmorProfile", BASELINE, Versioned((1, 0), apparmor_profile)),
    _c("capabilities_baseline", BASELINE, Versioned((1, 0), capabilities_baseline)),
    _c("capabilities_restricted", RESTRICTED,
       Versioned((1, 22), lambda m, s: capabilities_restricted(m, {**s, "os": None}),
                 ("capabilities_baseline",)),
       Versioned((1, 25), capabilities_restricted, ("capabilities_baseline",))),
    _c("hostNamespaces", BASELINE, Versioned((1, 0), host_namespaces)),
    _c("hostPathVolumes", BASELINE, Versioned((1, 0), host_path_volumes)),
    _c("hostPorts", BASELINE, Versioned((1, 0), host_ports)),
    _c("hostProbesAndHostLifecycle", BASELINE, Versioned((1, 34), host_probes_and_lifecycle)),
    _c("privileged", BASELINE, Versioned((1, 0), privileged)),
    _c("procMount", BASELINE, Versioned((1, 0), proc_mount), Versioned((1, 35), proc_mount_1_35)),
    _c("procMount_restricted", RESTRICTED, Versioned((1, 35), proc_mount, ("procMount",))),
    _c("restrictedVolumes", RESTRICTED,
       Versioned((1, 0), restricted_volumes, ("hostPathVolumes",))),
    _c("runAsNonRoot", RESTRICTED, Versioned((1, 0), run_as_non_root),
       Versioned((1, 35), run_as_non_root_1_35)),
    _c("runAsUser", RESTRICTED, Versioned((1, 23), run_as_user),
       Versioned((1, 35), run_as_user_1_35)),
    _c("seLinuxOptions", BASELINE, Versioned((1, 0), selinux_options_1_0),
       Versioned((1, 31), selinux_options_1_31)),
    _c("seccompProfile_baseline", BASELINE, Versioned((1, 0), seccomp_baseline_annotations),
       Versioned((1, 19), seccomp_baseline_1_19)),
    _c("seccompProfile_restricted", RESTRICTED,
       Versioned((1, 19), lambda m, s: seccomp_restricted(m, {**s, "os": None}),
                 ("seccompProfile_baseline",)),
       Versioned((1, 25), seccomp_restricted, ("seccompProfile_baseline",))),
    _c("sysctls", BASELINE, Versioned((1, 0), _sysctls(_SYSCTLS_1_0)),
       Versioned((1, 27), _sysctls(_SYSCTLS_1_27)), Versioned((1, 29), _sysctls(_SYSCTLS_1_29)),
       Versioned((1, 32), _sysctls(_SYSCTLS_1_32))),
    _c("windowsHostProcess", BASELINE, Versioned((1, 0), windows_host_process)),
)
"""Every check of the Pod Security Standards, as policy/check_*.go registers them."""


def checks_for(lv: LevelVersion, checks: Sequence[Check] = CHECKS) -> list[CheckFn]:
    """The checks of a level at a version, in kube's order: baseline ids sorted, then
    restricted ids sorted; restricted checks replace the baseline ones they override."""
    if lv.level == PRIVILEGED:
        return []
    version = SERVER_VERSION if lv.version.latest else (lv.version.major, lv.version.minor)
    version = min(version, SERVER_VERSION)
    active = {c.id: (c, v) for c in checks if (v := c.at(version)) is not None}
    if lv.level == BASELINE:
        chosen = [cid for cid, (c, _) in active.items() if c.level == BASELINE]
    else:
        overridden = {o for c, v in active.values() if c.level == RESTRICTED for o in v.overrides}
        chosen = [cid for cid in active if cid not in overridden]
    ordered = (sorted(cid for cid in chosen if active[cid][0].level == BASELINE)
               + sorted(cid for cid in chosen if active[cid][0].level == RESTRICTED))
    return [active[cid][1].check for cid in ordered]


@dataclass(frozen=True)
class Evaluation:
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.failures

    @property
    def reason(self) -> str:
        return ", ".join(r for r, _ in self.failures)

    @property
    def detail(self) -> str:
        return ", ".join(f"{r} ({d})" if d else r for r, d in self.failures)


def evaluate(lv: LevelVersion, meta: Obj, spec: Obj) -> Evaluation:
    failures = []
    for check in checks_for(lv):
        result = check(meta, spec)
        if result is not None:
            failures.append((result[0] or "unknown forbidden reason", result[1]))
    return Evaluation(tuple(failures))


# ---- admission ---------------------------------------------------------------------------

_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}
"""The pod controllers' templates (DefaultPodSpecExtractor)."""

IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log",
                                      "portforward", "proxy", "status"})


def pod_template(resource: Resource, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the pod `obj` describes, if `resource` embeds one."""
    if resource.group == "" and resource.plural == "pods":
        return as_dict(obj.get("metadata")), as_dict(obj.get("spec"))
    path = _TEMPLATE_PATHS.get((resource.group, resource.plural))
    if path is None:
        return None
    value: Any = obj
    for key in path:
        value = as_dict(value).get(key)
    if not isinstance(value, dict):
        return None
    return as_dict(value.get("metadata")), as_dict(value.get("spec"))


def _significant_pod_update(new: Obj, old: Obj) -> bool:
    spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))

    def images(s: Obj, key: str) -> list[Any]:
        return [as_dict(c).get("image") for c in as_list(s.get(key))]
    for key in ("containers", "initContainers"):
        if images(spec, key) != images(old_spec, key):
            return True
    old_ephemeral = {as_dict(c).get("name"): as_dict(c).get("image")
                     for c in as_list(old_spec.get("ephemeralContainers"))}
    return any(as_dict(c).get("name") not in old_ephemeral
               or old_ephemeral[as_dict(c).get("name")] != as_dict(c).get("image")
               for c in as_list(spec.get("ephemeralContainers")))


@dataclass(frozen=True)
class PodSecurity:
    """The admission plugin (the registry holds one); see the module docstring."""

    config: PodSecurityConfig = field(default_factory=PodSecurityConfig)

    def policy(self, labels: Obj) -> tuple[Policy, list[Cause]]:
        return policy_of(labels, self.config.defaults)

    def validate(self, store: Store, resource: Resource, obj: Obj, old: Obj | None, *,
                 subresource: str = "", username: str = "") -> None:
        """Admit a write of `obj` (an update of `old`, if given): raise `Forbidden` or
        `Invalid`, or return having added its warnings (api/warning.py)."""
        if resource == NAMESPACES:
            self._namespace(store, obj, old, subresource)
            return
        if resource == PODS:
            if subresource in IGNORED_POD_SUBRESOURCES:
                return
            if old is not None and not _significant_pod_update(obj, old):
                return
        elif subresource or (resource.group, resource.plural) not in _TEMPLATE_PATHS:
            return
        namespace = str(as_dict(obj.get("metadata")).get("namespace") or "")
        if namespace in self.config.exempt_namespaces or (
                username and username in self.config.exempt_usernames):
            return
        ns = store.try_get(NAMESPACES, "", namespace)
        policy, causes = self.policy(as_dict(as_dict((ns or {}).get("metadata")).get("labels")))
        is_pod = resource == PODS
        if not causes and (policy.fully_privileged() if is_pod else (
                policy.warn.level == policy.audit.level == PRIVILEGED)):
            return
        template = pod_template(resource, obj)
        if template is None:
            return
        meta, spec = template
        if spec.get("runtimeClassName") in self.config.exempt_runtime_classes:
            return
        self._evaluate(resource, obj, policy, causes, meta, spec, username, enforce=is_pod)

    def _evaluate(self, resource: Resource, obj: Obj, policy: Policy, causes: list[Cause],
                  meta: Obj, spec: Obj, username: str, *, enforce: bool) -> None:
        results: dict[LevelVersion, Evaluation] = {}

        def result(lv: LevelVersion) -> Evaluation:
            if lv not in results:
                results[lv] = evaluate(lv, meta, spec)
            return results[lv]
        obj_meta = as_dict(obj.get("metadata"))
        name = str(obj_meta.get("name") or "")
        audit: dict[str, str] = {}
        if causes:
            audit["error"] = "Failed to parse policy: " + "; ".join(
                f"{c.field}: {c.message}" for c in causes)
        refused: Forbidden | None = None
        if enforce:
            enforced = result(policy.enforce)
            if not enforced.allowed:
                qualified = (f"{resource.plural}.{resource.group}" if resource.group
                             else resource.plural)
                message = f'violates PodSecurity "{policy.enforce}": {enforced.detail}'
                refused = Forbidden(f'{qualified} "{name}" is forbidden: {message}' if name
                                    else f"{qualified} is forbidden: {message}",
                                    kind=resource.plural, name=name, group=resource.group)
        audited = result(policy.audit)
        if not audited.allowed:
            audit["audit-violations"] = (f'would violate PodSecurity "{policy.audit}": '
                                         f"{audited.detail}")
        if audit:
            # miniorch has no audit log: the annotations go to the cluster log instead.
            log.warning("pod-security audit", resource=resource.plural,
                        namespace=obj_meta.get("namespace", ""), name=name, user=username,
                        **({"enforce-policy": str(policy.enforce)} if enforce else {}),
                        **audit)
        if refused is not None:
            raise refused
        warned = result(policy.warn)
        if not warned.allowed:
            warning.add(f'would violate PodSecurity "{policy.warn}": {warned.detail}')

    # ---- namespaces ----------------------------------------------------------------------

    def _namespace(self, store: Store, ns: Obj, old: Obj | None, subresource: str) -> None:
        if subresource:
            return
        meta = as_dict(ns.get("metadata"))
        name = str(meta.get("name") or "")
        labels = as_dict(meta.get("labels"))
        policy, causes = self.policy(labels)
        if old is None:
            if causes:
                raise Invalid.of("Namespace", name, causes)
            if name in self.config.exempt_namespaces:
                self._exempt_warning(name, policy, labels)
            return
        old_policy, old_causes = self.policy(as_dict(as_dict(old.get("metadata")).get("labels")))
        if causes and (not old_causes or causes != old_causes):
            raise Invalid.of("Namespace", name, causes)
        # Dry-run the pods only when the enforce level got stricter (or its version moved).
        if policy.enforce == old_policy.enforce or policy.enforce.level == PRIVILEGED:
            return
        if (policy.enforce.version == old_policy.enforce.version
                and compare_levels(policy.enforce.level, old_policy.enforce.level) < 1):
            return
        if name in self.config.exempt_namespaces:
            self._exempt_warning(name, policy, labels)
            return
        for message in self.dry_run_pods(store, name, policy.enforce):
            warning.add(message)

    def dry_run_pods(self, store: Store, namespace: str, enforce: LevelVersion) -> list[str]:
        """EvaluatePodsInNamespace: which existing pods the new enforce level refuses."""
        pods, _ = store.list(PODS, namespace, shared=True)
        first: list[Obj] = []
        repeats: list[Obj] = []
        seen: set[str] = set()
        for pod in pods:
            if as_dict(pod.get("spec")).get("runtimeClassName") in \
                    self.config.exempt_runtime_classes:
                continue
            owner = next((ref for ref in as_list(pod["metadata"].get("ownerReferences"))
                          if as_dict(ref).get("controller")), None)
            if owner is None:
                first.append(pod)
            elif owner.get("uid") in seen:
                repeats.append(pod)
            else:
                seen.add(str(owner.get("uid")))
                first.append(pod)
        ordered = first + repeats
        total = len(ordered)
        checked = ordered[:MAX_PODS_TO_CHECK]
        counts: dict[str, tuple[str, int]] = {}
        order: list[str] = []
        for pod in checked:
            evaluation = evaluate(enforce, as_dict(pod.get("metadata")),
                                  as_dict(pod.get("spec")))
            if evaluation.allowed:
                continue
            pod_name = str(pod["metadata"].get("name", ""))
            reason = evaluation.reason
            if reason not in counts:
                order.append(reason)
                counts[reason] = (pod_name, 1)
            else:
                lowest, n = counts[reason]
                counts[reason] = (min(lowest, pod_name), n + 1)
        out: list[str] = []
        if len(checked) < total:
            out.append(f"new PodSecurity enforce level only checked against the first "
                       f"{len(checked)} of {total} existing pods")
        if order:
            out.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity '
                       f'enforce level "{enforce}"')
        decorated = []
        for reason in order:
            pod_name, n = counts[reason]
            others = ("" if n == 1 else " (and 1 other pod)" if n == 2
                      else f" (and {n - 1} other pods)")
            decorated.append(f"{pod_name}{others}: {reason}")
        return out + sorted(decorated)

    def _exempt_warning(self, name: str, policy: Policy, labels: Obj) -> None:
        if policy.fully_privileged() or policy.equivalent(self.config.defaults):
            return
        parts = []
        for mode, lv in (("enforce", policy.enforce), ("audit", policy.audit),
                         ("warn", policy.warn)):
            key = LABEL_PREFIX + mode
            if lv.level != PRIVILEGED and (key in labels or key + "-version" in labels):
                parts.append(f"{mode}={lv}")
        warning.add(f'namespace "{name}" is exempt from Pod Security, and the policy '
                    f"({', '.join(parts)}) will be ignored")


__all__ = ["CHECKS", "LevelVersion", "PodSecurity", "PodSecurityConfig", "Policy",
           "Version", "evaluate", "policy_of"]
