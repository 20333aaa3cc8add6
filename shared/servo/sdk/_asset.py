"""``@asset``: validate a function's declaration once, attach a frozen AssetDefinition, return it unchanged.

There is no registry: :func:`servo.sdk.discover_assets` finds decorated functions by scanning modules
(style §4.11). Dependencies are explicit, either ``deps=[...]`` or a parameter annotated with
``AssetIn["ns.name"]`` (or ``Annotated[T, AssetIn("ns.name")]``, which type checkers accept); a
parameter named like an asset in ``deps=`` receives that asset's output. Any other parameter is an
error at decoration time, because the worker could never fill it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import marshal
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, TypeVar, get_args, get_origin, overload

from servo.core.errors import InvalidAssetKey, ServoError
from servo.core.keys import AssetKey
from servo.core.retry import DEFAULT_MAX_RETRIES
from servo.sdk._definitions import CodeLocation, attached, code_location
from servo.sdk._errors import AssetDefinitionError
from servo.sdk._partitions import PartitionDimension, normalize_partitions

ASSET_ATTR = "__servo_asset__"
DEFAULT_TIMEOUT_SECONDS = 3600
MAX_RETRIES_LIMIT = 100
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
_SEGMENT_RE = re.compile(r"[a-z][a-z0-9_]*")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class AssetIn:
    """Marks a parameter as the output of an upstream asset: ``def b(ctx, a: AssetIn["raw.a"])``."""

    key: str

    def __class_getitem__(cls, key: str) -> AssetIn:
        return cls(key)


@dataclass(frozen=True, slots=True)
class Resources:
    """Compute sizing recorded in the manifest (not dependency injection)."""

    cpu_millicores: int = 1000
    memory_mib: int = 1024

    def __post_init__(self) -> None:
        for name in ("cpu_millicores", "memory_mib"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise TypeError(f"Resources.{name} must be a positive int, not {value!r}")


@dataclass(frozen=True, slots=True)
class AssetDep:
    """One upstream edge; ``parameter_name`` is set when a parameter receives the upstream's output."""

    upstream_key: AssetKey
    parameter_name: str | None = None
    mapping: str = "identity"


@dataclass(frozen=True, slots=True)
class AssetDefinition:
    """Everything Servo knows about one asset, fixed at decoration time."""

    key: AssetKey
    description: str
    deps: tuple[AssetDep, ...]
    partitions: tuple[PartitionDimension, ...]
    owners: tuple[str, ...]
    tags: Mapping[str, str] = field(hash=False)
    max_retries: int
    timeout_seconds: int
    resources: Resources
    code: CodeLocation
    transform_fingerprint: str
    is_async: bool
    # automation §6.6: minutes an unpartitioned materialization stays fresh (None: the default 1440).
    freshness_minutes: int | None = None

    @property
    def upstream_keys(self) -> tuple[str, ...]:
        return tuple(str(dep.upstream_key) for dep in self.deps)


def definition_of(obj: object) -> AssetDefinition:
    """The definition attached to a decorated function (or ``obj`` itself if it is one)."""
    return attached(obj, AssetDefinition, ASSET_ATTR, "an @asset function")


MAX_FRESHNESS_MINUTES = 5_270_400  # ten years; the deploy API's bound too


def _fail(where: CodeLocation, message: str) -> AssetDefinitionError:
    return AssetDefinitionError(f"{where}: {message}", details=where.details)


def _key(where: CodeLocation, raw: str, what: str) -> AssetKey:
    try:
        return AssetKey.parse(raw)
    except InvalidAssetKey as exc:
        raise InvalidAssetKey(
            f"{where}: {what}: {exc.message}",
            details={**exc.details, "file": where.file_path, "line": where.line_number},
        ) from None


def _default_namespace(module: str) -> str:
    last = module.rsplit(".", 1)[-1]
    return last if _SEGMENT_RE.fullmatch(last) else "default"


