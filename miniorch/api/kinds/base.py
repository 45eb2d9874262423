"""The `Kind` record: everything the API knows about one kind, declared in one place.

    api/kinds/<kind>.py ──declares──► Kind(resource, definitions, default, validate,
                                           prepare, columns, cells, subresources, flags)
                                            │
       Registry (generic writes) ◄──────────┤ defaulting, validation, preparation,
                                            │ status preservation, graceful deletion
       server (routes, discovery) ◄─────────┤ status / scale / connect subresources
       tables (server-side printing) ◄──────┤ columns and cells
       schema / patch / openapi ◄───────────┘ field types (definitions)

This is kube-apiserver's strategy + storage wiring (`pkg/registry/<group>/<kind>/`),
as data: a kind module builds one frozen `Kind`, and the generic machinery reads it.
Adding a kind is one module here (plus its controller, if it has one).

Three kinds of kinds use the optional hooks: virtual ones (`answer`: the access
reviews, computed and never stored), custom resources (`type_check`,
`unknown_fields`, `openapi_schema`, `strategic_merge=False`: their schema is a CRD's
OpenAPI v3 schema, not the built-in table) and the CRD itself (`after_write`: a
write changes which kinds the registry's catalog serves).

Invariants:
- Hooks are pure functions of their arguments (and, for `prepare`, of what the
  `WriteContext` lets them read): no module state, no I/O besides the store reads.
- `default` is idempotent and never raises; `validate` only collects causes (the
  generic pipeline in `Kind.check` raises them together, as one 422).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from miniorch.api import validation
from miniorch.api.errors import BadRequest, Cause
from miniorch.api.resource import Resource
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, default_cells
from miniorch.core.objects import Obj

if TYPE_CHECKING:
    from miniorch.api.kinds import KindCatalog
    from miniorch.api.store import Store
    from miniorch.core.clock import Clock
    from miniorch.core.settings import NetworkSettings


class WriteContext(Protocol):
    """What a kind's `prepare` hook may read: the store (other objects, e.g. to allocate
    a free ClusterIP), the clock and the cluster's address plan. The registry is one."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def network(self) -> NetworkSettings: ...


class CatalogContext(WriteContext, Protocol):
    """What an `after_write` hook may touch: the store and the served kinds (the
    registry is one). A CRD's hook adds and removes the kinds it defines."""

    @property
    def kinds(self) -> KindCatalog: ...


Defaulter = Callable[[Obj], None]
"""Fill defaults in place (idempotent, never raises on malformed input)."""
Validator = Callable[[Obj, "Obj | None"], list[Cause]]
"""The kind's semantic checks of `new` (an update of `old`, when given)."""
Preparer = Callable[[WriteContext, Obj, "Obj | None"], None]
"""After defaulting, before validation: server-set fields (allocation, derived data)."""
CellPrinter = Callable[[Obj, datetime], Row]
GracePeriod = Callable[[Obj, "int | None"], int]
"""Graceful deletion: the grace period to wait for (0 removes the object at once)."""
SchemaChecker = Callable[[Obj], "str | None"]
UnknownFields = Callable[[Obj, bool], list[str]]
"""Paths of unknown fields; the bool asks to prune them in place."""
Answerer = Callable[[WriteContext, Obj], Obj]
"""A virtual kind's create: the answer to the request object (a review), never stored."""
AfterWrite = Callable[[CatalogContext, "Obj | None", "Obj | None"], None]
"""Called by the registry after a successful write of (old, new); new is None for a
deletion, old is None for a creation (and for objects restored at start-up)."""


def _no_defaults(obj: Obj) -> None:
    return None


def _no_causes(obj: Obj, old: Obj | None) -> list[Cause]:
    return []


@dataclass(frozen=True, kw_only=True)
class Subresource:
    """A subresource the server serves with its own handler (log, exec, binding, …),
    as discovery lists it."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass(frozen=True, kw_only=True)
class ScaleSubresource:
    """`<plural>/scale` (autoscaling/v1 Scale) over the kind's replicas fields."""

    spec_replicas: tuple[str, ...] = ("spec", "replicas")
    status_replicas: tuple[str, ...] = ("status", "replicas")
    selector: Callable[[Obj], str]
    """The Scale's `status.selector` string, from the object."""
    default_replicas: int = 1


