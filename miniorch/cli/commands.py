"""The kubectl verbs: each takes the parsed arguments and a `Context`, prints what
kubectl prints, and returns an exit code (errors are raised as `CliError`).

Requests follow kubectl-compat.md: Tables for `get`, plain JSON for object formats,
`/scale` merge patches, `propagationPolicy` on delete followed by a watch until the
object is gone, `involvedObject` field selectors for events.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from miniorch.api.resource import Resource
from miniorch.cli.client import TABLE_ACCEPT, Client
from miniorch.cli.context import Context
from miniorch.cli.errors import CliError, StatusError
from miniorch.cli.printers import (
    TableOptions,
    as_list,
    kind_name_for,
    new_table_writer,
    render_table,
    table_lines,
    to_json,
    to_yaml,
)

Obj = dict[str, Any]

# -- resolving KIND [NAME...] -------------------------------------------------------------


def lookup_resource(ctx: Context, name: str) -> Resource:
    """`name` as the server's discovery knows it (CliError if it serves no such kind)."""
    return ctx.discovery.resolve(name)


def resolve_targets(ctx: Context, args: list[str]) -> list[tuple[Resource, list[str]]]:
    """`pods`, `pods a b`, `pod/a rc/b`, `pods,svc`, `all` → [(resource, names)]."""
    if not args:
        raise CliError("You must specify the type of resource to get. Use \"miniorch "
                       "api-resources\" for a complete list of supported resources.")
    if "/" in args[0]:
        targets: list[tuple[Resource, list[str]]] = []
        for arg in args:
            if "/" not in arg:
                raise CliError("there is no need to specify a resource type as a separate "
                               "argument when passing arguments in resource/name form "
                               "(e.g. 'miniorch get resource/<resource_name>' instead of "
                               "'miniorch get resource resource/<resource_name>'")
            kind, _, name = arg.partition("/")
            resource = lookup_resource(ctx, kind)
            if targets and targets[-1][0] == resource:
                targets[-1][1].append(name)
            else:
                targets.append((resource, [name]))
        return targets
    kinds: list[Resource] = []
    for kind in args[0].split(","):
        if kind == "all":
            kinds.extend(ctx.discovery.category("all"))
        else:
            kinds.append(lookup_resource(ctx, kind))
    names = args[1:]
    if names and len(kinds) > 1:
        raise CliError("arguments in resource/name form must have a single resource and name")
    return [(r, list(names)) for r in kinds]


def path_for(ctx: Context, resource: Resource, name: str | None = None, *,
             all_namespaces: bool = False) -> str:
    namespace = None if (all_namespaces or not resource.namespaced) else ctx.namespace
    base = resource.base_path(namespace)
    return f"{base}/{name}" if name else base


def _no_resources(ctx: Context, resources: list[Resource], all_namespaces: bool) -> None:
    if all_namespaces or not any(r.namespaced for r in resources):
        ctx.err("No resources found\n")
    else:
        ctx.err(f"No resources found in {ctx.namespace} namespace.\n")


# -- get ----------------------------------------------------------------------------------


def cmd_get(ctx: Context, a: argparse.Namespace) -> int:
    targets = resolve_targets(ctx, a.args)
    output: str = a.output or ""
    all_ns = bool(a.all_namespaces)
    query: dict[str, Any] = {}
    if a.selector:
        query["labelSelector"] = a.selector
    if a.field_selector:
        query["fieldSelector"] = a.field_selector
    if output in ("", "wide"):
        return _get_tables(ctx, a, targets, query, all_ns)
    if output not in ("json", "yaml", "name") and not output.startswith("jsonpath"):
        raise CliError(f'unable to match a printer suitable for the output format "{output}", '
                       "allowed formats are: json,jsonpath,jsonpath-as-json,jsonpath-file,name,"
                       "wide,yaml")
    failed = False
    items: list[Obj] = []
    single = len(targets) == 1 and len(targets[0][1]) == 1
    for resource, names in targets:
        if names:
            for name in names:
                try:
                    obj = ctx.client.get(path_for(ctx, resource, name))
                except StatusError as exc:
                    if a.ignore_not_found and exc.reason == "NotFound":
                        continue
                    ctx.err(exc.render() + "\n")
                    failed = True
                    continue
                items.append(obj)
        else:
            result = ctx.client.request("GET", path_for(ctx, resource, all_namespaces=all_ns),
                                        query=query or None)
            for item in result.get("items") or []:
                item.setdefault("kind", resource.kind)
                item.setdefault("apiVersion", resource.api_version)
                items.append(item)
    if not a.watch_only:
        named = any(names for _, names in targets)
        if single and items:
            _print_objects(ctx, output, items[0], single=True)
        elif output == "name" and not items:
            if not named:
                _no_resources(ctx, [r for r, _ in targets], all_ns)
        elif items or not named:
            _print_objects(ctx, output, as_list(items), single=False)
    if a.watch or a.watch_only:
        resource, names = targets[0]
        _watch_objects(ctx, a, resource, names, query, all_ns, output)
    return 1 if failed else 0


