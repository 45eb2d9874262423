"""Kubernetes protobuf request bodies as the JSON objects the JSON API would have received.

kubectl's typed commands (`create deployment|service|configmap|secret|job|...`) post
`application/vnd.kubernetes.protobuf` with no JSON fallback:

    body = b"k8s\\x00" + runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding,
                                          contentType}
    raw  = the typed message (k8s.io.api.apps.v1.Deployment, ...)

    decode(body) ──magic──► Unknown ──typeMeta──► message class ──ParseFromString──►
        message ──_to_json (the schema's JSON rules)──► Obj (what `-o json` would print)

The schema is data, `protobuf_schema.txt` beside this module (our own compact listing
of the Kubernetes messages' field names, numbers and types). `_schema()` turns it into
one `FileDescriptorProto` per proto package in a private `DescriptorPool` the first time
a protobuf body arrives; the official `protobuf` runtime does all wire decoding. This
module is imported lazily (by `server_common.decode_object`), so nothing here costs the
CLI or the server anything until a protobuf body is seen.

JSON rules (Go's encoding/json over the Kubernetes Go types, which is what the JSON API
receives from the same client):
- field names are the schema's JSON names; `..name` fields (embedded Go structs) merge
  their JSON into the parent;
- proto2 presence decides: a field absent from the wire is absent from the JSON. Go's
  encoder writes every non-pointer scalar, so a plain scalar equal to zero is also left
  out (Go's `omitempty`) unless the schema marks it `*` (a pointer, or no `omitempty`);
- bytes → base64, maps → objects, repeated → lists, `IntOrString` → int or string,
  `Quantity` → its string, `Time`/`MicroTime` → RFC 3339 (zero → null, as Go prints a
  zero `metav1.Time`), `RawExtension`/`FieldsV1` → the embedded JSON.

Invariants: bodies are hostile. Anything but a well-formed envelope around a message
of a known kind is a 400 `BadRequest`, never an exception from the runtime: truncated
or garbage bytes, fields the schema does not know (refused rather than silently
dropped), invalid UTF-8, out-of-range times, embedded JSON that is not JSON or nests
deeper than `MAX_DEPTH`. A well-formed envelope naming a kind we have no schema for is
a 415, as for any body we cannot read. The size bound is the server's `read_body` limit.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.message import DecodeError, Message

from miniorch.api.errors import BadRequest, UnsupportedMediaType
from miniorch.core.objects import Obj

MAGIC = b"k8s\x00"
MAX_DEPTH = 64
"""Nesting bound for embedded JSON and messages (the schema's own nesting is ~15)."""

_ENVELOPE = "k8s.io.apimachinery.pkg.runtime.Unknown"

# API group → proto package stem under k8s.io.api (the groups the schema covers).
_GROUP_PACKAGES = {
    "": "core",
    "apps": "apps",
    "batch": "batch",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "rbac.authorization.k8s.io": "rbac",
    "coordination.k8s.io": "coordination",
    "authorization.k8s.io": "authorization",
    "authentication.k8s.io": "authentication",
}

_PROTO = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _PROTO.TYPE_STRING,
    "bool": _PROTO.TYPE_BOOL,
    "int32": _PROTO.TYPE_INT32,
    "int64": _PROTO.TYPE_INT64,
    "bytes": _PROTO.TYPE_BYTES,
}


class _Undecodable(Exception):
    """A body we understood the shape of but not the content (becomes a 400)."""


@dataclass(frozen=True)
class _Field:
    json_name: str
    type: str
    """A scalar name (`string`, `int64`, ...) or a message's full proto name."""
    repeated: bool = False
    map: bool = False
    keep_zero: bool = False
    inline: bool = False

    @property
    def scalar(self) -> bool:
        return self.type in _SCALARS


@dataclass(frozen=True)
class _Schema:
    classes: dict[str, type[Message]]
    fields: dict[str, dict[int, _Field]]
    """Message full name → field number → how its value becomes JSON."""
    kinds: frozenset[str]
    """Full names of the messages a body may carry (the schema's `kind` lines)."""


# ---- the schema: text → descriptors -----------------------------------------------------

def _entries(text: str) -> list[tuple[str, list[str]]]:
    """(head, tokens) per logical line: comments dropped, indented lines joined on."""
    entries: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            entries[-1][1].extend(line.split())
        else:
            head, *rest = line.split()
            entries.append((head, rest))
    return entries


