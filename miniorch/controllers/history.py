"""Workload history: the ControllerRevisions a DaemonSet or StatefulSet keeps of its
pod template (kube-controller-manager's `pkg/controller/history`).

    controller.reconcile ─► ensure_revision(owner, template) ─► ControllerRevision
                              `<owner>-<hash>`: data = {"spec": {"template": …}},
                              revision = 1 + the newest one's
                         ─► pods labelled `controller-revision-hash`
                         ─► truncate(owner, keep, limit)  (revisionHistoryLimit)
    kubectl rollout history ds/x ─► lists the revisions (selector + controller ref)

Invariants:
- The hash is a pure function of the template: the same template always maps to the
  same revision name, so re-applying an old template reuses (and renumbers) its
  revision instead of creating a twin; pods keep matching it.
- A revision's `data` is never rewritten; only `revision` moves forward.
- Revisions still used by a pod are never truncated.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Iterable

from miniorch.api.errors import AlreadyExists, NotFound
from miniorch.api.kinds import CONTROLLER_REVISIONS
from miniorch.api.registry import Registry
from miniorch.api.resource import Resource
from miniorch.controllers.ownership import owner_reference
from miniorch.core.objects import Obj, controller_ref, uid_of

REVISION_LABEL = "controller-revision-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""apimachinery's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes."""


def template_hash(template: Obj) -> str:
    """A short, stable, label-safe digest of a pod template."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:4], "big")
    out = []
    for ch in str(number):
        out.append(_ALPHABET[int(ch) % len(_ALPHABET)])
    return "".join(out)[:10]




def revisions_of(registry: Registry, owner: Obj) -> list[Obj]:
    """The owner's revisions, oldest revision number first."""
    uid = uid_of(owner)
    items, _ = registry.list(CONTROLLER_REVISIONS, owner["metadata"].get("namespace", ""))
    mine = [r for r in items if (controller_ref(r) or {}).get("uid") == uid]
    return sorted(mine, key=lambda r: int(r.get("revision") or 0))


def template_of(revision: Obj) -> Obj:
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def ensure_revision(registry: Registry, owner: Obj, owner_resource: Resource, template: Obj,
                    existing: list[Obj]) -> Obj:
    """The revision of `template`, created (or renumbered newest) if need be."""
    ns = owner["metadata"].get("namespace", "")
    name = f"{owner['metadata']['name']}-{template_hash(template)}"
    newest = max((int(r.get("revision") or 0) for r in existing), default=0)
    for rev in existing:
        if rev["metadata"]["name"] != name:
            continue
        if int(rev.get("revision") or 0) == newest:
            return rev

        def renumber(obj: Obj) -> None:
            obj["revision"] = newest + 1
        return registry.mutate(CONTROLLER_REVISIONS, ns, name, renumber)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    body: Obj = {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "ownerReferences": [owner_reference(owner, owner_resource)]},
        "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
        "revision": newest + 1,
    }
    try:
        return registry.create(CONTROLLER_REVISIONS, body)
    except AlreadyExists:
        # Someone else's revision under our name (a hash collision, or an orphan of a
        # deleted namesake): reuse it when it holds our template, else fail loudly.
        found = registry.get(CONTROLLER_REVISIONS, ns, name)
        if template_of(found) != template:
            raise
        return found


def truncate(registry: Registry, revisions: Iterable[Obj], in_use: set[str],
             limit: int) -> None:
    """Delete the oldest revisions beyond `limit` that no pod and no status names."""
    spare = [r for r in revisions if r["metadata"]["name"] not in in_use]
    spare.sort(key=lambda r: int(r.get("revision") or 0))
    for rev in spare[:max(0, len(spare) - limit)]:
        with contextlib.suppress(NotFound):
            registry.delete(CONTROLLER_REVISIONS, rev["metadata"].get("namespace", ""),
                            rev["metadata"]["name"])