def _print_objects(ctx: Context, output: str, obj: Obj, *, single: bool) -> None:
    if output == "json":
        ctx.out(to_json(obj))
    elif output == "yaml":
        ctx.out(to_yaml(obj))
    elif output == "name":
        objs = [obj] if single else obj.get("items") or []
        ctx.out("".join(f"{kind_name_for(str(o.get('kind', '')), str(o.get('apiVersion', '')))}"
                        f"/{(o.get('metadata') or {}).get('name', '')}\n" for o in objs))
    elif output.startswith("jsonpath"):
        from miniorch.cli import jsonpath

        template = output.partition("=")[2]
        if not template:
            raise CliError("template format specified but no template given")
        if template.startswith("'") and template.endswith("'") and len(template) > 1:
            template = template[1:-1]
        ctx.out(jsonpath.render(template, obj))
    else:
        raise CliError(f'output format "{output}" is not supported by miniorch')


def _get_table(client: Client, path: str, query: dict[str, Any]) -> Obj:
    result: Obj = client.request("GET", path, query=query or None, accept=TABLE_ACCEPT)
    if result.get("kind") != "Table":
        raise CliError(f"the server did not answer {path} with a Table")
    return result


def _get_tables(ctx: Context, a: argparse.Namespace, targets: list[tuple[Resource, list[str]]],
                query: dict[str, Any], all_ns: bool) -> int:
    failed = False
    multi = len(targets) > 1
    printed_any = False
    any_rows = False
    errors: list[str] = []
    last_table: Obj | None = None
    for resource, names in targets:
        if names:
            table: Obj | None = None
            for name in names:
                try:
                    t = _get_table(ctx.client, path_for(ctx, resource, name), {})
                except StatusError as exc:
                    if a.ignore_not_found and exc.reason == "NotFound":
                        continue
                    errors.append(exc.render())
                    failed = True
                    continue
                if table is None:
                    table = t
                else:
                    table["rows"] = [*(table.get("rows") or []), *(t.get("rows") or [])]
            if table is None:
                continue
        else:
            table = _get_table(ctx.client, path_for(ctx, resource, all_namespaces=all_ns),
                               {"limit": 500, **query})
        last_table = table
        if not table.get("rows"):
            continue
        any_rows = True
        if a.watch_only:
            continue
        options = TableOptions(
            wide=a.output == "wide", no_headers=a.no_headers, show_labels=a.show_labels,
            with_namespace=all_ns and resource.namespaced,
            kind_prefix=kind_name_for(resource.kind, resource.api_version) if multi else "")
        if printed_any and not a.no_headers:
            ctx.out("\n")
        ctx.out(render_table(table, options))
        printed_any = True
    for message in errors:
        ctx.err(message + "\n")
    if not any_rows and not errors and not (a.watch or a.watch_only) \
            and not any(names for _, names in targets):
        _no_resources(ctx, [r for r, _ in targets], all_ns)
    if (a.watch or a.watch_only) and targets:
        resource, names = targets[0]
        if multi:
            raise CliError("you may only specify a single resource type")
        start_rv = str(((last_table or {}).get("metadata") or {}).get("resourceVersion", ""))
        _watch_table(ctx, a, resource, names, query, all_ns, start_rv,
                     header_printed=printed_any and not a.watch_only)
    return 1 if failed else 0


def _watch_events(ctx: Context, path: str, query: dict[str, Any], *, accept: str) -> Any:
    """Yield watch events until the server ends the stream (or Ctrl-C)."""
    response = ctx.client.open("GET", path, query={**query, "watch": "true"},
                               accept=accept, stream=True)
    try:
        for line in response.lines():
            line = line.strip()
            if line:
                yield json.loads(line)
    finally:
        response.close()


