"""Output formats of `get`: server-side Tables, `name`, `json`, `yaml`, `jsonpath`.

Tables come from the server (`Accept: ...;as=Table;...`); this module only lays them
out the way kubectl's table printer does (header upper-cased, priority-1 columns only
with `-o wide`, optional NAMESPACE/LABELS columns and `kind/` name prefix, Go
tabwriter alignment). Object formats serialise the JSON the server returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from miniorch.cli.tabwriter import TabWriter, escape_terminal

Obj = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class TableOptions:
    wide: bool = False
    no_headers: bool = False
    show_labels: bool = False
    with_namespace: bool = False
    kind_prefix: str = ""
    """`pod` for `get all`: names print as `pod/kubia-x`."""


def new_table_writer() -> TabWriter:
    """kubectl's GetNewTabWriter: minwidth 6, padding 3, widths remembered."""
    return TabWriter(minwidth=6, padding=3, remember_widths=True)


def format_labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def format_cell(value: Any) -> str:
    """Go's fmt.Sprint of a decoded JSON value, as kubectl prints a Table cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        for i, ch in enumerate(value):
            if ch in "\f\n\r":
                return escape_terminal(value[:i]) + "..."
        return escape_terminal(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_go_float(value)
    if isinstance(value, (list, dict)):
        return escape_terminal(_go_sprint(value))
    return str(value)


def format_go_float(value: float) -> str:
    if value.is_integer() and abs(value) < 1e21:
        text = f"{value:.0f}"
        return text if abs(value) < 1e21 else f"{value:g}"
    return repr(value)


def _go_sprint(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(_go_sprint(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_sprint(v)}" for k, v in sorted(value.items())) + "]"
    return format_cell(value)


def table_lines(table: Obj, options: TableOptions, *, header: bool = True) -> str:
    """The tab-separated text kubectl feeds its tabwriter for one Table."""
    columns: list[Obj] = table.get("columnDefinitions") or []
    rows: list[Obj] = table.get("rows") or []
    shown = [i for i, c in enumerate(columns) if options.wide or not c.get("priority")]
    out: list[str] = []
    if header and not options.no_headers:
        if not rows:
            return ""
        names = [str(columns[i].get("name", "")).upper() for i in shown]
        if options.with_namespace:
            names.insert(0, "NAMESPACE")
        if options.show_labels:
            names.append("LABELS")
        out.append("\t".join(names) + "\n")
    for row in rows:
        cells: list[Any] = row.get("cells") or []
        meta: Obj = (row.get("object") or {}).get("metadata") or {}
        texts = [format_cell(cells[i]) if i < len(cells) else "" for i in shown]
        if options.kind_prefix and texts:
            name_col = next((n for n, i in enumerate(shown)
                             if columns[i].get("format") == "name"), 0)
            texts[name_col] = f"{options.kind_prefix}/{texts[name_col]}"
        if options.with_namespace:
            texts.insert(0, str(meta.get("namespace", "")))
        if options.show_labels:
            texts.append(format_labels(meta.get("labels")))
        out.append("\t".join(texts) + "\n")
    return "".join(out)


def render_table(table: Obj, options: TableOptions) -> str:
    writer = new_table_writer()
    writer.write(table_lines(table, options))
    return writer.flush()


# -- object formats -----------------------------------------------------------------------


def as_list(items: list[Obj]) -> Obj:
    """kubectl's wrapper when several objects (or a list request) are printed."""
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def to_yaml(obj: Any) -> str:
    """YAML the way sigs.k8s.io/yaml writes it: sorted keys, block style, lists not
    indented under their key, literal blocks for multi-line strings, strings that
    would read back as another type double-quoted."""
    import yaml  # lazily

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    resolver = yaml.resolver.Resolver()

    class Dumper(base):  # type: ignore[misc,valid-type]
        pass

    def represent_str(dumper: Any, data: str) -> Any:
        if "\n" in data:
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
        implicit = resolver.resolve(yaml.ScalarNode, data, (True, False))  # type: ignore[no-untyped-call]
        if implicit != "tag:yaml.org,2002:str" or data == "":
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return dumper.represent_scalar("tag:yaml.org,2002:str", data)

    Dumper.add_representer(str, represent_str)
    text: str = yaml.dump(obj, Dumper=Dumper, default_flow_style=False, sort_keys=True,
                          allow_unicode=True, width=1 << 30)
    return text


def name_of_object(obj: Obj, *, kind_name: str) -> str:
    return f"{kind_name}/{(obj.get('metadata') or {}).get('name', '')}"


def kind_name_for(kind: str, api_version: str) -> str:
    """`pod`, `replicationcontroller`, `lease.coordination.k8s.io` (kubectl -o name)."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return f"{kind.lower()}.{group}" if group else kind.lower()