def _fingerprint(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(fn).encode("utf-8")
    except (OSError, TypeError):
        # No source on disk (exec'd code): the bytecode still changes whenever the transform does.
        source = marshal.dumps(fn.__code__)
    return hashlib.sha256(source).hexdigest()[:16]


def _annotation_key(annotation: object) -> str | None:
    """The key an annotation names through AssetIn, if any; string annotations are read by AST only."""
    if isinstance(annotation, AssetIn):
        return annotation.key
    if get_origin(annotation) is Annotated:
        marks = [m for m in get_args(annotation)[1:] if isinstance(m, AssetIn)]
        return marks[0].key if marks else None
    if isinstance(annotation, str):
        try:
            tree = ast.parse(annotation, mode="eval")
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript):
                target, arg = node.value, node.slice
            elif isinstance(node, ast.Call) and node.args:
                target, arg = node.func, node.args[0]
            else:
                continue
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if name == "AssetIn" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return arg.value
    return None


def _explicit_dep(where: CodeLocation, item: object) -> AssetKey:
    if isinstance(item, AssetKey):
        return item
    if isinstance(item, str):
        return _key(where, item, "deps")
    if isinstance(item, AssetDefinition) or isinstance(getattr(item, ASSET_ATTR, None), AssetDefinition):
        return definition_of(item).key
    raise _fail(where, f"deps entries must be asset keys ('ns.name') or @asset functions, not {item!r}")