def _watch_query(names: list[str], query: dict[str, Any], rv: str) -> dict[str, Any]:
    q = dict(query)
    if names:
        q["fieldSelector"] = f"metadata.name={names[0]}"
    if rv:
        q["resourceVersion"] = rv
    return q


def _watch_table(ctx: Context, a: argparse.Namespace, resource: Resource, names: list[str],
                 query: dict[str, Any], all_ns: bool, rv: str, *, header_printed: bool) -> None:
    options = TableOptions(wide=a.output == "wide", no_headers=a.no_headers,
                           show_labels=a.show_labels,
                           with_namespace=all_ns and resource.namespaced)
    writer = new_table_writer()
    # Widths are remembered from the initial table so watch rows line up under it.
    if header_printed:
        table = _get_table(ctx.client, path_for(ctx, resource, names[0] if names else None,
                                                all_namespaces=all_ns),
                           {} if names else {"limit": 500, **query})
        writer.write(table_lines(table, options))
        writer.flush()
    need_header = not header_printed
    path = path_for(ctx, resource, all_namespaces=all_ns)
    for event in _watch_events(ctx, path, _watch_query(names, query, rv), accept=TABLE_ACCEPT):
        if event.get("type") == "ERROR":
            raise StatusError(event.get("object") or {}, code=500)
        if event.get("type") == "BOOKMARK":
            continue
        table = event.get("object") or {}
        writer.write(table_lines(table, options, header=need_header))
        need_header = False
        ctx.out(writer.flush())


def _watch_objects(ctx: Context, a: argparse.Namespace, resource: Resource, names: list[str],
                   query: dict[str, Any], all_ns: bool, output: str) -> None:
    path = path_for(ctx, resource, all_namespaces=all_ns)
    listing = ctx.client.request("GET", path, query={"limit": 1, **query})
    rv = str((listing.get("metadata") or {}).get("resourceVersion", ""))
    for event in _watch_events(ctx, path, _watch_query(names, query, rv),
                               accept="application/json"):
        if event.get("type") in ("BOOKMARK",):
            continue
        obj = event.get("object") or {}
        _print_objects(ctx, output, obj, single=True)


# -- describe -----------------------------------------------------------------------------


def cmd_describe(ctx: Context, a: argparse.Namespace) -> int:
    from miniorch.cli.describe import describe_object

    targets = resolve_targets(ctx, a.args)
    outputs: list[str] = []
    failed = False
    for resource, names in targets:
        objs: list[Obj] = []
        if names:
            for name in names:
                try:
                    objs.append(ctx.client.get(path_for(ctx, resource, name)))
                except StatusError as exc:
                    ctx.err(exc.render() + "\n")
                    failed = True
        else:
            query = {"labelSelector": a.selector} if a.selector else {}
            result = ctx.client.request("GET", path_for(ctx, resource,
                                                        all_namespaces=a.all_namespaces),
                                        query=query or None)
            objs = result.get("items") or []
            if not objs:
                _no_resources(ctx, [resource], a.all_namespaces)
        for obj in objs:
            obj.setdefault("kind", resource.kind)
            obj.setdefault("apiVersion", resource.api_version)
            outputs.append(describe_object(ctx.client, resource, obj))
    ctx.out("\n\n".join(outputs))
    return 1 if failed else 0


# -- run / expose / scale -----------------------------------------------------------------


def _parse_pairs(text: str, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CliError(f"invalid {what} spec: {part}")
        pairs[key.strip()] = value.strip()
    return pairs


def cmd_run(ctx: Context, a: argparse.Namespace) -> int:
    name: str = a.name
    if not a.image:
        raise CliError("--image is required")
    labels = _parse_pairs(a.labels, "label") if a.labels else {"run": name}
    container: Obj = {"name": name, "image": a.image, "resources": {}}
    if a.port is not None:
        container["ports"] = [{"containerPort": a.port}]
    env = []
    for item in a.env or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"invalid env: {item}")
        env.append({"name": key, "value": value})
    if env:
        container["env"] = env
    if a.cmd:
        container["command" if a.command else "args"] = list(a.cmd)
    if a.replicas < 0:
        raise CliError(f"--replicas must be non-negative, got {a.replicas}")
    rc: Obj = {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": a.replicas, "selector": labels,
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [container]}}},
    }
    if a.dry_run and a.dry_run != "none":
        if a.output:
            _print_objects(ctx, a.output, rc, single=True)
        else:
            ctx.out(f"replicationcontroller/{name} created (dry run)\n")
        return 0
    ctx.client.request("POST", path_for(ctx, lookup_resource(ctx, "rc")), body=rc,
                       query={"fieldManager": "kubectl-run"})
    ctx.out(f"replicationcontroller/{name} created\n")
    return 0


