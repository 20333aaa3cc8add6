"""Names a Terraform module declares (read with python-hcl2) and the names its expressions refer to
(the source with its comments blanked). What `terraform validate`
would say about undeclared names, offline; and the module's locals re-assembled as a provider-free
configuration the real Terraform can evaluate."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra import _tf, _tfrun

# var.x, local.x, module.x[..].out, data.t.n, t.n for a resource type t (types always hold a "_").
_REF = re.compile(
    r"(?<![\w.\-/])(?P<head>var|local|module|data|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)"
    r"\.(?P<name>[a-zA-Z_][\w-]*)(?:\[[^\]]*\])?(?:\.(?P<attr>[a-zA-Z_]\w*))?"
)
MODULE_META = {"source", "version", "for_each", "count", "depends_on", "providers"}


def _label(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def _without_comments(text: str) -> str:
    """The text with `#` and `//` comments blanked (outside strings), so only live expressions are scanned."""
    out: list[str] = []
    for line in text.splitlines():
        in_string = escaped = False
        for i, char in enumerate(line):
            if in_string:
                escaped = not escaped and char == "\\"
                in_string = escaped or char != '"'
            elif char == '"':
                in_string = True
            elif char == "#" or line.startswith("//", i):
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def _without_moved_sources(text: str) -> str:
    """The text with each `moved` block's `from` blanked: it names an address that no longer exists
    (the point of the block); its `to` must be declared like any reference."""
    out: list[str] = []
    in_moved = False
    for line in text.splitlines():
        in_moved = line == "moved {" or (in_moved and line != "}")
        out.append("" if in_moved and line.lstrip().startswith("from ") else line)
    return "\n".join(out)


def _dynamic_labels(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "dynamic":
                found |= {_label(k) for entry in inner for k in entry}
            found |= _dynamic_labels(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _dynamic_labels(inner)
    return found


@dataclass
class Module:
    folder: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, str] = field(default_factory=dict)  # name -> `name = expr`, as written
    variable_blocks: dict[str, str] = field(default_factory=dict)  # name -> the block, as written
    resources: set[str] = field(default_factory=set)
    data: set[str] = field(default_factory=set)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    iterators: set[str] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)

    def child(self, name: str) -> Module | None:
        source = _label(str(self.modules[name].get("source", "")))
        return read(self.folder / source) if source.startswith(".") else None


@cache
def read(folder: Path) -> Module:
    module = Module(folder.resolve())
    for path in sorted(folder.glob("*.tf")):
        parsed = _tf.parse(path)
        module.iterators |= _dynamic_labels(parsed)
        text = path.read_text()
        module.texts.append(_without_moved_sources(_without_comments(text)))
        _source_blocks(text, module)
        for kind, entries in parsed.items():
            for entry in entries if isinstance(entries, list) else []:
                if kind == "locals":
                    continue
                for label, body in entry.items():
                    if kind == "variable":
                        module.variables[_label(label)] = body
                    elif kind == "output":
                        module.outputs.add(_label(label))
                    elif kind == "module":
                        module.modules[_label(label)] = body
                    elif kind in ("resource", "data"):
                        names = {f"{_label(label)}.{_label(n)}" for n in body}
                        (module.resources if kind == "resource" else module.data).update(names)
    return module


_TOP = re.compile(r'^(locals|variable "(\w+)") \{$')
_ATTRIBUTE = re.compile(r"^  (\w+)\s*=")


def _source_blocks(text: str, module: Module) -> None:
    """Locals and variable blocks as written. The text is `terraform fmt`-clean (iac_check.sh), so a
    top-level block ends at the first `}` in column 0 and each local starts at a two-space indent;
    the source is used as is, so Terraform reads exactly what is written."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        top = _TOP.match(lines[i])
        if not top:
            i += 1
            continue
        end = lines.index("}", i)
        body = lines[i + 1 : end]
        if top.group(2):
            module.variable_blocks[top.group(2)] = "\n".join(lines[i : end + 1])
        else:
            name = None
            for line in body:
                start = _ATTRIBUTE.match(line)
                if start:
                    name = start.group(1)
                    module.locals[name] = line
                elif name and line.strip() and not line.startswith("  #"):
                    module.locals[name] += "\n" + line
        i = end + 1


def refs(text: str) -> list[re.Match[str]]:
    return list(_REF.finditer(text))


def undeclared(module: Module) -> list[str]:
    """References to names the module does not declare, and module calls that do not fit the child."""
    problems: list[str] = []
    where = module.folder.name
    for text in module.texts:
        for ref in refs(text):
            head, name, attr = ref["head"], ref["name"], ref["attr"]
            if head == "var" and name not in module.variables:
                problems.append(f"{where}: var.{name} is not declared")
            elif head == "local" and name not in module.locals:
                problems.append(f"{where}: local.{name} is not declared")
            elif head == "data" and f"{name}.{attr}" not in module.data:
                problems.append(f"{where}: data.{name}.{attr} is not declared")
            elif head == "module":
                if name not in module.modules:
                    problems.append(f"{where}: module.{name} is not declared")
                    continue
                child = module.child(name)
                if child is not None and attr is not None and attr not in child.outputs:
                    problems.append(f"{where}: module.{name} has no output {attr}")
            elif head not in ("var", "local", "data", "module", *module.iterators) and (
                f"{head}.{name}" not in module.resources
            ):
                problems.append(f"{where}: resource {head}.{name} is not declared")
    for name, call in module.modules.items():
        child = module.child(name)
        if child is None:
            continue
        passed = {k for k in call if not k.startswith("__")} - MODULE_META
        for unknown in sorted(passed - set(child.variables)):
            problems.append(
                f"{where}: module.{name} passes {unknown}, which {child.folder.name} does not declare"
            )
        required = {v for v, body in child.variables.items() if "default" not in body}
        for missing in sorted(required - passed):
            problems.append(f"{where}: module.{name} does not pass the required {missing}")
    return problems


def evaluable_locals(module: Module, given: dict[str, Any]) -> list[str]:
    """Locals that need no provider: they refer only to variables, path.module and such locals.
    ``given`` names the locals a test supplies as values (e.g. a project number a data source reads)."""
    ok: set[str] = set(given)
    changed = True
    while changed:
        changed = False
        for name, text in module.locals.items():
            if name in ok:
                continue
            heads = [(r["head"], r["name"]) for r in refs(text.split("=", 1)[1])]
            if all(h == "var" or (h == "local" and n in ok) for h, n in heads):
                ok.add(name)
                changed = True
    return sorted(ok - set(given))


def evaluate_locals(
    folder: Path, variables: dict[str, Any], given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every provider-free local of the module, evaluated by the real Terraform with ``variables``
    (variable blocks copied as written, so their validations run too)."""
    module = read(folder)
    given = given or {}
    names = evaluable_locals(module, given)
    parts = list(module.variable_blocks.values())
    parts += [
        "locals {\n"
        + "\n".join(module.locals[n] for n in names)
        + "\n"
        + "\n".join(f"{n} = jsondecode({_tfrun.hcl_string(json.dumps(v))})" for n, v in given.items())
        + "\n}"
    ]
    parts += [f'output "{n}" {{\n  value = local.{n}\n}}' for n in names]
    config = "\n\n".join(parts).replace("path.module", _tfrun.hcl_string(str(module.folder)))
    return _tfrun.outputs(config, variables)
