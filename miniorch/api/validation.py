"""Validation: refuse what Kubernetes refuses, naming the field as Kubernetes does.

    Registry.create/update ─► defaults.apply ─► validate(resource, obj, old)
    server (?fieldValidation=Strict) ─► check_unknown_fields / unknown_fields
    server (?fieldValidation=Ignore|Warn) ─► prune_unknown_fields

`validate` runs in two passes, like kube-apiserver:
1. decoding: every value must have its schema type (`schema.py`); a mismatch is a
   400 BadRequest worded like Go's JSON decoder
   (`Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal ...`);
2. semantic validation, a port of `pkg/apis/core/validation` for the fields miniorch
   serves; every problem is collected, then raised together as one 422 `Invalid`
   whose causes carry Kubernetes' field paths, reasons and wording
   (`metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain ...`).

Updates additionally check immutability as Kubernetes does: `metadata.name`,
`namespace`, `uid` and `creationTimestamp` ("field is immutable"), a pod's spec
except images, `activeDeadlineSeconds` and added tolerations (Forbidden), a Service's
primary ClusterIP ("may not change once set"). One deliberate extension: a pod's
`spec.nodeName` may go from empty to a node, since miniorch binds pods with an update
rather than with a `binding` subresource.

Everything here is pure: no I/O, no state; the caller decides what to do with errors.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any

from miniorch.api import schema
from miniorch.api.errors import BadRequest, Cause, Invalid
from miniorch.api.kinds import Resource
from miniorch.core.objects import Obj
from miniorch.core.quantity import QuantityError, parse_quantity

# ---- field errors (apimachinery's field.Error, rendered by ErrorBody) -------------------

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
FORBIDDEN = "FieldValueForbidden"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
NOT_FOUND = "FieldValueNotFound"
TOO_LONG = "FieldValueTooLong"


def go_value(value: Any) -> str:
    """A value as Go's `%q`/`%v`/`%#v` prints it in a field error."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        body = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + body + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return json.dumps(value, sort_keys=True)


def required(field: str, detail: str = "") -> Cause:
    return Cause(field, "Required value" + (f": {detail}" if detail else ""), REQUIRED)


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(field, f"Invalid value: {go_value(value)}: {detail}", INVALID)


def forbidden(field: str, detail: str) -> Cause:
    return Cause(field, f"Forbidden: {detail}", FORBIDDEN)


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    choices = ", ".join(json.dumps(s) for s in supported)
    return Cause(field, f"Unsupported value: {go_value(value)}: supported values: {choices}",
                 NOT_SUPPORTED)


def duplicate(field: str, value: Any) -> Cause:
    return Cause(field, f"Duplicate value: {go_value(value)}", DUPLICATE)


def not_found(field: str, value: Any) -> Cause:
    return Cause(field, f"Not found: {go_value(value)}", NOT_FOUND)


def raise_invalid(resource: Resource, name: str, causes: list[Cause]) -> None:
    """kube-apiserver's NewInvalid: `Pod "x" is invalid: <cause>` or `[<c1>, <c2>]`."""
    if not causes:
        return
    qualified = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    unique: list[Cause] = []
    for cause in causes:
        if cause not in unique:
            unique.append(cause)
    summary = ", ".join(f"{c.field}: {c.message}" for c in unique)
    if len(unique) > 1:
        summary = f"[{summary}]"
    raise Invalid(f'{qualified} "{name}" is invalid: {summary}', kind=resource.kind, name=name,
                  causes=causes, group=resource.group)