def _kind_and_name(ctx: Context, args: list[str]) -> tuple[Resource, str]:
    targets = resolve_targets(ctx, args)
    if len(targets) != 1 or len(targets[0][1]) != 1:
        raise CliError("exactly one resource and name is required, e.g. `rc kubia`")
    return targets[0][0], targets[0][1][0]


def cmd_expose(ctx: Context, a: argparse.Namespace) -> int:
    resource, name = _kind_and_name(ctx, a.args)
    if resource.kind not in ("ReplicationController", "Pod", "Service"):
        raise CliError(f"cannot expose a {resource.kind}")
    obj = ctx.client.get(path_for(ctx, resource, name))
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    if a.selector:
        selector = _parse_pairs(a.selector, "selector")
    elif resource.kind == "ReplicationController":
        selector = dict(spec.get("selector") or {})
    elif resource.kind == "Pod":
        selector = dict(meta.get("labels") or {})
    else:
        selector = dict(spec.get("selector") or {})
    if not selector:
        raise CliError(f"couldn't retrieve selectors via --selector flag or introspection: "
                       f"the {resource.kind} has no labels")
    # Ports: --port wins; else what the object exposes.
    ports: list[Obj] = []
    if resource.kind == "Service":
        ports = [{"port": p.get("port"), "protocol": p.get("protocol", "TCP"),
                  "targetPort": p.get("targetPort", p.get("port"))}
                 for p in spec.get("ports") or []]
    else:
        pod_spec = spec if resource.kind == "Pod" else \
            ((spec.get("template") or {}).get("spec") or {})
        for c in pod_spec.get("containers") or []:
            for p in c.get("ports") or []:
                ports.append({"port": p.get("containerPort"),
                              "protocol": p.get("protocol") or "TCP",
                              "targetPort": p.get("containerPort")})
    if a.port is not None:
        ports = [{"port": int(a.port), "protocol": a.protocol or "TCP",
                  "targetPort": int(a.port)}]
    if not ports:
        raise CliError("couldn't find port via --port flag or introspection")
    if a.protocol:
        for p in ports:
            p["protocol"] = a.protocol
    if a.target_port is not None:
        target: Any = int(a.target_port) if str(a.target_port).isdigit() else a.target_port
        for p in ports:
            p["targetPort"] = target
    if len(ports) > 1:
        for n, p in enumerate(ports, 1):
            p["name"] = f"port-{n}"
    svc_name = a.svc_name or name
    service: Obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": svc_name,
                     "labels": _parse_pairs(a.labels, "label") if a.labels
                     else dict(meta.get("labels") or {})},
        "spec": {"ports": ports, "selector": selector},
    }
    if not service["metadata"]["labels"]:
        del service["metadata"]["labels"]
    if a.type:
        types = {"clusterip": "ClusterIP", "nodeport": "NodePort",
                 "loadbalancer": "LoadBalancer", "externalname": "ExternalName"}
        if a.type.lower() not in types:
            raise CliError(f"invalid service type {a.type!r}: use ClusterIP, NodePort or "
                           "LoadBalancer")
        service["spec"]["type"] = types[a.type.lower()]
    ctx.client.request("POST", path_for(ctx, lookup_resource(ctx, "svc")), body=service,
                       query={"fieldManager": "kubectl-expose"})
    ctx.out(f"service/{svc_name} exposed\n")
    return 0


def cmd_scale(ctx: Context, a: argparse.Namespace) -> int:
    targets = resolve_targets(ctx, a.args)
    if a.replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater "
                       "than or equal to 0")
    for resource, names in targets:
        if not ctx.discovery.scalable(resource):
            raise CliError(f'cannot scale a {resource.kind}: the server serves no '
                           f'{resource.plural}/scale subresource')
        for name in names:
            obj = ctx.client.get(path_for(ctx, resource, name))
            if a.current_replicas is not None and a.current_replicas >= 0:
                current = (obj.get("spec") or {}).get("replicas", 1)
                if current != a.current_replicas:
                    raise CliError(f"Expected replicas to be {a.current_replicas}, was {current}")
            ctx.client.request("PATCH", path_for(ctx, resource, name) + "/scale",
                               body={"spec": {"replicas": a.replicas}},
                               content_type="application/merge-patch+json")
            ctx.out(f"{kind_name_for(resource.kind, resource.api_version)}/{name} scaled\n")
    return 0