def _parse_field(token: str, package: str, aliases: dict[str, str]) -> tuple[int, _Field]:
    """`jsonName=number[:type]` (see the schema file's header for the type syntax)."""
    name, _, spec = token.partition("=")
    number, _, type_ = spec.partition(":")
    type_ = type_ or "string"
    repeated, map_, keep_zero = (type_.startswith(p) for p in ("[]", "{", "*"))
    type_ = type_.removeprefix("[]").removeprefix("*").strip("{}")
    if type_ not in _SCALARS:
        alias, _, short = type_.rpartition(".")
        type_ = f"{aliases[alias] if alias else package}.{short}"
    return int(number), _Field(json_name=name.removeprefix(".."), type=type_,
                               repeated=repeated, map=map_, keep_zero=keep_zero,
                               inline=name.startswith(".."))


def _field_proto(message: descriptor_pb2.DescriptorProto, full_name: str, number: int,
                 field: _Field) -> None:
    proto = message.field.add(name=field.json_name, number=number,
                              label=_PROTO.LABEL_OPTIONAL)
    if field.repeated or field.map:
        proto.label = _PROTO.LABEL_REPEATED
    if field.map:
        # A proto map is a repeated nested entry message {1: key, 2: value}.
        entry = message.nested_type.add(name=field.json_name[:1].upper()
                                        + field.json_name[1:] + "Entry")
        entry.options.map_entry = True
        entry_name = f"{full_name}.{entry.name}"
        _field_proto(entry, entry_name, 1, _Field(json_name="key", type="string"))
        _field_proto(entry, entry_name, 2, _Field(json_name="value", type=field.type))
        proto.type = _PROTO.TYPE_MESSAGE
        proto.type_name = "." + entry_name
    elif field.scalar:
        proto.type = _SCALARS[field.type]
    else:
        proto.type = _PROTO.TYPE_MESSAGE
        proto.type_name = "." + field.type


@functools.cache
def _schema() -> _Schema:
    text = resources.files("miniorch.api").joinpath("protobuf_schema.txt").read_text()
    pool = descriptor_pool.DescriptorPool()
    aliases: dict[str, str] = {}
    files: list[descriptor_pb2.FileDescriptorProto] = []
    fields: dict[str, dict[int, _Field]] = {}
    kinds: set[str] = set()
    package = ""
    for head, tokens in _entries(text):
        if head == "package":
            package, _as, alias = tokens
            aliases[alias] = package
            # Packages are listed in dependency order: each may use any earlier one.
            files.append(descriptor_pb2.FileDescriptorProto(
                name=f"miniorch/{alias}.proto", package=package, syntax="proto2",
                dependency=[f.name for f in files]))
            continue
        if head == "kind":
            head, *tokens = tokens
            kinds.add(f"{package}.{head}")
        message = files[-1].message_type.add(name=head)
        rules = fields[f"{package}.{head}"] = {}
        for token in tokens:
            number, field = _parse_field(token, package, aliases)
            rules[number] = field
            _field_proto(message, f"{package}.{head}", number, field)
    for file in files:
        pool.Add(file)
    classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
               for name in fields}
    return _Schema(classes=classes, fields=fields, kinds=frozenset(kinds))


# ---- decoding ---------------------------------------------------------------------------

