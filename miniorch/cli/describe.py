"""`describe`: kubectl's describers for Pod, ReplicationController, Service, Node,
Endpoints and Namespace (anything else gets a generic field dump).

Each describer writes tab-separated lines through `_Out` (kubectl's PrefixWriter:
two spaces per level) and the whole text goes through Go's tabwriter with kubectl's
settings (minwidth 0, padding 2), so alignment follows the same column-block rules;
`Events:` flushes first, as kubectl does, so the events table aligns on its own.

Data each describer needs is fetched here, with the same requests kubectl makes (events
by `involvedObject` field selector; a node's pods by `spec.nodeName`; its Lease).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from miniorch.api.resource import Resource
from miniorch.cli.client import Client
from miniorch.cli.errors import StatusError
from miniorch.cli.tabwriter import TabWriter

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_MAX_ANNOTATION_LEN = 140


# -- time ---------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def rfc1123z(value: str | None) -> str:
    """Go's time.RFC1123Z in local time: `Mon, 02 Jan 2006 15:04:05 -0700`."""
    parsed = parse_time(value)
    if parsed is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    return parsed.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: str | None, *, now: datetime | None = None) -> str:
    parsed = parse_time(value)
    if parsed is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration((now - parsed).total_seconds())


# -- the prefix writer --------------------------------------------------------------------


class _Out:
    def __init__(self) -> None:
        self.writer = TabWriter(minwidth=0, padding=2)
        self.parts: list[str] = []

    def w(self, level: int, text: str) -> None:
        self.writer.write("  " * level + text)

    def flush(self) -> None:
        self.parts.append(self.writer.flush())

    def text(self) -> str:
        self.flush()
        return "".join(self.parts)


def _labels_multiline(out: _Out, title: str, labels: dict[str, str] | None,
                      *, initial_indent: str = "") -> None:
    out.w(0, f"{initial_indent}{title}:\t")
    if not labels:
        out.w(0, "<none>\n")
        return
    for i, key in enumerate(sorted(labels)):
        if i:
            out.w(0, f"{initial_indent}\t")
        out.w(0, f"{key}={labels[key]}\n")


def _annotations_multiline(out: _Out, title: str, annotations: dict[str, str] | None) -> None:
    shown = {k: v for k, v in (annotations or {}).items() if k != LAST_APPLIED}
    out.w(0, f"{title}:\t")
    if not shown:
        out.w(0, "<none>\n")
        return
    for i, key in enumerate(sorted(shown)):
        if i:
            out.w(0, "\t")
        line = f"{key}: {shown[key]}"
        out.w(0, (line[:_MAX_ANNOTATION_LEN] + "...\n") if len(line) > _MAX_ANNOTATION_LEN
              else f"{line}\n")


def _tolerations_multiline(out: _Out, title: str, tolerations: list[Obj] | None) -> None:
    out.w(0, f"{title}:\t")
    if not tolerations:
        out.w(0, "<none>\n")
        return
    for i, t in enumerate(tolerations):
        if i:
            out.w(0, "\t")
        text = str(t.get("key", ""))
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if (t.get("key") or t.get("effect")) else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        out.w(0, text + "\n")


def _events(out: _Out, events: list[Obj] | None) -> None:
    if events is None:
        return
    if not events:
        out.w(0, "Events:\t<none>\n")
        return
    out.flush()
    events = sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime")
                                              or e.get("firstTimestamp") or ""))
    out.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    out.w(1, "----\t------\t----\t----\t-------\n")
    for e in events:
        first = since(e.get("eventTime")) if e.get("eventTime") else since(
            e.get("firstTimestamp"))
        series = e.get("series")
        count = int(e.get("count") or 0)
        if series:
            interval = (f"{since(series.get('lastObservedTime'))} "
                        f"(x{series.get('count', 0)} over {first})")
        elif count > 1:
            interval = f"{since(e.get('lastTimestamp'))} (x{count} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        out.w(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                 f"{str(e.get('message', '')).strip()}\n")


def _bool(value: Any) -> str:
    return "True" if value else "False"