# -- delete -------------------------------------------------------------------------------


def _wait_deleted(ctx: Context, resource: Resource, name: str, namespace: str | None,
                  uid: str, *, timeout: float) -> None:
    """Block until the object (this uid) is gone: a GET, then a watch for DELETED."""
    import time

    base = resource.base_path(namespace if resource.namespaced else None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            current = ctx.client.get(f"{base}/{name}")
        except StatusError as exc:
            if exc.reason == "NotFound":
                return
            raise
        if uid and (current.get("metadata") or {}).get("uid") != uid:
            return  # already replaced by a new object of the same name
        rv = str((current.get("metadata") or {}).get("resourceVersion", ""))
        remaining = max(1, int(deadline - time.monotonic()))
        query = {"fieldSelector": f"metadata.name={name}", "resourceVersion": rv,
                 "timeoutSeconds": min(remaining, 60)}
        for event in _watch_events(ctx, base, query, accept="application/json"):
            if event.get("type") == "DELETED":
                return
            if event.get("type") == "ERROR":
                break  # e.g. 410 Expired: re-read and watch again
    raise CliError(f'timed out waiting for the condition on {resource.plural}/{name}')


def cmd_delete(ctx: Context, a: argparse.Namespace) -> int:
    items: list[tuple[Resource, str, str | None]] = []
    if a.filename:
        from miniorch.cli.manifests import read_manifests
        for manifest in read_manifests(a.filename, recursive=a.recursive):
            resource = _resource_of(ctx, manifest.obj)
            meta = manifest.obj.get("metadata") or {}
            items.append((resource, str(meta.get("name", "")),
                          meta.get("namespace") or ctx.namespace))
    else:
        targets = resolve_targets(ctx, a.args)
        for resource, names in targets:
            if names and (a.all or a.selector):
                raise CliError("name cannot be provided when a selector is specified")
            if names:
                items.extend((resource, n, ctx.namespace) for n in names)
                continue
            if not (a.all or a.selector or a.field_selector):
                raise CliError("resource(s) were provided, but no name was specified")
            query = {"labelSelector": a.selector, "fieldSelector": a.field_selector}
            result = ctx.client.request(
                "GET", path_for(ctx, resource, all_namespaces=a.all_namespaces),
                query={k: v for k, v in query.items() if v} or None)
            for item in result.get("items") or []:
                m = item.get("metadata") or {}
                items.append((resource, str(m.get("name", "")), m.get("namespace")))
        if not items:
            _no_resources(ctx, [r for r, _ in targets], a.all_namespaces)
            return 0
    grace = a.grace_period
    if a.now:
        grace = 1
    if a.force and grace is not None and grace < 0:
        grace = 0
    cascade = {"background": "Background", "orphan": "Orphan", "foreground": "Foreground",
               "true": "Background", "false": "Orphan"}.get(str(a.cascade).lower())
    if cascade is None:
        raise CliError(f'invalid cascade value ({a.cascade}). Must be "background", '
                       '"foreground", or "orphan".')
    if a.force and grace == 0:
        ctx.err("Warning: Immediate deletion does not wait for confirmation that the running "
                "resource has been terminated. The resource may continue to run on the "
                "cluster indefinitely.\n")
    body: Obj = {"propagationPolicy": cascade}
    if grace is not None and grace >= 0:
        body["gracePeriodSeconds"] = grace
    failed = False
    deleted: list[tuple[Resource, str, str | None, str]] = []
    if any(r.plural == "customresourcedefinitions" for r, _, _ in items):
        # The kinds they serve go: the next command must not resolve them from the
        # cache (a new kind needs no such care, a cache miss refetches).
        ctx.discovery.refresh(force=True)
    for resource, name, namespace in items:
        path = resource.base_path(namespace if resource.namespaced else None) + f"/{name}"
        try:
            result = ctx.client.request("DELETE", path, body=body)
        except StatusError as exc:
            if exc.reason == "NotFound" and a.ignore_not_found:
                continue
            ctx.err(exc.render() + "\n")
            failed = True
            continue
        kind_name = kind_name_for(resource.kind, resource.api_version)
        ctx.out(f'{kind_name} "{name}" deleted\n')
        uid = str(((result or {}).get("metadata") or {}).get("uid", "")) \
            if isinstance(result, dict) and result.get("kind") != "Status" else ""
        deleted.append((resource, name, namespace, uid))
    if a.wait and not (a.force and grace == 0):
        for resource, name, namespace, uid in deleted:
            _wait_deleted(ctx, resource, name, namespace, uid, timeout=a.timeout or 7 * 86400)
    return 1 if failed else 0


# -- create / apply -----------------------------------------------------------------------


def _resource_of(ctx: Context, obj: Obj) -> Resource:
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    found = ctx.discovery.by_kind(api_version, kind)
    if found is not None:
        return found
    name = (obj.get("metadata") or {}).get("name", "")
    raise CliError(f'resource mapping not found for name: "{name}" namespace: "" from '
                   f'"": no matches for kind "{kind}" in version "{api_version}"\n'
                   "ensure CRDs are installed first")


def _target_namespace(ctx: Context, resource: Resource, obj: Obj) -> str | None:
    if not resource.namespaced:
        return None
    meta = obj.setdefault("metadata", {})
    declared = meta.get("namespace")
    if declared and ctx.namespace_flag and declared != ctx.namespace_flag:
        raise CliError(f'the namespace from the provided object "{declared}" does not match '
                       f'the namespace "{ctx.namespace_flag}". You must pass '
                       f"'--namespace={declared}' to perform this operation.")
    namespace = str(declared or ctx.namespace)
    meta["namespace"] = namespace
    return namespace


def cmd_create(ctx: Context, a: argparse.Namespace) -> int:
    from miniorch.cli.manifests import read_manifests

    if a.args:
        return _create_named(ctx, a)
    manifests = read_manifests(a.filename or [], recursive=a.recursive)
    plan = [(m, _resource_of(ctx, m.obj)) for m in manifests]  # validate everything first
    failed = False
    for manifest, resource in plan:
        namespace = _target_namespace(ctx, resource, manifest.obj)
        try:
            created = ctx.client.request("POST", resource.base_path(namespace),
                                         body=manifest.obj,
                                         query={"fieldValidation": "Strict"})
        except StatusError as exc:
            ctx.err(exc.with_source("creating", manifest.source).render() + "\n")
            failed = True
            continue
        name = (created.get("metadata") or {}).get("name", "")
        if a.output == "name":
            ctx.out(f"{kind_name_for(resource.kind, resource.api_version)}/{name}\n")
        else:
            ctx.out(f"{kind_name_for(resource.kind, resource.api_version)}/{name} created\n")
    return 1 if failed else 0


def _create_named(ctx: Context, a: argparse.Namespace) -> int:
    kind, *rest = a.args
    if kind in ("namespace", "ns") and len(rest) == 1:
        ctx.client.request("POST", "/api/v1/namespaces",
                           body={"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": rest[0]}})
        ctx.out(f"namespace/{rest[0]} created\n")
        return 0
    raise CliError(f"unknown command \"{' '.join(a.args)}\": use `create -f FILE` or "
                   "`create namespace NAME`")