def decode(body: bytes) -> Obj:
    """A protobuf request body as the JSON object it stands for (see the module doc)."""
    if not body.startswith(MAGIC):
        raise BadRequest("provided data does not appear to be a protobuf message, "
                         f"expected prefix {list(MAGIC)}")
    schema = _schema()
    try:
        envelope = _parse(schema, _ENVELOPE, body[len(MAGIC):])
        _reject_unknown_fields(envelope)
        api_version = _text(envelope.typeMeta.apiVersion)  # type: ignore[attr-defined]
        kind = _text(envelope.typeMeta.kind)  # type: ignore[attr-defined]
        encoding = _text(envelope.contentEncoding)  # type: ignore[attr-defined]
        raw: bytes = envelope.raw  # type: ignore[attr-defined]
    except _Undecodable as exc:
        raise BadRequest(f"the object provided is unrecognized: {exc}") from None
    name = _message_name(api_version, kind)
    if name not in schema.kinds:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json, application/yaml, application/vnd.kubernetes.protobuf "
            f"(no protobuf schema for {api_version or '<none>'}, Kind={kind or '<none>'})")
    try:
        if encoding:
            raise _Undecodable(f"unsupported content encoding {encoding!r}")
        converted = _to_json(schema, _parse(schema, name, raw), 0)
    except _Undecodable as exc:
        raise BadRequest(
            f"the object provided is unrecognized (must be of type {kind}): {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **converted}


def _message_name(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    stem = _GROUP_PACKAGES.get(group)
    return f"k8s.io.api.{stem}.{version}.{kind}" if stem else ""


def _parse(schema: _Schema, name: str, data: bytes) -> Message:
    message = schema.classes[name]()
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise _Undecodable(f"proto: {exc}") from None
    return message


def _reject_unknown_fields(message: Message) -> None:
    # Dropping a field the client set would store something other than what was sent.
    unknown = unknown_fields.UnknownFieldSet(message)
    if len(unknown):
        numbers = sorted({unknown[i].field_number for i in range(len(unknown))})
        raise _Undecodable(f"unknown field(s) {numbers} in {message.DESCRIPTOR.full_name}")


def _to_json(schema: _Schema, message: Message, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Undecodable(f"nesting deeper than {MAX_DEPTH}")
    name = message.DESCRIPTOR.full_name
    _reject_unknown_fields(message)
    special = _SPECIAL_FORMS.get(name)
    if special is not None:
        return special(message, depth)
    rules = schema.fields[name]
    out: Obj = {}
    for descriptor, value in message.ListFields():
        field = rules[descriptor.number]
        if field.map:
            out[field.json_name] = {_text(key): _value(schema, field, item, depth)
                                    for key, item in value.items()}
        elif field.repeated:
            out[field.json_name] = [_value(schema, field, item, depth) for item in value]
        elif field.scalar and not field.keep_zero and not value:
            continue  # Go wrote the plain zero value; its JSON `omitempty` leaves it out
        elif field.inline:
            out.update(_value(schema, field, value, depth))
        else:
            out[field.json_name] = _value(schema, field, value, depth)
    return out


def _value(schema: _Schema, field: _Field, value: Any, depth: int) -> Any:
    if isinstance(value, Message):
        return _to_json(schema, value, depth + 1)
    if field.type == "string":
        return _text(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _text(value: str | bytes) -> str:
    # The runtime hands a proto2 string that is not UTF-8 over as bytes; Go's decoder
    # would keep the bytes, but a JSON string cannot hold them.
    if isinstance(value, bytes):
        raise _Undecodable("string field is not valid UTF-8")
    return value


# ---- the types whose Go JSON is not their fields ----------------------------------------

def _time(seconds: int, nanos: int, fmt: str) -> str | None:
    if not seconds and not nanos:
        return None  # a zero metav1.Time marshals as null
    try:
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
    except (OverflowError, OSError, ValueError) as exc:
        raise _Undecodable(f"time out of range: {exc}") from None
    return moment.strftime(fmt)


def _embedded_json(raw: bytes, depth: int) -> Any:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _Undecodable(f"embedded object is not JSON: {exc}") from None
    _check_depth(value, depth)
    return value


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Undecodable(f"nesting deeper than {MAX_DEPTH}")
    children = (value.values() if isinstance(value, dict)
                else value if isinstance(value, list) else ())
    for child in children:
        _check_depth(child, depth + 1)


def _int_or_string(message: Any, _depth: int) -> int | str:
    if message.type == 1:  # intstr.String
        return _text(message.strVal)
    return int(message.intVal)


_SPECIAL_FORMS: dict[str, Callable[[Any, int], Any]] = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time":
        lambda m, _d: _time(m.seconds, m.nanos, "%Y-%m-%dT%H:%M:%SZ"),
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime":
        lambda m, _d: _time(m.seconds, m.nanos, "%Y-%m-%dT%H:%M:%S.%fZ"),
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": lambda m, d: _embedded_json(m.Raw, d),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": lambda m, d: _embedded_json(m.raw, d),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda m, _d: _text(m.string),
    "k8s.io.api.authorization.v1.ExtraValue": lambda m, _d: [_text(i) for i in m.items],
    "k8s.io.api.authentication.v1.ExtraValue": lambda m, _d: [_text(i) for i in m.items],
}