@dataclass(frozen=True, kw_only=True)
class Kind:
    resource: Resource
    definitions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The schema types this kind owns, in `schema.py`'s type-spec notation, keyed by
    full OpenAPI name; shared vocabulary (ObjectMeta, PodSpec, …) lives in schema.py."""
    root: str = ""
    """The OpenAPI name of the kind's own definition ("" derives it)."""
    default: Defaulter = _no_defaults
    validate: Validator = _no_causes
    name_rule: Callable[[str], list[str]] = validation.is_dns1123_subdomain
    prepare: Preparer | None = None
    columns: tuple[Obj, ...] = (NAME_COLUMN, AGE_COLUMN)
    cells: CellPrinter = default_cells
    status_subresource: bool = False
    """`/status` is served, and a main-resource write keeps the stored status."""
    create_on_update: bool = False
    """A PUT of a missing object creates it (AllowCreateOnUpdate)."""
    returns_deleted: bool = False
    """DELETE answers with the object (else with a Success Status)."""
    scale: ScaleSubresource | None = None
    connect: tuple[Subresource, ...] = ()
    graceful_delete: GracePeriod | None = None
    deletes_contents: bool = False
    """Deleting an object of this kind deletes every namespaced object inside it."""
    undeletable: frozenset[str] = frozenset()
    """Names that may never be deleted (the system namespaces)."""
    type_check: SchemaChecker | None = None
    """Replaces the schema-table type check (custom resources bring their own)."""
    unknown_fields: UnknownFields | None = None
    """Replaces the schema-table unknown-field walk (custom resources)."""
    answer: Answerer | None = None
    """Makes the kind virtual (SelfSubjectAccessReview, …): a create is answered by this
    hook after the type check and `validate`, with no metadata rules and no store write;
    the kind's Resource should serve only `create`."""
    strategic_merge: bool = True
    """Strategic merge patches are accepted (custom resources refuse them with 415)."""
    openapi_schema: Mapping[str, Any] | None = None
    """A ready-made OpenAPI v3 schema of the root (custom resources); else derived
    from `definitions`."""
    after_write: AfterWrite | None = None
    """A side effect of a write on the API itself (a CRD serves or stops serving its
    kinds), run synchronously so discovery is consistent with the write's answer."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Anything a kind's own module needs to carry (e.g. a CRD's parsed schema)."""

    @property
    def root_definition(self) -> str:
        if self.root:
            return self.root
        r = self.resource
        group = r.group.split(".", 1)[0] if r.group else "core"
        return f"io.k8s.api.{group}.{r.version}.{r.kind}"

    # ---- the generic write pipeline ----------------------------------------------------

    def apply_defaults(self, obj: Obj) -> None:
        """Fill defaults in place, as kube-apiserver's defaulters do."""
        obj.setdefault("apiVersion", self.resource.api_version)
        obj.setdefault("kind", self.resource.kind)
        if isinstance(obj.get("metadata"), dict):
            self.default(obj)

    def check(self, obj: Obj, old: Obj | None) -> None:
        """Raise `BadRequest` (undecodable) or `Invalid` (every cause at once) unless
        `obj` — an update of `old`, if given — is a valid object of this kind."""
        r = self.resource
        problem = (self.type_check(obj) if self.type_check is not None
                   else validation.type_error(self.root_definition, obj))
        if problem:
            raise BadRequest(f'{r.kind} in version "{r.version}" cannot be handled as a '
                             f"{r.kind}: {problem}")
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        causes = validation.validate_object_meta(meta, namespaced=r.namespaced,
                                                 name_rule=self.name_rule)
        if old is not None:
            causes = validation.validate_object_meta_update(meta, old.get("metadata") or {}
                                                            ) + causes
        causes.extend(self.validate(obj, old))
        validation.raise_invalid(r, str(meta.get("name") or ""), causes)

    def answer_request(self, ctx: WriteContext, obj: Obj) -> Obj:
        """A virtual kind's create: check `obj`'s types and the kind's rules, then answer."""
        assert self.answer is not None, f"{self.resource.kind} is not a virtual kind"
        r = self.resource
        self.apply_defaults(obj)
        problem = (self.type_check(obj) if self.type_check is not None
                   else validation.type_error(self.root_definition, obj))
        if problem:
            raise BadRequest(f'{r.kind} in version "{r.version}" cannot be handled as a '
                             f"{r.kind}: {problem}")
        validation.raise_invalid(r, "", self.validate(obj, None))
        return self.answer(ctx, obj)

    def find_unknown_fields(self, obj: Obj, *, prune: bool = False) -> list[str]:
        """Paths of fields the kind's schema does not know (`?fieldValidation`)."""
        if self.unknown_fields is not None:
            return self.unknown_fields(obj, prune)
        return validation.unknown_fields_of(self.root_definition, obj, prune=prune)


__all__ = ["CatalogContext", "Kind", "ScaleSubresource", "Subresource", "WriteContext"]