def cmd_apply(ctx: Context, a: argparse.Namespace) -> int:
    from miniorch.cli.apply import LAST_APPLIED, three_way_patch, with_last_applied
    from miniorch.cli.manifests import read_manifests

    manifests = read_manifests(a.filename or [], recursive=a.recursive)
    plan = [(m, _resource_of(ctx, m.obj)) for m in manifests]
    failed = False
    for manifest, resource in plan:
        namespace = _target_namespace(ctx, resource, manifest.obj)
        name = str((manifest.obj.get("metadata") or {}).get("name", ""))
        kind_name = kind_name_for(resource.kind, resource.api_version)
        if not name:
            ctx.err(f'error: error when retrieving current configuration of:\n'
                    f'Resource: "{resource.plural}", GroupVersionKind: '
                    f'"/{resource.version}, Kind={resource.kind}"\nName: "", Namespace: '
                    f'"{namespace or ""}"\nfrom server for: "{manifest.source}": resource name '
                    "may not be empty\n")
            failed = True
            continue
        path = resource.base_path(namespace) + f"/{name}"
        modified = with_last_applied(manifest.obj)
        try:
            try:
                current = ctx.client.get(path)
            except StatusError as exc:
                if exc.reason != "NotFound":
                    raise
                ctx.client.request("POST", resource.base_path(namespace), body=modified,
                                   query={"fieldManager": "kubectl-client-side-apply",
                                          "fieldValidation": "Strict"})
                ctx.out(f"{kind_name}/{name} created\n")
                continue
            annotations = (current.get("metadata") or {}).get("annotations") or {}
            original = None
            if LAST_APPLIED in annotations:
                original = json.loads(annotations[LAST_APPLIED])
            else:
                ctx.err(f"Warning: resource {resource.plural}/{name} is missing the "
                        f"{LAST_APPLIED} annotation which is required by miniorch apply. "
                        "miniorch apply should only be used on resources created "
                        "declaratively by either miniorch create --save-config or miniorch "
                        "apply. The missing annotation will be patched automatically.\n")
            patch = three_way_patch(original, modified, current, kind=resource.kind)
            if not patch:
                ctx.out(f"{kind_name}/{name} unchanged\n")
                continue
            ctx.client.request("PATCH", path, body=patch,
                               content_type="application/strategic-merge-patch+json",
                               query={"fieldManager": "kubectl-client-side-apply",
                                      "fieldValidation": "Strict"})
            ctx.out(f"{kind_name}/{name} configured\n")
        except StatusError as exc:
            verb = "applying patch" if "current" in locals() else "creating"
            ctx.err(exc.with_source(verb, manifest.source).render() + "\n")
            failed = True
    return 1 if failed else 0