def _format_labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# -- containers ---------------------------------------------------------------------------


def _probe(probe: Obj) -> str:
    attrs = (f"delay={probe.get('initialDelaySeconds', 0)}s "
             f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
             f"#success={probe.get('successThreshold', 1)} "
             f"#failure={probe.get('failureThreshold', 3)}")
    if probe.get("exec"):
        return f"exec [{' '.join(probe['exec'].get('command') or [])}] {attrs}"
    if probe.get("httpGet"):
        h = probe["httpGet"]
        scheme = str(h.get("scheme") or "HTTP").lower()
        port = str(h.get("port", ""))
        host = h.get("host", "")
        hostport = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") if port else host
        return f"http-get {scheme}://{hostport}{h.get('path', '')} {attrs}"
    if probe.get("tcpSocket"):
        t = probe["tcpSocket"]
        return f"tcp-socket {t.get('host', '')}:{t.get('port', '')} {attrs}"
    if probe.get("grpc"):
        grpc = probe["grpc"]
        return f"grpc <pod>:{grpc.get('port', '')} {grpc.get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _container_state(out: _Out, title: str, state: Obj) -> None:
    if state.get("running") is not None:
        out.w(2, f"{title}:\tRunning\n")
        out.w(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif state.get("waiting") is not None:
        out.w(2, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            out.w(3, f"Reason:\t{state['waiting']['reason']}\n")
    elif state.get("terminated") is not None:
        t = state["terminated"]
        out.w(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            out.w(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            out.w(3, f"Message:\t{t['message']}\n")
        out.w(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal"):
            out.w(3, f"Signal:\t{t['signal']}\n")
        out.w(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        out.w(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        out.w(2, f"{title}:\tWaiting\n")


def _containers(out: _Out, label: str, containers: list[Obj], statuses: list[Obj] | None,
                *, space: str = "") -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    if not containers:
        out.w(0, f"{space}{label}: <none>\n")
        return
    out.w(0, f"{space}{label}:\n")
    name_indent = " " if space else ""
    for c in containers:
        status = by_name.get(c.get("name"))
        out.w(1, f"{name_indent}{c.get('name', '')}:\n")
        if status is not None:
            out.w(2, f"Container ID:\t{status.get('containerID', '')}\n")
        out.w(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            out.w(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        port_text = ", ".join(f"{p.get('containerPort', 0)}/{p.get('protocol') or 'TCP'}"
                              for p in ports)
        host_text = ", ".join(f"{p.get('hostPort', 0)}/{p.get('protocol') or 'TCP'}"
                              for p in ports)
        out.w(2, f"Ports:\t{port_text}\n" if "," in port_text
              else f"Port:\t{port_text or '<none>'}\n")
        out.w(2, f"Host Ports:\t{host_text}\n" if "," in host_text
              else f"Host Port:\t{host_text or '<none>'}\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                out.w(2, f"{title}:\n")
                for arg in c[key]:
                    for line in str(arg).split("\n"):
                        out.w(3, f"{line}\n")
        if status is not None:
            _container_state(out, "State", status.get("state") or {})
            if (status.get("lastState") or {}).get("terminated"):
                _container_state(out, "Last State", status["lastState"])
            out.w(2, f"Ready:\t{_bool(status.get('ready'))}\n")
            out.w(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        resources = c.get("resources") or {}
        for title, key in (("Limits", "limits"), ("Requests", "requests")):
            if resources.get(key):
                out.w(2, f"{title}:\n")
                for name in sorted(resources[key]):
                    out.w(3, f"{name}:\t{resources[key][name]}\n")
        for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"),
                           ("Startup", "startupProbe")):
            if c.get(key):
                out.w(2, f"{title}:\t{_probe(c[key])}\n")
        env = c.get("env") or []
        out.w(2, "Environment:" + ("\t<none>" if not env else "") + "\n")
        for e in env:
            if e.get("valueFrom"):
                ref = e["valueFrom"].get("fieldRef")
                if ref:
                    out.w(3, f"{e.get('name')}:\t ({ref.get('apiVersion', 'v1')}:"
                             f"{ref.get('fieldPath', '')})\n")
                else:
                    out.w(3, f"{e.get('name')}:\t<set from a reference>\n")
                continue
            for i, line in enumerate(str(e.get("value", "")).split("\n")):
                out.w(3, f"{e.get('name')}:\t{line}\n" if i == 0 else f"\t{line}\n")
        mounts = sorted(c.get("volumeMounts") or [], key=lambda m: str(m.get("mountPath")))
        out.w(2, "Mounts:" + ("\t<none>" if not mounts else "") + "\n")
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            out.w(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})\n")


def _volumes(out: _Out, volumes: list[Obj] | None, *, space: str = "") -> None:
    if not volumes:
        out.w(0, f"{space}Volumes:\t<none>\n")
        return
    out.w(0, f"{space}Volumes:\n")
    for v in volumes:
        out.w(1, f"{' ' if space else ''}{v.get('name')}:\n")
        if v.get("hostPath") is not None:
            h = v["hostPath"]
            out.w(2, "Type:\tHostPath (bare host directory volume)\n"
                     f"    Path:\t{h.get('path', '')}\n"
                     f"    HostPathType:\t{h.get('type') or '<none>'}\n")
        elif v.get("emptyDir") is not None:
            e = v["emptyDir"]
            out.w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                     f"    Medium:\t{e.get('medium', '')}\n"
                     f"    SizeLimit:\t{e.get('sizeLimit') or '<unset>'}\n")
        elif v.get("projected") is not None:
            # kubectl's printProjectedVolumeSource (`optional` is a *bool: <nil> unset).
            out.w(2, "Type:\tProjected (a volume that contains injected data from multiple "
                     "sources)\n")
            for source in v["projected"].get("sources") or []:
                if source.get("secret") is not None:
                    out.w(2, f"SecretName:\t{source['secret'].get('name', '')}\n"
                             f"    SecretOptionalName:\t{_go_bool(source['secret'])}\n")
                elif source.get("downwardAPI") is not None:
                    out.w(2, "DownwardAPI:\ttrue\n")
                elif source.get("configMap") is not None:
                    out.w(2, f"ConfigMapName:\t{source['configMap'].get('name', '')}\n"
                             f"    ConfigMapOptional:\t{_go_bool(source['configMap'])}\n")
                elif source.get("serviceAccountToken") is not None:
                    seconds = source["serviceAccountToken"].get("expirationSeconds", 3600)
                    out.w(2, f"TokenExpirationSeconds:\t{seconds}\n")
        else:
            out.w(1, "<unknown>\n")


def _go_bool(source: Obj) -> str:
    optional = source.get("optional")
    return "<nil>" if optional is None else str(bool(optional)).lower()


def qos_class(pod: Obj) -> str:
    if (pod.get("status") or {}).get("qosClass"):
        return str(pod["status"]["qosClass"])
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# -- describers ---------------------------------------------------------------------------


def describe_pod(pod: Obj, events: list[Obj] | None) -> str:
    out = _Out()
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        out.w(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        out.w(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        out.w(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        out.w(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("nodeName"):
        out.w(0, f"Node:\t{spec['nodeName']}/{status.get('hostIP', '')}\n")
    else:
        out.w(0, "Node:\t<none>\n")
    if status.get("startTime"):
        out.w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    _labels_multiline(out, "Labels", meta.get("labels"))
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    if meta.get("deletionTimestamp") and status.get("phase") not in ("Failed", "Succeeded"):
        deletion = parse_time(meta["deletionTimestamp"])
        lasts = human_duration((deletion - datetime.now(UTC)).total_seconds()) \
            if deletion else "<unknown>"
        out.w(0, f"Status:\tTerminating (lasts {lasts})\n")
        out.w(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        out.w(0, f"Status:\t{status.get('phase', '')}\n")
    if status.get("reason"):
        out.w(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        out.w(0, f"Message:\t{status['message']}\n")
    out.w(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    if not ips:
        out.w(0, "IPs:\t<none>\n")
    else:
        out.w(0, "IPs:\n")
        for ip in ips:
            out.w(1, f"IP:\t{ip.get('ip', '')}\n")
    controller = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")),
                      None)
    if controller:
        out.w(0, f"Controlled By:\t{controller.get('kind')}/{controller.get('name')}\n")
    if status.get("nominatedNodeName"):
        out.w(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _containers(out, "Init Containers", spec["initContainers"],
                    status.get("initContainerStatuses"))
    _containers(out, "Containers", spec.get("containers") or [],
                status.get("containerStatuses") or [])
    if status.get("conditions"):
        out.w(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            out.w(1, f"{c.get('type', '')} \t{c.get('status', '')} \n")
    _volumes(out, spec.get("volumes"))
    out.w(0, f"QoS Class:\t{qos_class(pod)}\n")
    _labels_multiline(out, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations_multiline(out, "Tolerations", spec.get("tolerations"))
    _events(out, events)
    return out.text()


def describe_rc(rc: Obj, pods: list[Obj], events: list[Obj] | None) -> str:
    out = _Out()
    meta, spec, status = rc.get("metadata") or {}, rc.get("spec") or {}, rc.get("status") or {}
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    out.w(0, f"Selector:\t{_format_labels(spec.get('selector'))}\n")
    _labels_multiline(out, "Labels", meta.get("labels"))
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Replicas:\t{status.get('replicas', 0)} current / "
             f"{spec.get('replicas', 1)} desired\n")
    out.w(0, f"Pods Status:\t{phases.count('Running')} Running / {phases.count('Pending')} "
             f"Waiting / {phases.count('Succeeded')} Succeeded / "
             f"{phases.count('Failed')} Failed\n")
    template = spec.get("template")
    out.w(0, "Pod Template:\n")
    if template is None:
        out.w(1, "<unset>")
    else:
        tmeta, tspec = template.get("metadata") or {}, template.get("spec") or {}
        _labels_multiline(out, "  Labels", tmeta.get("labels"))
        if tmeta.get("annotations"):
            _annotations_multiline(out, "  Annotations", tmeta.get("annotations"))
        if tspec.get("serviceAccountName"):
            out.w(1, f"Service Account:\t{tspec['serviceAccountName']}\n")
        if tspec.get("initContainers"):
            _containers(out, "Init Containers", tspec["initContainers"], None, space="  ")
        _containers(out, "Containers", tspec.get("containers") or [], None, space="  ")
        _volumes(out, tspec.get("volumes"), space="  ")
        if tspec.get("priorityClassName"):
            out.w(1, f"Priority Class Name:\t{tspec['priorityClassName']}\n")
        _labels_multiline(out, "  Node-Selectors", tspec.get("nodeSelector"))
        _tolerations_multiline(out, "  Tolerations", tspec.get("tolerations"))
    if status.get("conditions"):
        out.w(0, "Conditions:\n  Type\tStatus\tReason\n")
        out.w(1, "----\t------\t------\n")
        for c in status["conditions"]:
            out.w(1, f"{c.get('type', '')} \t{c.get('status', '')}\t{c.get('reason', '')}\n")
    _events(out, events)
    return out.text()


def _format_endpoints(endpoints: Obj | None, port: Obj) -> str:
    if not endpoints:
        return "<none>"
    addrs: list[str] = []
    for subset in endpoints.get("subsets") or []:
        for p in subset.get("ports") or []:
            if (p.get("name") or "") != (port.get("name") or ""):
                continue
            addrs.extend(f"{a.get('ip')}:{p.get('port')}" for a in subset.get("addresses") or [])
    if not addrs:
        return "<none>"
    shown = ",".join(addrs[:3])
    return shown + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")


def describe_service(svc: Obj, endpoints: Obj | None, events: list[Obj] | None) -> str:
    out = _Out()
    meta, spec, status = svc.get("metadata") or {}, svc.get("spec") or {}, svc.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels_multiline(out, "Labels", meta.get("labels"))
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Selector:\t{_format_labels(spec.get('selector'))}\n")
    out.w(0, f"Type:\t{spec.get('type', '')}\n")
    if spec.get("ipFamilyPolicy"):
        out.w(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    out.w(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    out.w(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    if spec.get("clusterIPs"):
        out.w(0, f"IPs:\t{','.join(spec['clusterIPs'])}\n")
    if spec.get("externalIPs"):
        out.w(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        out.w(0, f"IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("type") == "ExternalName":
        out.w(0, f"External Name:\t{spec.get('externalName', '')}\n")
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        out.w(0, "LoadBalancer Ingress:\t"
                 + ", ".join(str(i.get("ip") or i.get("hostname") or "") for i in ingress) + "\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        proto = port.get("protocol") or "TCP"
        out.w(0, f"Port:\t{name}\t{port.get('port')}/{proto}\n")
        out.w(0, f"TargetPort:\t{port.get('targetPort', port.get('port'))}/{proto}\n")
        if port.get("nodePort"):
            out.w(0, f"NodePort:\t{name}\t{port['nodePort']}/{proto}\n")
        out.w(0, f"Endpoints:\t{_format_endpoints(endpoints, port)}\n")
    out.w(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        out.w(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        out.w(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        out.w(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    _events(out, events)
    return out.text()


def describe_endpoints(ep: Obj, events: list[Obj] | None) -> str:
    out = _Out()
    meta = ep.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels_multiline(out, "Labels", meta.get("labels"))
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, "Subsets:\n")
    for subset in ep.get("subsets") or []:
        ready = ",".join(a.get("ip", "") for a in subset.get("addresses") or []) or "<none>"
        not_ready = ",".join(a.get("ip", "") for a in subset.get("notReadyAddresses") or []) \
            or "<none>"
        out.w(1, f"Addresses:\t{ready}\n")
        out.w(1, f"NotReadyAddresses:\t{not_ready}\n")
        if subset.get("ports"):
            out.w(1, "Ports:\n")
            out.w(2, "Name\tPort\tProtocol\n")
            out.w(2, "----\t----\t--------\n")
            for p in subset["ports"]:
                out.w(2, f"{p.get('name') or '<unset>'}\t{p.get('port')}\t"
                         f"{p.get('protocol') or 'TCP'}\n")
        out.w(0, "\n")
    _events(out, events)
    return out.text()


def describe_namespace(ns: Obj) -> str:
    out = _Out()
    meta = ns.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    _labels_multiline(out, "Labels", meta.get("labels"))
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Status:\t{(ns.get('status') or {}).get('phase', '')}\n")
    return out.text()


def _pod_requests_limits(pod: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    from decimal import Decimal

    from miniorch.core.quantity import parse_quantity

    req: dict[str, Any] = {}
    lim: dict[str, Any] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        for target, key in ((req, "requests"), (lim, "limits")):
            for name, value in (res.get(key) or {}).items():
                target[name] = target.get(name, Decimal(0)) + parse_quantity(value)
    return req, lim


def _fraction(value: Any, total: Any) -> int:
    return int(value / total * 100) if total else 0


def describe_node(node: Obj, pods: list[Obj] | None, events: list[Obj] | None,
                  lease: Obj | None, lease_error: str = "") -> str:
    from decimal import Decimal

    from miniorch.core.quantity import format_quantity, parse_quantity

    out = _Out()
    meta, spec, status = (node.get("metadata") or {}, node.get("spec") or {},
                          node.get("status") or {})
    labels = meta.get("labels") or {}
    roles = {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    out.w(0, f"Roles:\t{','.join(sorted(roles)) or '<none>'}\n")
    _labels_multiline(out, "Labels", labels)
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    out.w(0, "Taints:\t")
    if not taints:
        out.w(0, "<none>\n")
    for i, t in enumerate(taints):
        if i:
            out.w(0, "\t")
        value = f"={t['value']}" if t.get("value") else ""
        out.w(0, f"{t.get('key', '')}{value}:{t.get('effect', '')}\n")
    out.w(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if lease is not None:
        lspec = lease.get("spec") or {}
        out.w(0, "Lease:\n")
        out.w(1, f"HolderIdentity:\t{lspec.get('holderIdentity') or '<unset>'}\n")
        out.w(1, "AcquireTime:\t"
                 f"{rfc1123z(lspec['acquireTime']) if lspec.get('acquireTime') else '<unset>'}\n")
        out.w(1, "RenewTime:\t"
                 f"{rfc1123z(lspec['renewTime']) if lspec.get('renewTime') else '<unset>'}\n")
    else:
        out.w(0, f"Lease:\tFailed to get lease: {lease_error}\n")
    if status.get("conditions"):
        out.w(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason"
                 "\tMessage\n")
        out.w(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            out.w(1, f"{c.get('type', '')} \t{c.get('status', '')} \t"
                     f"{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                     f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                     f"{c.get('message', '')}\n")
    out.w(0, "Addresses:\n")
    for a in status.get("addresses") or []:
        out.w(1, f"{a.get('type', '')}:\t{a.get('address', '')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        if status.get(key):
            out.w(0, f"{title}:\n")
            for name in sorted(status[key]):
                out.w(0, f"  {name}:\t{status[key][name]}\n")
    info = status.get("nodeInfo") or {}
    out.w(0, "System Info:\n")
    for title, key in (("Machine ID", "machineID"), ("System UUID", "systemUUID"),
                       ("Boot ID", "bootID"), ("Kernel Version", "kernelVersion"),
                       ("OS Image", "osImage"), ("Operating System", "operatingSystem"),
                       ("Architecture", "architecture"),
                       ("Container Runtime Version", "containerRuntimeVersion"),
                       ("Kubelet Version", "kubeletVersion"),
                       ("Kube-Proxy Version", "kubeProxyVersion")):
        out.w(0, f"  {title}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        out.w(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        out.w(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        out.w(0, f"ProviderID:\t{spec['providerID']}\n")
    if pods is None:
        out.w(0, "Pods:\tnot authorized\n")
    else:
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        cpu_total = parse_quantity(allocatable.get("cpu", 0))
        mem_total = parse_quantity(allocatable.get("memory", 0))
        eph_total = parse_quantity(allocatable.get("ephemeral-storage", 0))
        out.w(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
        out.w(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits"
                 "\tAge\n")
        out.w(1, "---------\t----\t\t------------\t----------\t---------------\t-------------"
                 "\t---\n")
        totals: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
        for pod in pods:
            req, lim = _pod_requests_limits(pod)
            for name, value in req.items():
                totals["requests"][name] = totals["requests"].get(name, Decimal(0)) + value
            for name, value in lim.items():
                totals["limits"][name] = totals["limits"].get(name, Decimal(0)) + value
            cells = []
            for values, name, total, binary in ((req, "cpu", cpu_total, False),
                                                (lim, "cpu", cpu_total, False),
                                                (req, "memory", mem_total, True),
                                                (lim, "memory", mem_total, True)):
                v = values.get(name, Decimal(0))
                cells.append(f"{format_quantity(v, binary=binary)} ({_fraction(v, total)}%)")
            pmeta = pod.get("metadata") or {}
            out.w(1, f"{pmeta.get('namespace', '')}\t{pmeta.get('name', '')}\t\t"
                     + "\t".join(cells) + f"\t{since(pmeta.get('creationTimestamp'))}\n")
        out.w(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., "
                 "overcommitted.)\n")
        out.w(1, "Resource\tRequests\tLimits\n")
        out.w(1, "--------\t--------\t------\n")
        for name, total, binary in (("cpu", cpu_total, False), ("memory", mem_total, True),
                                    ("ephemeral-storage", eph_total, True)):
            r = totals["requests"].get(name, Decimal(0))
            li = totals["limits"].get(name, Decimal(0))
            out.w(1, f"{name}\t{format_quantity(r, binary=binary)} ({_fraction(r, total)}%)\t"
                     f"{format_quantity(li, binary=binary)} ({_fraction(li, total)}%)\n")
    _events(out, events)
    return out.text()


def describe_generic(obj: Obj, events: list[Obj] | None) -> str:
    """Fallback for kinds without a describer: metadata, then fields as nested lines."""
    out = _Out()
    meta = obj.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}\n")
    if meta.get("namespace"):
        out.w(0, f"Namespace:\t{meta['namespace']}\n")
    _labels_multiline(out, "Labels", meta.get("labels"))
    _annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"API Version:\t{obj.get('apiVersion', '')}\n")
    out.w(0, f"Kind:\t{obj.get('kind', '')}\n")

    def dump(value: Any, level: int) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                v = value[key]
                title = key[:1].upper() + key[1:]
                if isinstance(v, (dict, list)) and v:
                    out.w(level, f"{title}:\n")
                    dump(v, level + 1)
                else:
                    out.w(level, f"{title}:\t{v if v not in (None, {}, []) else ''}\n")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, (dict, list)):
                    dump(item, level)
                else:
                    out.w(level, f"{item}\n")

    rest = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    dump(rest, 0)
    _events(out, events)
    return out.text()


# -- fetching -----------------------------------------------------------------------------


def _events_for(client: Client, obj: Obj, *, namespaced: bool) -> list[Obj] | None:
    meta = obj.get("metadata") or {}
    parts = [f"involvedObject.name={meta.get('name', '')}"]
    if namespaced:
        parts.append(f"involvedObject.namespace={meta.get('namespace', '')}")
    else:
        parts.append(f"involvedObject.kind={obj.get('kind', '')}")
    if meta.get("uid") and namespaced:
        parts.append(f"involvedObject.uid={meta['uid']}")
    path = f"/api/v1/namespaces/{meta.get('namespace')}/events" if namespaced \
        else "/api/v1/events"
    try:
        result = client.get(path, fieldSelector=",".join(parts))
    except StatusError:
        return None
    items: list[Obj] = result.get("items") or []
    return items


def describe_object(client: Client, resource: Resource, obj: Obj) -> str:
    """Fetch what the describer for `resource` needs and render it."""
    describers: dict[str, Callable[[], str]] = {}
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")

    def pod() -> str:
        return describe_pod(obj, _events_for(client, obj, namespaced=True))

    def rc() -> str:
        selector = _format_labels((obj.get("spec") or {}).get("selector"))
        pods = client.get(f"/api/v1/namespaces/{ns}/pods",
                          labelSelector=selector).get("items") or []
        uid = meta.get("uid")
        owned = [p for p in pods if any(r.get("uid") == uid and r.get("controller")
                                        for r in (p.get("metadata") or {})
                                        .get("ownerReferences") or [])]
        return describe_rc(obj, owned, _events_for(client, obj, namespaced=True))

    def svc() -> str:
        try:
            endpoints = client.get(f"/api/v1/namespaces/{ns}/endpoints/{name}")
        except StatusError:
            endpoints = None
        return describe_service(obj, endpoints, _events_for(client, obj, namespaced=True))

    def node() -> str:
        pods: list[Obj] | None
        try:
            pods = client.get("/api/v1/pods", fieldSelector=(
                f"spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"
            )).get("items") or []
        except StatusError:
            pods = None
        lease: Obj | None = None
        lease_error = ""
        try:
            lease = client.get(
                f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
        except StatusError as exc:
            lease_error = exc.status.get("message") or exc.render()
        return describe_node(obj, pods, _events_for(client, obj, namespaced=False), lease,
                             lease_error)

    def endpoints() -> str:
        return describe_endpoints(obj, _events_for(client, obj, namespaced=True))

    def namespace() -> str:
        return describe_namespace(obj)

    describers = {"Pod": pod, "ReplicationController": rc, "Service": svc, "Node": node,
                  "Endpoints": endpoints, "Namespace": namespace}
    describer = describers.get(resource.kind)
    if describer is None:
        return describe_generic(obj, _events_for(client, obj, namespaced=resource.namespaced)
                                if resource.kind != "Event" else None)
    return describer()
