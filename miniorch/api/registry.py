"""The registry: Kubernetes' API semantics over the store, shared by every client.

    HTTP handlers (kubectl, Python client, CLI) ─┐
    in-process actors (controllers, nodes, proxy)┴─► Registry ─► Store ─► watches

Every write, from outside or inside the process, goes through here, so defaulting,
validation, name generation, ClusterIP/NodePort allocation, graceful pod deletion
and cascading deletion behave the same whoever asks. The registry is synchronous
(the store is), so each method is atomic with respect to the event loop.

Graceful deletion of a pod bound to a node sets `deletionTimestamp` and
`deletionGracePeriodSeconds`; the node stops the sandbox, then deletes the pod again
with `grace_period_seconds=0`, which removes it. Cascading deletion: `Background`
(the default for `kubectl delete`) and `Foreground` delete the owner now and let the
garbage collector remove dependents; `Orphan` strips the ownerReferences first.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

from miniorch.api import defaults, validation
from miniorch.api.errors import (
    ApiError,
    BadRequest,
    Cause,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from miniorch.api.kinds import (
    EVENTS,
    NAMESPACES,
    PODS,
    RESOURCES,
    SERVICES,
    SYSTEM_NAMESPACES,
    Resource,
)
from miniorch.api.selectors import FieldSelector, LabelSelector
from miniorch.api.store import Store, Watch
from miniorch.core.clock import Clock, SystemClock, rfc3339
from miniorch.core.objects import Obj, random_suffix
from miniorch.core.settings import NetworkSettings

Mutation = Callable[[Obj], Obj | None]


class Registry:
    def __init__(self, store: Store, *, clock: Clock | None = None,
                 network: NetworkSettings | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.network = network or NetworkSettings()
        self._event_index: dict[tuple[str, str, str, str, str], tuple[str, str]] | None = None

    # ---- bootstrap ---------------------------------------------------------------

    def ensure_system_objects(self) -> None:
        """Namespaces that always exist, and the `kubernetes` Service (10.96.0.1)."""
        for ns in SYSTEM_NAMESPACES:
            if self.store.try_get(NAMESPACES, "", ns) is None:
                self.create(NAMESPACES, {"metadata": {"name": ns}})
        if self.store.try_get(SERVICES, "default", "kubernetes") is None:
            first = ipaddress.ip_network(self.network.service_cidr).network_address + 1
            self.create(SERVICES, {
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": str(first),
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                    "targetPort": 6443}]}})

    # ---- reads -------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        return self.store.get(resource, namespace, name)

    def try_get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        return self.store.try_get(resource, namespace, name)

    def list(self, resource: Resource, namespace: str | None = None, *,
             label_selector: str | LabelSelector | None = None,
             field_selector: str | FieldSelector | None = None,
             shared: bool = False) -> tuple[list[Obj], int]:
        """`shared=True`: read-only objects shared with the store (see Store.list)."""
        labels = (label_selector if isinstance(label_selector, LabelSelector)
                  else LabelSelector.parse(label_selector))
        fields = (field_selector if isinstance(field_selector, FieldSelector)
                  else FieldSelector.parse(field_selector))
        return self.store.list(resource, namespace, labels=labels, fields=fields, shared=shared)

    def watch(self, resource: Resource, namespace: str | None = None, *,
              since: int | None = None, label_selector: str | LabelSelector | None = None,
              field_selector: str | FieldSelector | None = None) -> Watch:
        labels = (label_selector if isinstance(label_selector, LabelSelector)
                  else LabelSelector.parse(label_selector))
        fields = (field_selector if isinstance(field_selector, FieldSelector)
                  else FieldSelector.parse(field_selector))
        return self.store.watch(resource, namespace, since=since, labels=labels, fields=fields)

    # ---- writes ------------------------------------------------------------------

    def create(self, resource: Resource, obj: Obj, *, namespace: str | None = None,
               dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        self._check_kind(resource, obj)
        if resource.namespaced:
            body_ns = meta.get("namespace")
            target = namespace or body_ns or "default"
            if body_ns and namespace and body_ns != namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            meta["namespace"] = target
            if self.store.try_get(NAMESPACES, "", target) is None:
                raise NotFound.of("namespaces", target)
            ns_obj = self.store.get(NAMESPACES, "", target)
            if ns_obj.get("status", {}).get("phase") == "Terminating":
                raise ApiError(f'{resource.plural} "{meta.get("name", "")}" is forbidden: '
                               f"unable to create new content in namespace {target} because "
                               "it is being terminated")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(resource, meta)
        for server_owned in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                             "deletionGracePeriodSeconds"):
            meta.pop(server_owned, None)
        meta["generation"] = 1
        defaults.apply(resource, obj)
        validation.validate(resource, obj, None)
        if resource is SERVICES:
            self._allocate_service_addresses(obj, None)
        if dry_run:
            return obj
        return self.store.create(resource, obj)

    def update(self, resource: Resource, obj: Obj, *, namespace: str | None = None,
               subresource: str = "", dry_run: bool = False) -> Obj:
        """PUT: replace the object (or only its status, with `subresource="status"`)."""
        obj = copy.deepcopy(obj)
        self._check_kind(resource, obj)
        meta = obj.setdefault("metadata", {})
        if namespace and resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            meta["namespace"] = namespace
        old = self.store.get(resource, meta.get("namespace", ""), meta.get("name", ""))
        new = self._merge_update(resource, old, obj, subresource)
        if dry_run:
            return new
        return self.store.update(resource, new, check_rv=True)

    def mutate(self, resource: Resource, namespace: str, name: str, change: Mutation, *,
               subresource: str = "") -> Obj:
        """Read-modify-write for in-process actors: atomic, so never a Conflict."""
        old = self.store.get(resource, namespace, name)
        edited = copy.deepcopy(old)
        replaced = change(edited)
        new = self._merge_update(resource, old, replaced if replaced is not None else edited,
                                 subresource)
        return self.store.update(resource, new, check_rv=False)

    def update_status(self, resource: Resource, namespace: str, name: str,
                      status: Obj) -> Obj:
        def put(obj: Obj) -> None:
            obj["status"] = status
        return self.mutate(resource, namespace, name, put, subresource="status")

    def _merge_update(self, resource: Resource, old: Obj, new: Obj, subresource: str) -> Obj:
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        if subresource == "status":
            # The status subresource changes status only (and nothing else, ever).
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            merged["metadata"]["resourceVersion"] = meta.get(
                "resourceVersion", old_meta["resourceVersion"])
            return merged
        for server_owned in ("uid", "creationTimestamp", "deletionTimestamp",
                             "deletionGracePeriodSeconds", "generation"):
            if server_owned in old_meta:
                meta[server_owned] = old_meta[server_owned]
            else:
                meta.pop(server_owned, None)
        if not meta.get("resourceVersion"):
            meta.pop("resourceVersion", None)
        # Kinds with a status subresource keep their status on a main-resource PUT
        # (status changes go through /status); the others keep it only when omitted.
        has_status_subresource = resource.kind not in (
            "Node", "Namespace", "Event", "Lease", "Endpoints")
        if "status" in old and ("status" not in new or has_status_subresource):
            new["status"] = old["status"]
        defaults.apply(resource, new)
        if resource is SERVICES:
            self._allocate_service_addresses(new, old)
        validation.validate(resource, new, old)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    def delete(self, resource: Resource, namespace: str, name: str, *,
               grace_period_seconds: int | None = None,
               propagation_policy: str | None = None,
               preconditions: Obj | None = None, dry_run: bool = False) -> Obj:
        """Delete as kube-apiserver does; returns the object as deleted (or as now
        terminating, for a pod that a node must stop first)."""
        obj = self.store.get(resource, namespace, name)
        meta = obj["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise Conflict(f"Precondition failed: UID in precondition: {pre['uid']}, "
                           f"UID in object meta: {meta.get('uid')}",
                           kind=resource.plural, name=name)
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise Conflict.stale(resource.plural, name, resource.group)
        if resource is NAMESPACES and name in SYSTEM_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be '
                            "deleted", kind="namespaces", name=name)
        if dry_run:
            return obj
        if propagation_policy == "Orphan":
            self._orphan_dependents(obj)
        if resource is PODS:
            grace = self._pod_grace(obj, grace_period_seconds)
            if obj.get("spec", {}).get("nodeName") and grace > 0:
                if meta.get("deletionTimestamp"):
                    return obj  # already terminating: a second delete changes nothing
                now = self.clock.now()

                def mark(pod: Obj) -> None:
                    pod["metadata"]["deletionTimestamp"] = rfc3339(now)
                    pod["metadata"]["deletionGracePeriodSeconds"] = grace
                return self.store.mutate(PODS, namespace, name, mark)
        if resource is NAMESPACES:
            return self._delete_namespace(obj)
        return self.store.delete(resource, namespace, name)

    def _delete_namespace(self, ns_obj: Obj) -> Obj:
        name = ns_obj["metadata"]["name"]

        def terminating(obj: Obj) -> None:
            obj.setdefault("status", {})["phase"] = "Terminating"
        self.store.mutate(NAMESPACES, "", name, terminating)
        for resource in RESOURCES:
            if not resource.namespaced:
                continue
            items, _ = self.store.list(resource, name)
            for item in items:
                self.delete(resource, name, item["metadata"]["name"], grace_period_seconds=0
                            if resource is not PODS else None)
        return self.store.delete(NAMESPACES, "", name)

    def _orphan_dependents(self, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace", "")
        for resource in RESOURCES:
            if not resource.namespaced:
                continue
            items, _ = self.store.list(resource, namespace)
            for item in items:
                refs = item["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != uid]
                if len(kept) != len(refs):
                    def strip(obj: Obj, kept: list[Any] = kept) -> None:
                        if kept:
                            obj["metadata"]["ownerReferences"] = kept
                        else:
                            obj["metadata"].pop("ownerReferences", None)
                    self.store.mutate(resource, namespace, item["metadata"]["name"], strip)

    @staticmethod
    def _pod_grace(pod: Obj, requested: int | None) -> int:
        if requested is not None:
            if requested < 0:
                raise Invalid.of("Pod", pod["metadata"]["name"], [Cause(
                    "gracePeriodSeconds", "must be greater than or equal to 0")])
            return requested
        spec_grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
        return 30 if spec_grace is None else int(spec_grace)

    # ---- events ------------------------------------------------------------------

    def record_event(self, involved: Obj, *, type: str, reason: str, message: str,
                     component: str, host: str = "") -> Obj:
        """Record an Event about `involved`, folding repeats into `count` as
        client-go's event recorder does (same object, reason and message)."""
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        now = self.clock.now()
        ref = {"kind": involved.get("kind", ""), "namespace": meta.get("namespace", ""),
               "name": meta.get("name", ""), "uid": meta.get("uid", ""),
               "apiVersion": involved.get("apiVersion", "v1"),
               "resourceVersion": meta.get("resourceVersion", "")}
        if not ref["namespace"]:
            ref.pop("namespace")
        # Repeats fold into one Event (count, lastTimestamp). The index is built from the
        # store once, then kept: scanning every Event per call made bursts quadratic.
        if self._event_index is None:
            self._event_index = {}
            events, _ = self.store.list(EVENTS)
            for ev in events:
                self._event_index[self._event_key(ev)] = (
                    ev["metadata"]["namespace"], ev["metadata"]["name"])
        key = (namespace, str(ref["uid"]), reason, message, type)
        known = self._event_index.get(key)
        if known is not None and self.store.try_get(EVENTS, *known) is not None:
            def bump(ev: Obj) -> None:
                ev["count"] = int(ev.get("count", 1)) + 1
                ev["lastTimestamp"] = rfc3339(now)
            return self.store.mutate(EVENTS, known[0], known[1], bump)
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        event: Obj = {
            "metadata": {"name": f"{ref['name']}.{random_suffix(10)}", "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": type,
            "source": source, "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now),
            "count": 1, "reportingComponent": component, "reportingInstance": host,
        }
        # eventTime stays unset, as client-go's core/v1 recorder leaves it.
        created = self.store.create(EVENTS, event)
        self._event_index[key] = (namespace, created["metadata"]["name"])
        return created

    @staticmethod
    def _event_key(ev: Obj) -> tuple[str, str, str, str, str]:
        return (ev["metadata"].get("namespace", ""), str(ev.get("involvedObject", {}).get("uid")),
                str(ev.get("reason")), str(ev.get("message")), str(ev.get("type")))

    # ---- helpers -----------------------------------------------------------------

    def _check_kind(self, resource: Resource, obj: Obj) -> None:
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if kind and kind != resource.kind:
            raise BadRequest(f"the API version in the data ({api_version}) does not match the "
                             f"expected API version ({resource.api_version})"
                             if api_version and api_version != resource.api_version else
                             f'the kind in the data ("{kind}") does not match the expected '
                             f'kind ("{resource.kind}")')
        if api_version and api_version != resource.api_version:
            raise BadRequest(f"the API version in the data ({api_version}) does not match the "
                             f"expected API version ({resource.api_version})")

    def _generate_name(self, resource: Resource, meta: Obj) -> str:
        prefix = str(meta["generateName"])
        for _ in range(8):
            name = prefix + random_suffix()
            if self.store.try_get(resource, meta.get("namespace", ""), name) is None:
                return name
        raise ApiError(f"could not generate a unique name from {prefix!r}")

    def _allocate_service_addresses(self, svc: Obj, old: Obj | None) -> None:
        """ClusterIP from the service CIDR and NodePorts from their range, at create
        (kube-apiserver's allocators); kept across updates, released with the object."""
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec", {})
        if old_spec.get("clusterIP") and not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if spec.get("clusterIP") is None or spec.get("clusterIP") == "":
            spec["clusterIP"] = self._free_cluster_ip()
        elif spec["clusterIP"] != "None" and old is None:
            try:
                wanted = ipaddress.ip_address(spec["clusterIP"])
            except ValueError:
                raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                    "spec.clusterIPs[0]", f"Invalid value: \"{spec['clusterIP']}\": must be a "
                    "valid IP address")]) from None
            if wanted not in ipaddress.ip_network(self.network.service_cidr):
                raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                    "spec.clusterIPs[0]", f"Invalid value: \"{wanted}\": provided IP is not in "
                    f"the valid range. The range of valid IPs is {self.network.service_cidr}")])
            if str(wanted) in self._used_cluster_ips():
                raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                    "spec.clusterIPs", f"Invalid value: []string{{\"{wanted}\"}}: failed to "
                    f"allocate IP {wanted}: provided IP is already allocated")])
        if spec["clusterIP"] != "None":
            spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                         for p in old_spec.get("ports") or []}
            used = self._used_node_ports(exclude=svc)
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                    port["nodePort"] = previous or self._free_node_port(used)
                    used.add(port["nodePort"])
                elif old is None and port["nodePort"] in used:
                    raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                        "spec.ports[0].nodePort", f"Invalid value: {port['nodePort']}: "
                        "provided port is already allocated")])
        else:
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)

    def _used_cluster_ips(self) -> set[str]:
        items, _ = self.store.list(SERVICES)
        return {s.get("spec", {}).get("clusterIP", "") for s in items}

    def _free_cluster_ip(self) -> str:
        used = self._used_cluster_ips()
        network = ipaddress.ip_network(self.network.service_cidr)
        # .1 is the `kubernetes` service's by convention; .10 is DNS's.
        for host in network.hosts():
            if str(host).endswith(".0.1") or str(host) in used:
                continue
            if str(host) == str(network.network_address + 10):
                continue
            return str(host)
        raise ApiError("no ClusterIP left in " + self.network.service_cidr)

    def _used_node_ports(self, *, exclude: Obj) -> set[int]:
        items, _ = self.store.list(SERVICES)
        me = (exclude["metadata"].get("namespace"), exclude["metadata"].get("name"))
        return {int(p["nodePort"]) for s in items
                if (s["metadata"].get("namespace"), s["metadata"]["name"]) != me
                for p in s.get("spec", {}).get("ports") or [] if p.get("nodePort")}

    def _free_node_port(self, used: set[int]) -> int:
        low, high = self.network.node_port_range
        for port in range(low, high + 1):
            if port not in used:
                return port
        raise ApiError("no NodePort left")