# -- label / annotate ---------------------------------------------------------------------


def _change_map(ctx: Context, a: argparse.Namespace, field: str, verb: str) -> int:
    args = list(a.args)
    changes = [x for x in args if "=" in x or (x.endswith("-") and "/" not in x)]
    targets_args = [x for x in args if x not in changes]
    if not changes:
        raise CliError(f"at least one {field[:-1]} update is required")
    targets = resolve_targets(ctx, targets_args)
    set_values: dict[str, str] = {}
    removals: list[str] = []
    for change in changes:
        if "=" in change:
            key, _, value = change.partition("=")
            set_values[key] = value
        else:
            removals.append(change[:-1])
    for resource, names in targets:
        if not names and a.all:
            result = ctx.client.get(path_for(ctx, resource))
            names = [(i.get("metadata") or {}).get("name", "") for i in result.get("items") or []]
        for name in names:
            path = path_for(ctx, resource, name)
            current = (ctx.client.get(path).get("metadata") or {}).get(field) or {}
            if not a.overwrite:
                for key, value in set_values.items():
                    if key in current and current[key] != value:
                        raise CliError(f"'{key}' already has a value ({current[key]}), and "
                                       "--overwrite is false")
            patch: dict[str, Any] = dict(set_values)
            patch.update({k: None for k in removals})
            if all(current.get(k) == v for k, v in set_values.items()) and \
                    not any(k in current for k in removals):
                ctx.out(f"{kind_name_for(resource.kind, resource.api_version)}/{name} "
                        f"not {verb}\n")
                continue
            ctx.client.request("PATCH", path, body={"metadata": {field: patch}},
                               content_type="application/merge-patch+json")
            ctx.out(f"{kind_name_for(resource.kind, resource.api_version)}/{name} {verb}\n")
    return 0


def cmd_label(ctx: Context, a: argparse.Namespace) -> int:
    return _change_map(ctx, a, "labels", "labeled")


def cmd_annotate(ctx: Context, a: argparse.Namespace) -> int:
    return _change_map(ctx, a, "annotations", "annotated")


# -- logs ---------------------------------------------------------------------------------


def pick_container(ctx: Context, pod: Obj, wanted: str | None) -> str:
    containers = [str(c.get("name", "")) for c in (pod.get("spec") or {}).get("containers") or []]
    name = (pod.get("metadata") or {}).get("name", "")
    if wanted:
        if wanted not in containers:
            raise CliError(f"container {wanted} is not valid for pod {name}")
        return wanted
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container")
    if isinstance(annotated, str) and annotated in containers:
        return annotated
    if not containers:
        raise CliError(f"pod {name} has no containers")
    if len(containers) > 1:
        ctx.err(f'Defaulted container "{containers[0]}" out of: {", ".join(containers)}\n')
    return containers[0]


def _pod_name(ctx: Context, arg: str) -> str:
    kind, sep, name = arg.partition("/")
    if sep:
        if lookup_resource(ctx, kind).kind != "Pod":
            raise CliError(f"only pods are supported here, not {kind}")
        return name
    return arg


