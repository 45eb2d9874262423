"""The registry: Kubernetes' API semantics over the store, shared by every client.

    HTTP handlers (kubectl, Python client, CLI) ─┐
    in-process actors (controllers, nodes, proxy)┴─► Registry ─► Store ─► watches
                                                        │
                              kinds: KindCatalog ───────┘ (the record behind each kind)

Every write, from outside or inside the process, goes through here, once, so
defaulting, validation, name generation, allocation (a kind's `prepare`), status
preservation, binding, scale, graceful deletion and cascading deletion behave the
same whoever asks. The registry is generic: what differs per kind is read from its
`Kind` record (api/kinds/). It is synchronous (the store is), so each method is
atomic with respect to the event loop.

Deleting a namespace marks it Terminating and deletes what it holds; it goes once
nothing is left (the namespace controller finishes what had to wait).

Deletion: an object with `metadata.finalizers` (or deleted with `Foreground`, which
adds `foregroundDeletion`) is only marked (`deletionTimestamp`) and goes when its last
finalizer is removed; no finalizer may be added meanwhile.

Writes: create = defaults → check → prepare → admission; update = status kept (for
kinds with a /status subresource) → defaults → prepare → check → admission,
`generation` bumped when the spec changes. Admission is Pod Security
(api/podsecurity.py): it may refuse a pod (403) or warn (api/warning.py).
`bind` sets a pod's node and `PodScheduled` in one store write.

Graceful deletion of a pod bound to a node sets `deletionTimestamp` and
`deletionGracePeriodSeconds`; the node stops the sandbox, then deletes the pod again
with `grace_period_seconds=0`, which removes it. Cascading deletion: `Background`
(the default for `kubectl delete`) deletes the owner now and lets the garbage
collector remove dependents; `Foreground` keeps the owner (`foregroundDeletion`)
until the collector has deleted them; `Orphan` strips the ownerReferences first.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from miniorch.api import authn
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
    SERVICE_ACCOUNTS,
    SERVICES,
    SYSTEM_NAMESPACES,
    Kind,
    KindCatalog,
    Resource,
)
from miniorch.api.kinds import pod as pod_kind
from miniorch.api.podsecurity import PodSecurity, PodSecurityConfig
from miniorch.api.selectors import FieldSelector, LabelSelector
from miniorch.api.store import Store, Watch
from miniorch.core.clock import Clock, SystemClock, rfc3339
from miniorch.core.metrics import ControlPlaneMetrics
from miniorch.core.objects import Obj, random_suffix
from miniorch.core.settings import NetworkSettings

Mutation = Callable[[Obj], Obj | None]

FOREGROUND_FINALIZER = "foregroundDeletion"
"""Held by an owner deleted with `propagationPolicy: Foreground` until the garbage
collector has deleted its blocking dependents."""


class Registry:
    def __init__(self, store: Store, *, clock: Clock | None = None,
                 network: NetworkSettings | None = None,
                 pod_security: PodSecurityConfig | None = None,
                 metrics: ControlPlaneMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or ControlPlaneMetrics()
        """The control plane's Prometheus figures (core/metrics.py): every actor gets
        the registry, so this is where each finds the one instance (GET /metrics)."""
        self.clock = clock or SystemClock()
        self.network = network or NetworkSettings()
        self.pod_security = PodSecurity(pod_security or PodSecurityConfig())
        """Pod Security Admission (api/podsecurity.py), after validation on create/update."""
        self.kinds = KindCatalog()
        """The kinds served: the built-in ones, plus custom resources added at run time."""
        self._event_index: dict[tuple[str, str, str, str, str], tuple[str, str]] | None = None
        # Kinds whose objects change the API (CRDs) replay their stored objects, so a
        # restarted cluster serves the custom resources it served before.
        for kind in list(self.kinds):
            if kind.after_write is not None:
                for obj in self.store.list(kind.resource)[0]:
                    kind.after_write(self, None, obj)

    # ---- bootstrap ---------------------------------------------------------------

    def ensure_system_objects(self) -> None:
        """Namespaces that always exist, their `default` ServiceAccounts (what the
        service-account controller would make at once: pods created before it runs
        must find theirs), and the `kubernetes` Service (10.96.0.1)."""
        for ns in SYSTEM_NAMESPACES:
            if self.store.try_get(NAMESPACES, "", ns) is None:
                self.create(NAMESPACES, {"metadata": {"name": ns}})
            if self.store.try_get(SERVICE_ACCOUNTS, ns, "default") is None:
                self.create(SERVICE_ACCOUNTS, {"metadata": {"name": "default",
                                                            "namespace": ns}})
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

    def list_raw(self, resource: Resource, namespace: str | None = None, *,
                 label_selector: LabelSelector | None = None,
                 field_selector: FieldSelector | None = None
                 ) -> tuple[builtins.list[str], int]:
        """`list` as the objects' stored JSON texts (for the HTTP LIST: no re-encoding)."""
        return self.store.list_raw(resource, namespace, labels=label_selector,
                                   fields=field_selector)

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
        kind = self.kinds.of(resource)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        self._check_kind(resource, obj)
        if kind.answer is not None:
            return kind.answer_request(self, obj)  # a review: answered, never stored
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
        kind.apply_defaults(obj)
        kind.check(obj, None)
        if kind.prepare is not None:
            kind.prepare(self, obj, None)
        self._admit(resource, obj, None)
        if dry_run:
            return obj
        return self._written(resource, None, self.store.create(resource, obj))

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
        self._admit(resource, new, old, subresource)
        if dry_run:
            return new
        return self._written(resource, old, self.store.update(resource, new, check_rv=True))

    def mutate(self, resource: Resource, namespace: str, name: str, change: Mutation, *,
               subresource: str = "") -> Obj:
        """Read-modify-write for in-process actors: atomic, so never a Conflict."""
        old = self.store.get(resource, namespace, name)
        edited = copy.deepcopy(old)
        replaced = change(edited)
        new = self._merge_update(resource, old, replaced if replaced is not None else edited,
                                 subresource)
        return self._written(resource, old, self.store.update(resource, new, check_rv=False))

    def _written(self, resource: Resource, old: Obj | None, new: Obj) -> Obj:
        """After a stored write: the kind's after-write hook (a CRD serving its kinds);
        and an object whose deletion waited for its finalizers goes once the last one
        is removed (and no grace period is left to wait for)."""
        kind = self.kinds.of(resource)
        if kind.after_write is not None:
            kind.after_write(self, old, new)
        meta = new["metadata"]
        if (meta.get("deletionTimestamp") and not meta.get("finalizers")
                and old is not None and old["metadata"].get("finalizers")
                and not meta.get("deletionGracePeriodSeconds")):
            with contextlib.suppress(NotFound):
                deleted = self.store.delete(resource, meta.get("namespace", ""), meta["name"])
                if kind.after_write is not None:
                    kind.after_write(self, deleted, None)
        return new

    def update_status(self, resource: Resource, namespace: str, name: str,
                      status: Obj) -> Obj:
        def put(obj: Obj) -> None:
            obj["status"] = status
        return self.mutate(resource, namespace, name, put, subresource="status")

    def _merge_update(self, resource: Resource, old: Obj, new: Obj, subresource: str) -> Obj:
        kind = self.kinds.of(resource)
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
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise Invalid.of(resource.kind, str(old_meta.get("name", "")), [Cause(
                    "metadata.finalizers", f"Forbidden: no new finalizers can be added if the "
                    f"object is being deleted, found new finalizers {sorted(added)}",
                    "FieldValueForbidden")], group=resource.group)
        # Kinds with a status subresource keep their status on a main-resource write
        # (status changes go through /status); the others keep it only when omitted.
        if "status" in old and ("status" not in new or kind.status_subresource):
            new["status"] = old["status"]
        kind.apply_defaults(new)
        if kind.prepare is not None:
            kind.prepare(self, new, old)
        kind.check(new, old)
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
        kind = self.kinds.of(resource)
        if name in kind.undeletable:
            raise Forbidden(f'{resource.plural} "{name}" is forbidden: this {resource.singular} '
                            "may not be deleted", kind=resource.plural, name=name)
        if dry_run:
            return obj
        if propagation_policy == "Orphan":
            self._orphan_dependents(obj)
        if kind.graceful_delete is not None:
            grace = kind.graceful_delete(obj, grace_period_seconds)
            if grace > 0:
                if meta.get("deletionTimestamp"):
                    return obj  # already terminating: a second delete changes nothing
                now = self.clock.now()

                def mark(terminating: Obj) -> None:
                    terminating["metadata"]["deletionTimestamp"] = rfc3339(now)
                    terminating["metadata"]["deletionGracePeriodSeconds"] = grace
                return self.store.mutate(resource, namespace, name, mark)
        if kind.deletes_contents:
            return self._delete_with_contents(kind, obj)
        finalizers = list(meta.get("finalizers") or [])
        if propagation_policy == "Foreground" and FOREGROUND_FINALIZER not in finalizers:
            finalizers.append(FOREGROUND_FINALIZER)
        if finalizers:
            return self._await_finalizers(resource, obj, finalizers)
        deleted = self.store.delete(resource, namespace, name)
        if kind.after_write is not None:
            kind.after_write(self, deleted, None)
        return deleted

    def _await_finalizers(self, resource: Resource, obj: Obj, finalizers: Sequence[str]
                          ) -> Obj:
        """Deletion with finalizers: the object stays, marked with `deletionTimestamp`,
        until whoever owns each finalizer removes it (the garbage collector owns
        `foregroundDeletion`; operators own theirs)."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and meta.get("finalizers") == [*finalizers] \
                and not meta.get("deletionGracePeriodSeconds"):
            return obj  # already waiting: a second delete changes nothing
        now = rfc3339(self.clock.now())

        def mark(deleting: Obj) -> None:
            deleting["metadata"].setdefault("deletionTimestamp", now)
            deleting["metadata"]["deletionGracePeriodSeconds"] = 0
            deleting["metadata"]["finalizers"] = [*finalizers]
        return self.store.mutate(resource, meta.get("namespace", ""), meta["name"], mark)

    def _delete_with_contents(self, kind: Kind, scope: Obj) -> Obj:
        """A namespace: Terminating, everything inside deleted (pods gracefully, objects
        with finalizers once those are removed), and the namespace itself once it is
        empty: at once if nothing had to wait, else when the namespace controller,
        which calls this again while it is Terminating, finds it empty."""
        name = scope["metadata"]["name"]
        if scope.get("status", {}).get("phase") != "Terminating":
            now = rfc3339(self.clock.now())

            def terminating(obj: Obj) -> None:
                obj.setdefault("status", {})["phase"] = "Terminating"
                obj["metadata"].setdefault("deletionTimestamp", now)
            scope = self.store.mutate(kind.resource, "", name, terminating)
        remaining = 0
        seen: set[str] = set()
        for inner in self.kinds:
            # A custom resource served in two versions is one set of stored objects.
            if not inner.resource.namespaced or inner.resource.key in seen:
                continue
            seen.add(inner.resource.key)
            items, _ = self.store.list(inner.resource, name)
            for item in items:
                item_name = item["metadata"]["name"]
                with contextlib.suppress(NotFound):
                    self.delete(inner.resource, name, item_name,
                                grace_period_seconds=None if inner.graceful_delete else 0)
                if self.store.try_get(inner.resource, name, item_name) is not None:
                    remaining += 1
        if remaining:
            return scope
        return self.store.delete(kind.resource, "", name)

    def _orphan_dependents(self, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace", "")
        for resource in self.kinds.resources:
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


    # ---- subresources --------------------------------------------------------------

    def bind(self, namespace: str, name: str, node: str, *, uid: str | None = None,
             dry_run: bool = False) -> Obj:
        """pods/binding: `spec.nodeName` and `PodScheduled` in one write (BindingREST)."""
        if not node:
            raise Invalid.of("Binding", name, [Cause("target.name", "Required value")])
        now = rfc3339(self.clock.now())
        if dry_run:
            pod_kind.bind(self.store.get(PODS, namespace, name), node=node, uid=uid, now=now)
            return self.store.get(PODS, namespace, name)

        def assign(pod: Obj) -> None:
            pod_kind.bind(pod, node=node, uid=uid, now=now)
        return self.store.mutate(PODS, namespace, name, assign)

    def get_scale(self, resource: Resource, namespace: str, name: str) -> Obj:
        """`<plural>/scale`: the autoscaling/v1 Scale view of a scalable object."""
        return self._scale_of(self.kinds.of(resource), self.get(resource, namespace, name))

    def update_scale(self, resource: Resource, namespace: str, name: str, scale: Obj, *,
                     dry_run: bool = False) -> Obj:
        """Write a Scale's `spec.replicas` into its object (409 on a stale
        resourceVersion); answers the new Scale."""
        kind = self.kinds.of(resource)
        spec = kind.scale
        if spec is None:
            raise NotFound(f"the server could not find the requested resource "
                           f"({resource.plural}/scale)")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise Invalid.of("Scale", name, [Cause(
                "spec.replicas",
                f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
                group="autoscaling")
        obj = self.get(resource, namespace, name)
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv and str(sent_rv) != obj["metadata"].get("resourceVersion"):
            raise Conflict.stale(resource.plural, name, resource.group)
        _set_path(obj, spec.spec_replicas, replicas)
        updated = self.update(resource, obj, namespace=namespace, dry_run=dry_run)
        return self._scale_of(kind, updated)

    @staticmethod
    def _scale_of(kind: Kind, obj: Obj) -> Obj:
        spec = kind.scale
        if spec is None:
            raise NotFound(f"the server could not find the requested resource "
                           f"({kind.resource.plural}/scale)")
        meta = obj["metadata"]
        replicas = _get_path(obj, spec.spec_replicas)
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": int(spec.default_replicas if replicas is None else replicas)},
            "status": {"replicas": int(_get_path(obj, spec.status_replicas) or 0),
                       "selector": spec.selector(obj)},
        }

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

    def _admit(self, resource: Resource, obj: Obj, old: Obj | None,
               subresource: str = "") -> None:
        """Validating admission (Pod Security) of a client's create or update. In-process
        read-modify-writes (`mutate`: status, bookkeeping) skip it, as they cannot
        change what PodSecurity looks at in a way a client asked for."""
        self.pod_security.validate(self.store, resource, obj, old, subresource=subresource,
                                   username=authn.CALLER.get().username)

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


def _get_path(obj: Obj, path: tuple[str, ...]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _set_path(obj: Obj, path: tuple[str, ...], value: Any) -> None:
    target = obj
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
