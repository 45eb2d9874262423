"""Reading manifests for `create -f` / `apply -f` / `delete -f`, with kubectl's errors.

Data flow: each `-f` argument (a file, a directory of .yaml/.yml/.json files, or `-`
for stdin) → YAML documents (JSON is YAML) → objects; a `kind: List` is expanded into
its items. Every file is parsed before anything is sent, so malformed input changes
nothing on the server.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miniorch.cli.errors import CliError

Obj = dict[str, Any]

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# PyYAML's wording → go-yaml's, which is what kubectl users see.
_PROBLEMS = {
    "mapping values are not allowed here": "mapping values are not allowed in this context",
    "could not find expected ':'": "could not find expected ':'",
}


@dataclass(frozen=True)
class Manifest:
    source: str
    """The path as given, or `STDIN` (kubectl's wording in messages)."""
    obj: Obj


def yaml_error_message(exc: Exception) -> str:
    """`yaml: line N: <problem>` in go-yaml's words for a PyYAML error."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        problem = str(exc.problem or exc.context or "invalid YAML")
        if "that cannot start any token" in problem:
            problem = "found character that cannot start any token"
        elif problem.startswith("expected <block end>"):
            problem = "did not find expected key"
        elif problem.startswith("expected ',' or ']'"):
            problem = "did not find expected ',' or ']'"
        elif problem.startswith("expected ',' or '}'"):
            problem = "did not find expected ',' or '}'"
        problem = _PROBLEMS.get(problem, problem)
        return f"yaml: line {exc.problem_mark.line + 1}: {problem}"
    return f"yaml: {exc}"


def _split_documents(text: str) -> list[str]:
    chunks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.startswith("---") and not line[3:].strip():
            chunks.append([])
        else:
            chunks[-1].append(line)
    return ["".join(c) for c in chunks if "".join(c).strip()]


def parse_documents(text: str, *, source: str) -> list[Obj]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs: list[Any] = []
    # kubectl splits the stream at `---` lines first and converts each document on its
    # own, so its error line numbers count from the start of the failing document.
    for chunk in _split_documents(text):
        try:
            docs.append(yaml.load(chunk, Loader=loader))
        except yaml.YAMLError as exc:
            raise CliError(f"error parsing {source}: error converting YAML to JSON: "
                           f"{yaml_error_message(exc)}") from None
    objects: list[Obj] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise CliError(f"error parsing {source}: error unmarshaling JSON: while decoding "
                           "JSON: json: cannot unmarshal "
                           f"{'array' if isinstance(doc, list) else 'string'} into Go value "
                           "of type map[string]interface {}")
        if not doc:
            continue
        if not doc.get("kind"):
            import json
            raise CliError(f'unable to decode "{source}": Object \'Kind\' is missing in '
                           f"'{json.dumps(doc, separators=(',', ':'))}'")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            objects.append(doc)
    return objects


def read_manifests(filenames: list[str], *, recursive: bool = False) -> list[Manifest]:
    if not filenames:
        raise CliError("must specify one of -f and -k")
    manifests: list[Manifest] = []
    for name in filenames:
        if name == "-":
            text = sys.stdin.read()
            manifests.extend(Manifest("STDIN", o) for o in parse_documents(text, source="STDIN"))
            continue
        path = Path(name)
        if not path.exists():
            raise CliError(f'the path "{name}" does not exist')
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern)
                           if p.is_file() and p.suffix in _MANIFEST_SUFFIXES)
        else:
            files = [path]
        for file in files:
            source = str(file) if file != path else name
            try:
                text = file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"error reading {source}: {exc}") from None
            manifests.extend(Manifest(source, o) for o in parse_documents(text, source=source))
    if not manifests:
        raise CliError("no objects passed to apply" if filenames else "no objects passed")
    return manifests
