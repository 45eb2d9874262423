"""Validation helpers: refuse what Kubernetes refuses, naming fields as Kubernetes does.

    Kind.check (kinds/base.py) ─► type_error(definition, obj)        400 BadRequest
                               ─► validate_object_meta[_update]       ┐
                               ─► kinds/<kind>.py `_validate`         ├─► one 422 Invalid
                                    └─► validate_pod_spec, names, …   ┘   (raise_invalid)
    server (?fieldValidation=Strict|Warn|Ignore) ─► Kind.find_unknown_fields
                                                     └─► unknown_fields_of(definition, …)

Two passes, like kube-apiserver:
1. decoding: every value must have its schema type (`schema.py`); a mismatch is a
   400 BadRequest worded like Go's JSON decoder
   (`Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal ...`);
2. semantic validation, a port of `pkg/apis/core/validation` for the fields miniorch
   serves; every problem is collected, then raised together as one 422 `Invalid`
   whose causes carry Kubernetes' field paths, reasons and wording
   (`metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain ...`).

What is shared lives here (name rules, object metadata, the pod spec, ports, probes);
each kind's own rules live in its module under `api/kinds/`. Updates check metadata
immutability (`name`, `namespace`, `uid`, `creationTimestamp`: "field is immutable").

Everything here is pure: no I/O, no state; the caller decides what to do with errors.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any

from miniorch.api import schema
from miniorch.api.errors import Cause, Invalid
from miniorch.api.resource import Resource
from miniorch.api.selectors import LabelSelector
from miniorch.core.objects import Obj, as_dict, as_list
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


def type_error(definition: str, obj: Obj) -> str | None:
    """The first value whose JSON type is not its schema type (`definition` is the
    kind's full OpenAPI name), worded as Go's decoder words it; None when every value
    decodes."""
    return _type_walk(obj, definition, "", "")


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


def unknown_fields_of(definition: str, obj: Obj, *, prune: bool = False) -> list[str]:
    """Paths of fields the schema does not know: `spec.containers[0].imagee` — what
    `?fieldValidation=Strict` refuses. With `prune`, they are also dropped in place
    (kube-apiserver's default decoding, for `fieldValidation=Ignore|Warn`). Free-form
    (`any`) values are not descended."""
    found: list[str] = []
    _unknown_walk(obj, definition, "", found, prune=prune)
    return found


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


# ---- Pod ------------------------------------------------------------------------------------

PROTOCOLS = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_MAX_DNS_NAMESERVERS = 3
_MAX_DNS_SEARCHES = 32
_MAX_DNS_SEARCH_CHARS = 2048
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_INT32_MAX = 2**31 - 1


def validate_pod_spec(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    volumes: set[str] = set()
    for i, volume in enumerate(as_list(spec.get("volumes"))):
        volume = as_dict(volume)
        vpath = f"{path}.volumes[{i}]"
        name = volume.get("name") or ""
        if not name:
            causes.append(required(f"{vpath}.name"))
        else:
            causes.extend(invalid(f"{vpath}.name", name, m) for m in is_dns1123_label(name))
            if name in volumes:
                causes.append(duplicate(f"{vpath}.name", name))
            volumes.add(name)
        causes.extend(_validate_volume_source(volume, vpath))
    containers = as_list(spec.get("containers"))
    if not containers:
        causes.append(required(f"{path}.containers"))
    names: set[str] = set()
    for key in ("containers", "initContainers"):
        for i, container in enumerate(as_list(spec.get(key))):
            container = as_dict(container)
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
    causes.extend(_validate_dns_config(spec.get("dnsConfig"), dns, f"{path}.dnsConfig"))
    causes.extend(validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    for i, secret in enumerate(as_list(spec.get("imagePullSecrets"))):
        if not as_dict(secret).get("name"):
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
    subdomain = spec.get("subdomain") or ""
    if subdomain:
        causes.extend(invalid(f"{path}.subdomain", subdomain, m)
                      for m in is_dns1123_label(subdomain))
    for i, toleration in enumerate(as_list(spec.get("tolerations"))):
        causes.extend(_validate_toleration(as_dict(toleration), f"{path}.tolerations[{i}]"))
    return causes


def _validate_dns_config(config: Any, policy: str, path: str) -> list[Cause]:
    """validatePodDNSConfig: `None` needs a nameserver; at most 3 nameservers (IPs),
    32 search domains in 2048 characters (DNS-1123 subdomains, a trailing dot allowed),
    options with names (the resolver limits the kubelet's resolv.conf must fit)."""
    if policy == "None":
        if not isinstance(config, dict):
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not as_list(config.get("nameservers")):
            return [required(f"{path}.nameservers",
                             "must provide at least one DNS nameserver when `dnsPolicy` "
                             "is None")]
    if not isinstance(config, dict):
        return []
    causes: list[Cause] = []
    nameservers = [str(n) for n in as_list(config.get("nameservers"))]
    if len(nameservers) > _MAX_DNS_NAMESERVERS:
        causes.append(invalid(f"{path}.nameservers", nameservers,
                              f"must not have more than {_MAX_DNS_NAMESERVERS} nameservers"))
    for i, server in enumerate(nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            causes.append(invalid(f"{path}.nameservers[{i}]", server,
                                  "must be a valid IP address, (e.g. 10.9.8.7 or "
                                  "2001:db8::ffff)"))
    searches = [str(s) for s in as_list(config.get("searches"))]
    if len(searches) > _MAX_DNS_SEARCHES:
        causes.append(invalid(f"{path}.searches", searches,
                              f"must not have more than {_MAX_DNS_SEARCHES} search paths"))
    if len(" ".join(searches)) > _MAX_DNS_SEARCH_CHARS:
        causes.append(invalid(f"{path}.searches", searches,
                              f"must not have more than {_MAX_DNS_SEARCH_CHARS} characters "
                              "(including spaces) in the search list"))
    for i, search in enumerate(searches):
        trimmed = search.removesuffix(".")  # it is fine to have a trailing dot
        causes.extend(invalid(f"{path}.searches[{i}]", trimmed, m)
                      for m in is_dns1123_subdomain(trimmed))
    for i, option in enumerate(as_list(config.get("options"))):
        if not as_dict(option).get("name"):
            causes.append(required(f"{path}.options[{i}]", "must not be empty"))
    return causes


def validate_pod_template(spec: Obj, selector: LabelSelector | None, kind: str
                          ) -> list[Cause]:
    """ValidatePodTemplateSpecForReplicationController/ReplicaSet/DaemonSet/StatefulSet:
    `spec.template` present, labelled to match `selector` (skipped when None or empty),
    a valid pod spec that restarts `Always` and has no activeDeadlineSeconds."""
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required("spec.template")]
    causes: list[Cause] = []
    t_meta = as_dict(template.get("metadata"))
    t_labels = as_dict(t_meta.get("labels"))
    if selector is not None and not selector.empty and not selector.matches(t_labels):
        causes.append(invalid("spec.template.metadata.labels", t_labels,
                              "`selector` does not match template `labels`"))
    # ValidatePodTemplateSpec names the template's labels `spec.template.labels`.
    causes.extend(validate_labels(t_labels, "spec.template.labels"))
    causes.extend(validate_annotations(t_meta.get("annotations"), "spec.template.annotations"))
    t_spec = as_dict(template.get("spec"))
    causes.extend(validate_pod_spec(t_spec, "spec.template.spec"))
    restart = t_spec.get("restartPolicy")
    if restart and restart != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if t_spec.get("activeDeadlineSeconds") is not None:
        causes.append(invalid("spec.template.spec.activeDeadlineSeconds",
                              t_spec["activeDeadlineSeconds"],
                              f"activeDeadlineSeconds in {kind} is not Supported"))
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
    for i, port in enumerate(as_list(container.get("ports"))):
        port = as_dict(port)
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
        elif protocol not in PROTOCOLS:
            causes.append(not_supported(f"{ppath}.protocol", protocol, PROTOCOLS))
    for i, env in enumerate(as_list(container.get("env"))):
        env = as_dict(env)
        ename = env.get("name") or ""
        if not ename:
            causes.append(required(f"{path}.env[{i}].name"))
        elif not _env_name_ok(ename):
            causes.append(invalid(f"{path}.env[{i}].name", ename, _ENV_NAME_MESSAGE))
        if env.get("valueFrom") is not None:
            causes.extend(_validate_env_source(env, f"{path}.env[{i}]"))
    for i, source in enumerate(as_list(container.get("envFrom"))):
        causes.extend(_validate_env_from(as_dict(source), f"{path}.envFrom[{i}]"))
    mount_paths: set[str] = set()
    for i, mount in enumerate(as_list(container.get("volumeMounts"))):
        mount = as_dict(mount)
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
        sub_path = mount.get("subPath") or ""
        if sub_path:
            causes.extend(_validate_local_path(sub_path, f"{mpath}.subPath"))
    pull = container.get("imagePullPolicy") or ""
    if not pull:
        causes.append(required(f"{path}.imagePullPolicy"))
    elif pull not in _PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", pull, _PULL_POLICIES))
    causes.extend(_validate_resources(as_dict(container.get("resources")), f"{path}.resources"))
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_key)
        if isinstance(probe, dict):
            causes.extend(_validate_probe(probe, f"{path}.{probe_key}", probe_key))
    return causes


_ENV_NAME_MESSAGE = ("a valid environment variable name must consist only of printable "
                     "ASCII characters other than '='")
_ENV_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name",
                    "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                    "status.podIP", "status.podIPs")
_ENV_RESOURCES = ("limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                  "requests.ephemeral-storage", "requests.memory")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_INDEXED_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VOLUME_SOURCES = ("hostPath", "emptyDir", "secret", "configMap", "persistentVolumeClaim",
                   "downwardAPI", "projected", "nfs", "csi", "ephemeral", "image")
_MEDIUMS = ("", "Memory", "HugePages")


def _env_name_ok(name: str) -> bool:
    return "=" not in name and all(" " <= ch <= "~" for ch in name)


def _validate_local_path(value: str, path: str) -> list[Cause]:
    """validateLocalDescendingPath: relative, no `..` element."""
    if value.startswith("/"):
        return [invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


def _validate_mode(value: Any, path: str) -> list[Cause]:
    if value is None or (isinstance(value, int) and 0 <= value <= 0o777):
        return []
    return [invalid(path, value, "must be a number between 0 and 0777 (octal), both inclusive")]


def _validate_key(key: Any, path: str) -> list[Cause]:
    if not key:
        return [required(path)]
    if not _CONFIG_KEY.fullmatch(str(key)) or len(str(key)) > 253:
        return [invalid(path, key, "a valid config key must consist of alphanumeric "
                        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")]
    return []


def _validate_volume_source(volume: Obj, path: str) -> list[Cause]:
    """validateVolumeSource: exactly one source; configMap, secret, emptyDir fields."""
    present = [key for key in _VOLUME_SOURCES if volume.get(key) is not None]
    if not present:
        return [required(path, "must specify a volume type")]
    causes = [forbidden(f"{path}.{key}", "may not specify more than 1 volume type")
              for key in present[1:]]
    key = present[0]
    source = as_dict(volume.get(key))
    spath = f"{path}.{key}"
    if key in ("configMap", "secret"):
        name_field = "name" if key == "configMap" else "secretName"
        if not source.get(name_field):
            causes.append(required(f"{spath}.{name_field}"))
        causes.extend(_validate_mode(source.get("defaultMode"), f"{spath}.defaultMode"))
        for i, item in enumerate(as_list(source.get("items"))):
            item = as_dict(item)
            ipath = f"{spath}.items[{i}]"
            causes.extend(_validate_key(item.get("key"), f"{ipath}.key"))
            if not item.get("path"):
                causes.append(required(f"{ipath}.path"))
            else:
                item_path = str(item["path"])
                causes.extend(_validate_local_path(item_path, f"{ipath}.path"))
                if item_path.startswith(".."):
                    causes.append(invalid(f"{ipath}.path", item_path,
                                          "must not start with '..'"))
            causes.extend(_validate_mode(item.get("mode"), f"{ipath}.mode"))
    elif key == "emptyDir":
        medium = source.get("medium") or ""
        if medium not in _MEDIUMS:
            causes.append(not_supported(f"{spath}.medium", medium, _MEDIUMS))
    return causes


def _validate_env_source(env: Obj, path: str) -> list[Cause]:
    """validateEnvVarValueFrom: one source, and not with `value`."""
    source = as_dict(env.get("valueFrom"))
    vpath = f"{path}.valueFrom"
    causes: list[Cause] = []
    if env.get("value"):
        causes.append(invalid(vpath, "", "may not be specified when `value` is not empty"))
    kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
             if source.get(k) is not None]
    if not kinds:
        return [*causes, invalid(vpath, "", "must specify one of: `fieldRef`, "
                                 "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`")]
    if len(kinds) > 1:
        return [*causes, invalid(vpath, "", "may not have more than one field specified at a "
                                 "time")]
    ref = as_dict(source.get(kinds[0]))
    rpath = f"{vpath}.{kinds[0]}"
    if kinds[0] == "fieldRef":
        field_path = ref.get("fieldPath") or ""
        indexed = _INDEXED_FIELD.match(str(field_path))
        if not field_path:
            causes.append(required(f"{rpath}.fieldPath"))
        elif indexed is None and (field_path not in _ENV_FIELD_PATHS or field_path in (
                "metadata.annotations", "metadata.labels")):
            causes.append(not_supported(f"{rpath}.fieldPath", field_path, _ENV_FIELD_PATHS))
    elif kinds[0] == "resourceFieldRef":
        resource = ref.get("resource") or ""
        if not resource:
            causes.append(required(f"{rpath}.resource"))
        elif resource not in _ENV_RESOURCES:
            causes.append(not_supported(f"{rpath}.resource", resource, _ENV_RESOURCES))
    else:
        causes.extend(_validate_key(ref.get("key"), f"{rpath}.key"))
        if not ref.get("name"):
            causes.append(required(f"{rpath}.name"))
    return causes


def _validate_env_from(source: Obj, path: str) -> list[Cause]:
    """validateEnvFrom: one of configMapRef/secretRef, a valid prefix."""
    causes: list[Cause] = []
    prefix = source.get("prefix") or ""
    if prefix and not _env_name_ok(str(prefix)):
        causes.append(invalid(f"{path}.prefix", prefix, _ENV_NAME_MESSAGE))
    kinds = [k for k in ("configMapRef", "secretRef") if source.get(k) is not None]
    if not kinds:
        causes.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
    elif len(kinds) > 1:
        causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    elif not as_dict(source.get(kinds[0])).get("name"):
        causes.append(required(f"{path}.{kinds[0]}.name"))
    return causes


def _resource_name_ok(name: str) -> bool:
    return (name in _STANDARD_RESOURCES or name.startswith("hugepages-")
            or ("/" in name and not is_qualified_name(name)
                and not name.startswith("kubernetes.io/")))


def _validate_resources(resources: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    limits = as_dict(resources.get("limits"))
    requests = as_dict(resources.get("requests"))
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
            causes.extend(validate_port_num_or_name(action.get("port"), f"{path}.{handler}.port"))
    return causes


def validate_port_num_or_name(port: Any, path: str) -> list[Cause]:
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


# ---- Service -----------------------------------------------------------------------------------