# ---- name and label rules (apimachinery/pkg/util/validation) ------------------------------

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    # apimachinery joins examples with " or " after a "', " — hence the double space.
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def _full(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _full(_DNS1123_LABEL, value):
        errs.append(_regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character",
            _DNS1123_LABEL, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len(253))
    if not _full(_DNS1123_SUBDOMAIN, value):
        errs.append(_regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
            _DNS1123_SUBDOMAIN, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _full(_DNS1035_LABEL, value):
        errs.append(_regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character",
            _DNS1035_LABEL, "my-name", "abc-123"))
    return errs


_QUALIFIED_MESSAGE = ("must consist of alphanumeric characters, '-', '_' or '.', and must "
                      "start and end with an alphanumeric character")


def is_qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [("a qualified name " + _regex_error(_QUALIFIED_MESSAGE, _QUALIFIED_NAME,
                                                    "MyName", "my.name", "123-abc")
                 + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not _full(_QUALIFIED_NAME, name):
        errs.append("name part " + _regex_error(_QUALIFIED_MESSAGE, _QUALIFIED_NAME,
                                                "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _full(_LABEL_VALUE, value):
        errs.append(_regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character",
            _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errs


def is_valid_port_num(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def is_valid_port_name(port: str) -> list[str]:
    errs = []
    if len(port) > 15:
        errs.append(_max_len(15))
    if not _full("[-a-z0-9]+", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _mask_trailing_dash(name: str) -> str:
    """generateName prefixes may end in '-': validate them as if it were a letter."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def _name_rule(resource: Resource) -> Any:
    if resource.kind == "Service":
        return is_dns1035_label
    if resource.kind == "Namespace":
        return is_dns1123_label
    return is_dns1123_subdomain


def validate_labels(labels: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(labels, dict):
        return causes
    for key, value in labels.items():
        causes.extend(invalid(path, key, m) for m in is_qualified_name(str(key)))
        if isinstance(value, str):
            causes.extend(invalid(path, value, m) for m in is_valid_label_value(value))
    return causes


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(annotations, dict):
        return causes
    total = 0
    for key, value in annotations.items():
        causes.extend(invalid(path, key, m) for m in is_qualified_name(str(key).lower()))
        total += len(key) + len(value if isinstance(value, str) else "")
    if total > 256 * 1024:
        causes.append(Cause(path, f"Too long: may not be more than {256 * 1024} bytes",
                            TOO_LONG))
    return causes


def validate_object_meta(meta: Obj, *, namespaced: bool, name_rule: Any,
                         path: str = "metadata") -> list[Cause]:
    causes: list[Cause] = []
    generate = meta.get("generateName") or ""
    if generate:
        causes.extend(invalid(f"{path}.generateName", generate, m)
                      for m in name_rule(_mask_trailing_dash(generate)))
    name = meta.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name", "name or generateName is required"))
    else:
        causes.extend(invalid(f"{path}.name", name, m) for m in name_rule(name))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(required(f"{path}.namespace"))
        else:
            causes.extend(invalid(f"{path}.namespace", namespace, m)
                          for m in is_dns1123_label(namespace))
    elif namespace:
        causes.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(invalid(f"{path}.generation", generation,
                              "must be greater than or equal to 0"))
    causes.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    causes.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    refs = meta.get("ownerReferences") or []
    controllers = 0
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            continue
        for key, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"),
                          ("uid", "uid")):
            if not ref.get(key):
                causes.append(invalid(f"{path}.ownerReferences.{key}", "",
                                      f"{what} must not be empty"))
        controllers += 1 if ref.get("controller") else 0
    if controllers > 1:
        causes.append(invalid(f"{path}.ownerReferences", refs,
                              "Only one reference can have Controller set to true"))
    return causes


def validate_object_meta_update(new: Obj, old: Obj, path: str = "metadata") -> list[Cause]:
    causes = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if (new.get(key) or "") != (old.get(key) or ""):
            causes.append(invalid(f"{path}.{key}", new.get(key) or "", "field is immutable"))
    return causes


# ---- decoding: types and unknown fields ---------------------------------------------------

_GO_SCALARS = {"string": "string", "int32": "int32", "int64": "int64", "boolean": "bool",
               "number": "float64", "int-or-string": "intstr.IntOrString",
               "quantity": "resource.Quantity", "time": "v1.Time", "microtime": "v1.MicroTime"}


def _go_type(ftype: schema.FieldType) -> str:
    if ftype.kind == "scalar":
        return _GO_SCALARS[ftype.scalar]
    if ftype.kind == "object":
        return "v1." + ftype.ref.rsplit(".", 1)[1]
    if ftype.kind == "list":
        assert ftype.item is not None
        return "[]" + _go_type(ftype.item)
    if ftype.kind == "map":
        assert ftype.item is not None
        return "map[string]" + _go_type(ftype.item)
    return "interface {}"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _scalar_ok(scalar: str, value: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    match scalar:
        case "string" | "time" | "microtime":
            return isinstance(value, str)
        case "int32" | "int64":
            return is_int
        case "boolean":
            return isinstance(value, bool)
        case "number":
            return is_int or isinstance(value, float)
        case "int-or-string":
            return is_int or isinstance(value, str)
        case "quantity":
            return isinstance(value, str | int | float) and not isinstance(value, bool)
    return True


def type_error(resource: Resource, obj: Obj) -> str | None:
    """The first value whose JSON type is not its schema type, worded as Go's decoder
    words it; None when every value decodes."""
    return _type_walk(obj, schema.root_definition(resource), "", "")


def _type_walk(value: Any, definition: str, path: str, struct: str) -> str | None:
    if not isinstance(value, dict):
        return None
    short = definition.rsplit(".", 1)[1]
    for key, item in value.items():
        ftype = schema.field_type(definition, key)
        if ftype is None or item is None:
            continue
        sub = f"{path}.{key}" if path else key
        problem = _type_check(item, ftype, sub, short)
        if problem:
            return problem
    return None


def _type_check(value: Any, ftype: schema.FieldType, path: str, struct: str) -> str | None:
    def mismatch() -> str:
        shown = _json_kind(value)
        if shown == "number" and ftype.kind == "scalar" and ftype.scalar in ("int32", "int64"):
            shown = f"number {value}"
        return (f"json: cannot unmarshal {shown} into Go struct field {struct}.{path} "
                f"of type {_go_type(ftype)}")

    if value is None or ftype.kind == "any":
        return None
    if ftype.kind == "scalar":
        if not _scalar_ok(ftype.scalar, value):
            return mismatch()
        if ftype.scalar == "quantity":
            try:
                parse_quantity(value)
            except QuantityError as exc:
                return str(exc)
        return None
    if ftype.kind == "object":
        if not isinstance(value, dict):
            return mismatch()
        return _type_walk(value, ftype.ref, path, struct)
    assert ftype.item is not None
    if ftype.kind == "list":
        if not isinstance(value, list):
            return mismatch()
        for element in value:
            problem = _type_check(element, ftype.item, path, struct)
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return mismatch()
    for element in value.values():
        problem = _type_check(element, ftype.item, path, struct)
        if problem:
            return problem
    return None


def unknown_fields(resource: Resource, obj: Obj) -> list[str]:
    """Paths of fields the schema does not know: `spec.containers[0].imagee`.

    What `?fieldValidation=Strict` refuses; free-form (`any`) values are not descended.
    """
    found: list[str] = []
    _unknown_walk(obj, schema.root_definition(resource), "", found, prune=False)
    return found


def prune_unknown_fields(resource: Resource, obj: Obj) -> list[str]:
    """Drop unknown fields in place (what kube-apiserver's decoder does by default) and
    return their paths, for `fieldValidation=Ignore|Warn`."""
    found: list[str] = []
    _unknown_walk(obj, schema.root_definition(resource), "", found, prune=True)
    return found


def check_unknown_fields(resource: Resource, obj: Obj) -> None:
    """Raise kube-apiserver's strict-decoding BadRequest if any field is unknown."""
    found = unknown_fields(resource, obj)
    if found:
        detail = ", ".join(f'unknown field "{p}"' for p in found)
        raise BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled '
                         f"as a {resource.kind}: strict decoding error: {detail}")


def _unknown_walk(value: Any, definition: str, path: str, found: list[str], *,
                  prune: bool) -> None:
    if not isinstance(value, dict):
        return
    for key in list(value):
        sub = f"{path}.{key}" if path else str(key)
        ftype = schema.field_type(definition, key)
        if ftype is None:
            found.append(sub)
            if prune:
                del value[key]
            continue
        _unknown_in(value[key], ftype, sub, found, prune=prune)


def _unknown_in(value: Any, ftype: schema.FieldType, path: str, found: list[str], *,
                prune: bool) -> None:
    if ftype.kind == "object":
        _unknown_walk(value, ftype.ref, path, found, prune=prune)
    elif ftype.kind == "list" and isinstance(value, list):
        assert ftype.item is not None
        for i, element in enumerate(value):
            _unknown_in(element, ftype.item, f"{path}[{i}]", found, prune=prune)
    elif ftype.kind == "map" and isinstance(value, dict):
        assert ftype.item is not None
        for key, element in value.items():
            _unknown_in(element, ftype.item, f"{path}[{key}]", found, prune=prune)


# ---- entry point ------------------------------------------------------------------------------


def validate(resource: Resource, obj: Obj, old: Obj | None) -> None:
    """Raise `BadRequest` (undecodable) or `Invalid` (with causes) if `obj` — an update
    of `old`, if given — is not a valid object of `resource`."""
    problem = type_error(resource, obj)
    if problem:
        raise BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled '
                         f"as a {resource.kind}: {problem}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    causes = validate_object_meta(meta, namespaced=resource.namespaced,
                                  name_rule=_name_rule(resource))
    if old is not None:
        causes = validate_object_meta_update(meta, old.get("metadata") or {}) + causes
    check = _CHECKS.get(resource.kind)
    if check is not None:
        causes.extend(check(obj, old))
    raise_invalid(resource, str(meta.get("name") or ""), causes)


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---- Pod ------------------------------------------------------------------------------------

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_INT32_MAX = 2**31 - 1


def validate_pod_spec(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    volumes: set[str] = set()
    for i, volume in enumerate(_l(spec.get("volumes"))):
        volume = _d(volume)
        vpath = f"{path}.volumes[{i}]"
        name = volume.get("name") or ""
        if not name:
            causes.append(required(f"{vpath}.name"))
        else:
            causes.extend(invalid(f"{vpath}.name", name, m) for m in is_dns1123_label(name))
            if name in volumes:
                causes.append(duplicate(f"{vpath}.name", name))
            volumes.add(name)
    containers = _l(spec.get("containers"))
    if not containers:
        causes.append(required(f"{path}.containers"))
    names: set[str] = set()
    for key in ("containers", "initContainers"):
        for i, container in enumerate(_l(spec.get(key))):
            container = _d(container)
            cpath = f"{path}.{key}[{i}]"
            causes.extend(_validate_container(container, cpath, volumes))
            name = container.get("name") or ""
            if name and name in names:
                causes.append(duplicate(f"{cpath}.name", name))
            names.add(name)
            if key == "containers" and container.get("restartPolicy") is not None:
                causes.append(forbidden(f"{cpath}.restartPolicy",
                                        "may not be set for non-init containers"))
    restart = spec.get("restartPolicy") or ""
    if not restart:
        causes.append(required(f"{path}.restartPolicy"))
    elif restart not in _RESTART_POLICIES:
        causes.append(not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    dns = spec.get("dnsPolicy") or ""
    if not dns:
        causes.append(required(f"{path}.dnsPolicy"))
    elif dns not in _DNS_POLICIES:
        causes.append(not_supported(f"{path}.dnsPolicy", dns, _DNS_POLICIES))
    causes.extend(validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    for i, secret in enumerate(_l(spec.get("imagePullSecrets"))):
        if not _d(secret).get("name"):
            causes.append(required(f"{path}.imagePullSecrets[{i}].name"))
    node_name = spec.get("nodeName") or ""
    if node_name:
        causes.extend(invalid(f"{path}.nodeName", node_name, m)
                      for m in is_dns1123_subdomain(node_name))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= _INT32_MAX:
        causes.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                              f"must be between 1 and {_INT32_MAX}, inclusive"))
    hostname = spec.get("hostname") or ""
    if hostname:
        causes.extend(invalid(f"{path}.hostname", hostname, m)
                      for m in is_dns1123_label(hostname))
    for i, toleration in enumerate(_l(spec.get("tolerations"))):
        causes.extend(_validate_toleration(_d(toleration), f"{path}.tolerations[{i}]"))
    return causes


def _validate_container(container: Obj, path: str, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    name = container.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes.extend(invalid(f"{path}.name", name, m) for m in is_dns1123_label(name))
    if not container.get("image"):
        causes.append(required(f"{path}.image"))
    policy = container.get("terminationMessagePolicy") or ""
    if not policy:
        causes.append(required(f"{path}.terminationMessagePolicy"))
    elif policy not in ("File", "FallbackToLogsOnError"):
        causes.append(not_supported(f"{path}.terminationMessagePolicy", policy,
                                    ("File", "FallbackToLogsOnError")))
    port_names: set[str] = set()
    for i, port in enumerate(_l(container.get("ports"))):
        port = _d(port)
        ppath = f"{path}.ports[{i}]"
        pname = port.get("name") or ""
        if pname:
            msgs = is_valid_port_name(pname)
            if msgs:
                causes.extend(invalid(f"{ppath}.name", pname, m) for m in msgs)
            elif pname in port_names:
                causes.append(duplicate(f"{ppath}.name", pname))
            port_names.add(pname)
        cport = port.get("containerPort")
        if not cport:
            causes.append(required(f"{ppath}.containerPort"))
        else:
            causes.extend(invalid(f"{ppath}.containerPort", cport, m)
                          for m in is_valid_port_num(cport))
        if port.get("hostPort"):
            causes.extend(invalid(f"{ppath}.hostPort", port["hostPort"], m)
                          for m in is_valid_port_num(port["hostPort"]))
        protocol = port.get("protocol") or ""
        if not protocol:
            causes.append(required(f"{ppath}.protocol"))
        elif protocol not in _PROTOCOLS:
            causes.append(not_supported(f"{ppath}.protocol", protocol, _PROTOCOLS))
    for i, env in enumerate(_l(container.get("env"))):
        env = _d(env)
        ename = env.get("name") or ""
        if not ename:
            causes.append(required(f"{path}.env[{i}].name"))
        elif "=" in ename or not all(" " <= ch <= "~" for ch in ename):
            causes.append(invalid(f"{path}.env[{i}].name", ename,
                                  "a valid environment variable name must consist only of "
                                  "printable ASCII characters other than '='"))
    mount_paths: set[str] = set()
    for i, mount in enumerate(_l(container.get("volumeMounts"))):
        mount = _d(mount)
        mpath = f"{path}.volumeMounts[{i}]"
        mname = mount.get("name") or ""
        if not mname:
            causes.append(required(f"{mpath}.name"))
        elif mname not in volumes:
            causes.append(not_found(f"{mpath}.name", mname))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            causes.append(required(f"{mpath}.mountPath"))
        elif mount_path in mount_paths:
            causes.append(invalid(f"{mpath}.mountPath", mount_path, "must be unique"))
        mount_paths.add(mount_path)
    pull = container.get("imagePullPolicy") or ""
    if not pull:
        causes.append(required(f"{path}.imagePullPolicy"))
    elif pull not in _PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", pull, _PULL_POLICIES))
    causes.extend(_validate_resources(_d(container.get("resources")), f"{path}.resources"))
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_key)
        if isinstance(probe, dict):
            causes.extend(_validate_probe(probe, f"{path}.{probe_key}", probe_key))
    return causes


def _resource_name_ok(name: str) -> bool:
    return (name in _STANDARD_RESOURCES or name.startswith("hugepages-")
            or ("/" in name and not is_qualified_name(name)
                and not name.startswith("kubernetes.io/")))


def _validate_resources(resources: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    limits = _d(resources.get("limits"))
    requests = _d(resources.get("requests"))
    for section, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            fpath = f"{path}.{section}[{name}]"
            if not _resource_name_ok(name):
                causes.append(invalid(fpath, name, "must be a standard resource for containers"))
            try:
                amount = parse_quantity(value)
            except QuantityError:
                continue
            if amount < 0:
                causes.append(invalid(fpath, str(value), "must be greater than or equal to 0"))
            if section == "requests" and name in limits:
                try:
                    limit = parse_quantity(limits[name])
                except QuantityError:
                    continue
                overcommit = name in _STANDARD_RESOURCES
                if amount != limit and not overcommit:
                    causes.append(invalid(f"{path}.requests", str(value),
                                          f"must be equal to {name} limit of {limits[name]}"))
                elif amount > limit:
                    causes.append(invalid(f"{path}.requests", str(value),
                                          f"must be less than or equal to {name} limit of "
                                          f"{limits[name]}"))
    return causes


def _validate_probe(probe: Obj, path: str, kind: str) -> list[Cause]:
    causes: list[Cause] = []
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    if not handlers:
        causes.append(required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(forbidden(f"{path}.{handlers[1]}",
                                "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        value = probe.get(key)
        if isinstance(value, int) and value < 0:
            causes.append(invalid(f"{path}.{key}", value, "must be greater than or equal to 0"))
    if kind in ("livenessProbe", "startupProbe") and probe.get("successThreshold") not in (
            None, 1):
        causes.append(invalid(f"{path}.successThreshold", probe["successThreshold"],
                              "must be 1"))
    for handler in ("httpGet", "tcpSocket"):
        action = probe.get(handler)
        if isinstance(action, dict):
            causes.extend(_validate_port_num_or_name(action.get("port"), f"{path}.{handler}.port"))
    return causes


def _validate_port_num_or_name(port: Any, path: str) -> list[Cause]:
    if isinstance(port, str):
        return [invalid(path, port, m) for m in is_valid_port_name(port)]
    if isinstance(port, int):
        return [invalid(path, port, m) for m in is_valid_port_num(port)]
    return [required(path)]


def _validate_toleration(toleration: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    key = toleration.get("key") or ""
    if key:
        causes.extend(invalid(f"{path}.key", key, m) for m in is_qualified_name(key))
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists" and toleration.get("value"):
        causes.append(invalid(f"{path}.operator", toleration, "value must be empty when "
                              "`operator` is 'Exists'"))
    elif operator not in ("Equal", "Exists"):
        causes.append(not_supported(f"{path}.operator", operator, ("Equal", "Exists")))
    effect = toleration.get("effect") or ""
    if effect and effect not in ("NoExecute", "NoSchedule", "PreferNoSchedule"):
        causes.append(not_supported(f"{path}.effect", effect,
                                    ("NoExecute", "NoSchedule", "PreferNoSchedule")))
    return causes


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,"
                  "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                  "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                  "if it was previously negative)")


def _pod(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _d(obj.get("spec"))
    causes = validate_pod_spec(spec, "spec")
    if old is None:
        return causes
    old_spec = _d(old.get("spec"))
    new_containers = _l(spec.get("containers"))
    if len(new_containers) != len(_l(old_spec.get("containers"))):
        return [*causes, forbidden("spec.containers",
                                   "pod updates may not add or remove containers")]
    deadline = spec.get("activeDeadlineSeconds")
    old_deadline = old_spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and isinstance(old_deadline, int) and old_deadline < deadline:
        return [*causes, invalid("spec.activeDeadlineSeconds", deadline,
                                 "must be less than or equal to previous value")]
    if deadline is None and old_deadline is not None:
        return [*causes, invalid("spec.activeDeadlineSeconds", None,
                                 "must not update from a positive integer to nil value")]
    # Copy the updatable fields from the new spec into the old one; any other
    # difference is forbidden (Kubernetes' "munged" pod spec comparison).
    munged = copy.deepcopy(old_spec)
    for key in ("containers", "initContainers"):
        for new_c, old_c in zip(_l(spec.get(key)), _l(munged.get(key)), strict=False):
            if isinstance(new_c, dict) and isinstance(old_c, dict) and "image" in new_c:
                old_c["image"] = new_c["image"]
    for key in ("activeDeadlineSeconds",):
        if key in spec:
            munged[key] = spec[key]
        else:
            munged.pop(key, None)
    old_tolerations = _l(old_spec.get("tolerations"))
    new_tolerations = _l(spec.get("tolerations"))
    if all(t in new_tolerations for t in old_tolerations) and "tolerations" in spec:
        munged["tolerations"] = spec["tolerations"]
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and \
            spec.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = 1
    if not old_spec.get("nodeName") and spec.get("nodeName"):
        munged["nodeName"] = spec["nodeName"]  # binding: see the module docstring
    if munged != spec:
        changed = _changed_paths(munged, spec, "spec")
        causes.append(forbidden("spec", f"pod updates may not change fields other than "
                                        f"{_POD_UPDATABLE}\n" + "\n".join(
                                            f"  {p}: changed" for p in changed)))
    return causes


def _changed_paths(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.extend(_changed_paths(old.get(key), new.get(key), f"{path}.{key}"))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                out.extend(_changed_paths(a, b, f"{path}[{i}]"))
        return out
    return [path]


# ---- ReplicationController --------------------------------------------------------------------


def _replication_controller(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = _d(obj.get("spec"))
    min_ready = spec.get("minReadySeconds")
    if isinstance(min_ready, int) and min_ready < 0:
        causes.append(invalid("spec.minReadySeconds", min_ready,
                              "must be greater than or equal to 0"))
    selector = _d(spec.get("selector"))
    if not selector:
        causes.append(required("spec.selector"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(required("spec.template"))
        return causes
    t_meta = _d(template.get("metadata"))
    t_labels = _d(t_meta.get("labels"))
    if selector and not all(t_labels.get(k) == v for k, v in selector.items()):
        causes.append(invalid("spec.template.metadata.labels", t_labels,
                              "`selector` does not match template `labels`"))
    # ValidatePodTemplateSpec names the template's labels `spec.template.labels`.
    causes.extend(validate_labels(t_labels, "spec.template.labels"))
    causes.extend(validate_annotations(t_meta.get("annotations"), "spec.template.annotations"))
    t_spec = _d(template.get("spec"))
    causes.extend(validate_pod_spec(t_spec, "spec.template.spec"))
    restart = t_spec.get("restartPolicy")
    if restart and restart != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if t_spec.get("activeDeadlineSeconds") is not None:
        causes.append(invalid("spec.template.spec.activeDeadlineSeconds",
                              t_spec["activeDeadlineSeconds"],
                              "activeDeadlineSeconds in ReplicationController is not Supported"))
    return causes


# ---- Service -----------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _go_service_port(port: Obj) -> str:
    """%#v of the core.ServicePort{Protocol, Port} key in a duplicate-port error."""
    return (f'core.ServicePort{{Name:"", Protocol:"{port.get("protocol", "")}", '
            f"AppProtocol:(*string)(nil), Port:{port.get('port', 0)}, "
            f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def _service(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = _d(obj.get("spec"))
    svc_type = spec.get("type") or ""
    ports = _l(spec.get("ports"))
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and svc_type != "ExternalName":
        causes.append(required("spec.ports"))
    if svc_type == "ExternalName":
        external = spec.get("externalName") or ""
        if not external:
            causes.append(required("spec.externalName"))
        else:
            causes.extend(invalid("spec.externalName", external, m)
                          for m in is_dns1123_subdomain(external.rstrip(".")))
    names: set[str] = set()
    for i, port in enumerate(ports):
        port = _d(port)
        ppath = f"spec.ports[{i}]"
        pname = port.get("name") or ""
        if len(ports) > 1 and not pname:
            causes.append(required(f"{ppath}.name"))
        elif pname:
            causes.extend(invalid(f"{ppath}.name", pname, m) for m in is_dns1123_label(pname))
            if pname in names:
                causes.append(duplicate(f"{ppath}.name", pname))
            names.add(pname)
        causes.extend(invalid(f"{ppath}.port", port.get("port", 0), m)
                      for m in is_valid_port_num(port.get("port", 0)))
        protocol = port.get("protocol") or ""
        if not protocol:
            causes.append(required(f"{ppath}.protocol"))
        elif protocol not in _PROTOCOLS:
            causes.append(not_supported(f"{ppath}.protocol", protocol, _PROTOCOLS))
        causes.extend(_validate_port_num_or_name(port.get("targetPort"), f"{ppath}.targetPort"))
        node_port = port.get("nodePort")
        if node_port:
            causes.extend(invalid(f"{ppath}.nodePort", node_port, m)
                          for m in is_valid_port_num(node_port))
    if spec.get("selector") is not None:
        causes.extend(validate_labels(spec.get("selector"), "spec.selector"))
    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        causes.append(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        causes.append(not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != "None":
        try:
            ipaddress.ip_address(cluster_ip)
        except ValueError:
            causes.append(invalid("spec.clusterIPs[0]", cluster_ip,
                                  "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    for i, ip in enumerate(_l(spec.get("externalIPs"))):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            causes.append(invalid(f"spec.externalIPs[{i}]", ip,
                                  "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if not svc_type:
        causes.append(required("spec.type"))
    elif svc_type not in _SERVICE_TYPES:
        causes.append(not_supported("spec.type", svc_type, _SERVICE_TYPES))
    if svc_type == "ClusterIP":
        for i, port in enumerate(ports):
            if _d(port).get("nodePort"):
                causes.append(forbidden(f"spec.ports[{i}].nodePort",
                                        "may not be used when `type` is 'ClusterIP'"))
    seen_node_ports: set[tuple[Any, Any]] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        port = _d(port)
        if port.get("nodePort"):
            key = (port.get("protocol"), port["nodePort"])
            if key in seen_node_ports:
                causes.append(duplicate(f"spec.ports[{i}].nodePort", port["nodePort"]))
            seen_node_ports.add(key)
        key = (port.get("protocol"), port.get("port"))
        if key in seen_ports:
            causes.append(Cause(f"spec.ports[{i}]",
                                f"Duplicate value: {_go_service_port(port)}", DUPLICATE))
        seen_ports.add(key)
    for policy_key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        policy = spec.get(policy_key)
        if policy and policy not in ("Cluster", "Local"):
            causes.append(not_supported(f"spec.{policy_key}", policy, ("Cluster", "Local")))
    if old is not None:
        old_ips = _l(_d(old.get("spec")).get("clusterIPs"))
        new_ips = _l(spec.get("clusterIPs"))
        if old_ips and new_ips and old_ips[0] != new_ips[0] and svc_type != "ExternalName" \
                and _d(old.get("spec")).get("type") != "ExternalName":
            causes.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    return causes


# ---- the rest ----------------------------------------------------------------------------------


def _namespace(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, finalizer in enumerate(_l(_d(obj.get("spec")).get("finalizers"))):
        if finalizer != "kubernetes" and isinstance(finalizer, str):
            causes.extend(invalid(f"spec.finalizers[{i}]", finalizer, m)
                          for m in is_qualified_name(finalizer))
    return causes


def _node(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = _d(obj.get("spec"))
    for i, taint in enumerate(_l(spec.get("taints"))):
        taint = _d(taint)
        if not taint.get("key"):
            causes.append(required(f"spec.taints[{i}].key"))
        effect = taint.get("effect") or ""
        if effect not in ("NoExecute", "NoSchedule", "PreferNoSchedule"):
            causes.append(not_supported(f"spec.taints[{i}].effect", effect,
                                        ("NoExecute", "NoSchedule", "PreferNoSchedule")))
    for i, cidr in enumerate(_l(spec.get("podCIDRs"))):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            causes.append(invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value, "
                                  "(e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    if old is not None:
        old_cidrs = _l(_d(old.get("spec")).get("podCIDRs"))
        if old_cidrs and _l(spec.get("podCIDRs")) != old_cidrs:
            causes.append(forbidden("spec.podCIDRs", "node updates may not change podCIDR "
                                    "except from \"\" to valid"))
    return causes


def _event(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    involved = _d(obj.get("involvedObject"))
    namespace = _d(obj.get("metadata")).get("namespace") or ""
    inv_ns = involved.get("namespace") or ""
    if inv_ns and namespace and inv_ns != namespace:
        causes.append(invalid("involvedObject.namespace", inv_ns,
                              "does not match event.namespace"))
    return causes


def _endpoints(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(_l(obj.get("subsets"))):
        subset = _d(subset)
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(_l(subset.get(key))):
                ip = _d(address).get("ip") or ""
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    causes.append(invalid(f"subsets[{i}].{key}[{j}].ip", ip,
                                          "must be a valid IP address, (e.g. 10.9.8.7 or "
                                          "2001:db8::ffff)"))
        for j, port in enumerate(_l(subset.get("ports"))):
            port = _d(port)
            causes.extend(invalid(f"subsets[{i}].ports[{j}].port", port.get("port", 0), m)
                          for m in is_valid_port_num(port.get("port", 0)))
            protocol = port.get("protocol") or ""
            if protocol not in _PROTOCOLS:
                causes.append(not_supported(f"subsets[{i}].ports[{j}].protocol", protocol,
                                            _PROTOCOLS))
    return causes


def _lease(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = _d(obj.get("spec"))
    for key in ("leaseDurationSeconds", "leaseTransitions"):
        value = spec.get(key)
        if key == "leaseDurationSeconds" and isinstance(value, int) and value <= 0:
            causes.append(invalid(f"spec.{key}", value, "must be greater than 0"))
        if key == "leaseTransitions" and isinstance(value, int) and value < 0:
            causes.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    return causes


_CHECKS = {
    "Pod": _pod, "ReplicationController": _replication_controller, "Service": _service,
    "Namespace": _namespace, "Node": _node, "Event": _event, "Endpoints": _endpoints,
    "Lease": _lease,
}