def cmd_logs(ctx: Context, a: argparse.Namespace) -> int:
    name = _pod_name(ctx, a.pod)
    pod_path = path_for(ctx, lookup_resource(ctx, "pods"), name)
    pod = ctx.client.get(pod_path)
    container = pick_container(ctx, pod, a.container)
    query: dict[str, Any] = {"container": container}
    if a.follow:
        query["follow"] = "true"
    if a.tail is not None and a.tail >= 0:
        query["tailLines"] = a.tail
    if a.timestamps:
        query["timestamps"] = "true"
    if a.previous:
        query["previous"] = "true"
    if a.limit_bytes:
        query["limitBytes"] = a.limit_bytes
    if a.since:
        query["sinceSeconds"] = _parse_duration(a.since)
    response = ctx.client.open("GET", pod_path + "/log", query=query, accept="*/*",
                               stream=bool(a.follow))
    out = getattr(ctx.stdout, "buffer", None)
    try:
        for chunk in response.chunks():
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                ctx.out(chunk.decode(errors="replace"))
    finally:
        if a.follow:
            response.close()
    return 0


def _parse_duration(text: str) -> int:
    import re

    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CliError(f'invalid argument "{text}" for "--since" flag: time: invalid duration')
    for number, unit in parts:
        total += float(number) * units[unit]
    return max(1, int(total))


# -- cluster-info / version / api-resources -----------------------------------------------


def cmd_cluster_info(ctx: Context, a: argparse.Namespace) -> int:
    color = ctx.stdout.isatty()

    def line(name: str, link: str) -> str:
        if color:
            return f"\x1b[0;32m{name}\x1b[0m is running at \x1b[0;33m{link}\x1b[0m\n"
        return f"{name} is running at {link}\n"

    server = ctx.config.server
    text = line("Kubernetes control plane", server)
    from miniorch.core.settings import Settings
    from miniorch.dashboard import read_dashboard_url
    dashboard = read_dashboard_url(Settings(home=ctx.home).dashboard_file)
    if dashboard:
        text += line("Dashboard", f"{dashboard} (log in with `miniorch dashboard`)")
    services = ctx.client.get("/api/v1/namespaces/kube-system/services",
                              labelSelector="kubernetes.io/cluster-service=true")
    for svc in services.get("items") or []:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            ip = ingress[0].get("ip") or ingress[0].get("hostname") or ""
            link = "".join(f"http://{ip}:{p.get('port')} " for p in spec.get("ports") or [])
        else:
            svc_name = str(meta.get("name", ""))
            if spec.get("ports"):
                port = spec["ports"][0]
                scheme = "https" if port.get("name") == "https" or port.get("port") == 443 else ""
                port_name = str(port.get("name") or "")
                # utilnet.JoinSchemeNamePort: scheme:name:port, name:port, or name.
                if scheme:
                    svc_name = f"{scheme}:{svc_name}:{port_name}"
                elif port_name:
                    svc_name = f"{svc_name}:{port_name}"
            link = f"{server}/api/v1/namespaces/{meta.get('namespace', 'kube-system')}" \
                   f"/services/{svc_name}/proxy"
        title = (meta.get("labels") or {}).get("kubernetes.io/name") or meta.get("name", "")
        text += line(str(title), link)
    text += ("\nTo further debug and diagnose cluster problems, use "
             "'kubectl cluster-info dump'.\n")
    ctx.out(text)
    return 0


def cmd_api_resources(ctx: Context, a: argparse.Namespace) -> int:
    # As kubectl (`--cached=false` by default): the server's kinds now, which also
    # renews the cache the other verbs read.
    ctx.discovery.refresh(force=True)
    rows = ["NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\n"]
    for r in sorted(ctx.discovery.resources(), key=lambda r: (r.group, r.plural)):
        if a.namespaced is not None and r.namespaced != (a.namespaced == "true"):
            continue
        rows.append(f"{r.plural}\t{','.join(r.short_names)}\t{r.api_version}\t"
                    f"{'true' if r.namespaced else 'false'}\t{r.kind}\n")
    if a.output == "name":
        ctx.out("".join(f"{row.split(chr(9))[0]}\n" for row in rows[1:]))
        return 0
    writer = new_table_writer()
    writer.write("".join(rows))
    ctx.out(writer.flush())
    return 0