def _dependencies(
    fn: Callable[..., Any], where: CodeLocation, explicit: Sequence[AssetKey]
) -> tuple[AssetDep, ...]:
    params = list(inspect.signature(fn).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise _fail(where, f"{fn.__name__}() must take the asset context as its first positional parameter")
    by_name: dict[str, list[AssetKey]] = {}
    for key in explicit:
        by_name.setdefault(key.name, []).append(key)
    deps: list[AssetDep] = []
    for param in params[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise _fail(where, f"parameter {param.name!r}: *args/**kwargs cannot receive upstream assets")
        raw = _annotation_key(param.annotation)
        if raw is not None:
            key = _key(where, raw, f"parameter {param.name!r}")
        elif len(by_name.get(param.name, [])) == 1:
            key = by_name[param.name][0]
        else:
            hint = (
                "is ambiguous: several deps= assets have that name"
                if param.name in by_name
                else (
                    'is not an upstream asset: annotate it with AssetIn["ns.name"], name it after an asset '
                    "in deps=, or remove it"
                )
            )
            raise _fail(where, f"parameter {param.name!r} {hint}")
        if any(dep.upstream_key == key for dep in deps):
            raise _fail(
                where, f"parameter {param.name!r}: asset {key} is already received by another parameter"
            )
        deps.append(AssetDep(key, param.name))
    for key in explicit:
        if not any(dep.upstream_key == key for dep in deps):
            deps.append(AssetDep(key))
    return tuple(deps)


def _int_option(where: CodeLocation, name: str, value: object, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _fail(where, f"{name} must be an int in {lo}..{hi}, not {value!r}")
    return value


def _strings(where: CodeLocation, name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _fail(where, f"{name} must be a list of strings, not {value!r}")
    items = tuple(value)
    if not all(isinstance(v, str) and v for v in items):
        raise _fail(where, f"{name} must be a list of non-empty strings, not {value!r}")
    return items


def _tags(where: CodeLocation, value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(where, f"tags must be a mapping of str to str, not {value!r}")
    return MappingProxyType(dict(sorted(value.items())))


def _define(fn: Callable[..., Any], options: Mapping[str, Any]) -> AssetDefinition:
    if not inspect.isfunction(fn):
        raise TypeError(f"@asset decorates functions, not {fn!r}")
    where = code_location(fn)
    if hasattr(fn, ASSET_ATTR):
        raise _fail(where, f"{fn.__name__}() is already an @asset")
    namespace = options["namespace"] or _default_namespace(fn.__module__)
    name = options["name"] or fn.__name__
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise _fail(where, "name and namespace must be strings")
    # The "/" spelling splits exactly at the namespace, so a dotted namespace is rejected, not re-split.
    key = _key(where, f"{namespace}/{name}", "asset key")
    explicit = [_explicit_dep(where, item) for item in _strings_or_items(where, options["deps"])]
    description = options["description"]
    if description is None:
        doc = inspect.getdoc(fn) or ""
        description = next((line.strip() for line in doc.splitlines() if line.strip()), "")
    if not isinstance(description, str):
        raise _fail(where, f"description must be a string, not {description!r}")
    resources = options["resources"] if options["resources"] is not None else Resources()
    if not isinstance(resources, Resources):
        raise _fail(where, f"resources must be servo.sdk.Resources(...), not {resources!r}")
    try:
        partitions = normalize_partitions(options["partitions"])
    except (TypeError, ServoError) as exc:
        raise _fail(where, str(exc)) from None
    return AssetDefinition(
        key=key,
        description=description,
        deps=_dependencies(fn, where, explicit),
        partitions=partitions,
        owners=_strings(where, "owners", options["owners"] or ()),
        tags=_tags(where, options["tags"] or {}),
        max_retries=_int_option(where, "max_retries", options["max_retries"], 0, MAX_RETRIES_LIMIT),
        timeout_seconds=_int_option(
            where, "timeout_seconds", options["timeout_seconds"], 1, MAX_TIMEOUT_SECONDS
        ),
        resources=resources,
        code=where,
        transform_fingerprint=_fingerprint(fn),
        is_async=inspect.iscoroutinefunction(fn),
        freshness_minutes=None
        if options["freshness_minutes"] is None
        else _int_option(where, "freshness_minutes", options["freshness_minutes"], 0, MAX_FRESHNESS_MINUTES),
    )


def _strings_or_items(where: CodeLocation, deps: object) -> list[object]:
    if deps is None:
        return []
    if isinstance(deps, str) or not isinstance(deps, Iterable):
        raise _fail(where, f"deps must be a list, not {deps!r}")
    return list(deps)


@overload
def asset(fn: F, /) -> F: ...


@overload
def asset(
    *,
    name: str | None = None,
    namespace: str | None = None,
    description: str | None = None,
    deps: Sequence[str | Callable[..., Any]] | None = None,
    partitions: PartitionDimension | Sequence[PartitionDimension] | None = None,
    owners: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    resources: Resources | None = None,
    freshness_minutes: int | None = None,
) -> Callable[[F], F]: ...


def asset(fn: Any = None, /, **options: Any) -> Any:
    """Declare a function as a Servo asset; use bare (``@asset``) or with keyword options.

    Args:
        name: the asset name (default: the function name).
        namespace: default: the module's last dotted segment when it is a valid key segment, else
            ``"default"``.
        description: default: the first line of the docstring.
        deps: upstream assets, as keys (``"ns.name"`` or ``"ns/name"``) or @asset functions.
        partitions: one dimension, or a list of dimensions (multi-dimensional).
        owners: who to ask about the asset.
        tags: free-form ``str -> str`` labels.
        max_retries: retries after the first failed attempt (default 2, so 3 attempts).
        timeout_seconds: the bound on one attempt (default 3600).
        resources: compute sizing, ``Resources(cpu_millicores, memory_mib)``.
        freshness_minutes: how long an unpartitioned materialization stays fresh in the staleness
            report (default 1440; 0 turns the policy off).

    Returns:
        The function itself, unchanged except for its ``__servo_asset__`` attribute.

    Raises:
        AssetDefinitionError: a parameter that is neither the context nor an upstream, or a bad option.
        InvalidAssetKey: a bad asset or dependency key. Both messages start with ``file:line``.
    """
    allowed = {
        "name": None,
        "namespace": None,
        "description": None,
        "deps": None,
        "partitions": None,
        "owners": None,
        "tags": None,
        "max_retries": DEFAULT_MAX_RETRIES,
        "timeout_seconds": DEFAULT_TIMEOUT_SECONDS,
        "resources": None,
        "freshness_minutes": None,
    }
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"@asset got unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    settings = {**allowed, **options}

    def decorate(target: F) -> F:
        setattr(target, ASSET_ATTR, _define(target, settings))
        return target

    if fn is None:
        return decorate
    if not callable(fn):
        raise TypeError(f"@asset takes keyword options only (e.g. @asset(name=...)), got {fn!r}")
    if options:
        raise TypeError("@asset takes either a function or keyword options, not both")
    return decorate(fn)
