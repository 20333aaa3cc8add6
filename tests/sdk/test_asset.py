from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import pytest
from servo import AssetIn, DailyPartitions, Resources, StaticPartitions, asset
from servo.core.errors import InvalidAssetKey
from servo.sdk import AssetDefinition, AssetDefinitionError, definition_of

from tests.sdk.helpers import load_module


def test_bare_decorator_returns_the_function_unchanged_with_a_frozen_definition() -> None:
    def load(ctx: Any) -> dict[str, int]:
        """Load raw events.

        A longer explanation.
        """
        return {"row_count": 3}

    decorated = asset(load)
    assert decorated is load
    assert load(None) == {"row_count": 3}
    defn = definition_of(load)
    assert isinstance(defn, AssetDefinition)
    assert str(defn.key) == "test_asset.load"  # namespace: the module's last segment
    assert defn.description == "Load raw events."
    assert (defn.max_retries, defn.timeout_seconds) == (2, 3600)
    assert defn.resources == Resources(cpu_millicores=1000, memory_mib=1024)
    assert defn.deps == () and defn.partitions == ()
    assert len(defn.transform_fingerprint) == 16 and int(defn.transform_fingerprint, 16) >= 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        defn.max_retries = 5  # type: ignore[misc]


def test_keyword_options_are_recorded() -> None:
    @asset(
        name="daily_sales",
        namespace="analytics",
        description="Sales per day",
        partitions=DailyPartitions(start="2024-01-01"),
        owners=["data@acme.io"],
        tags={"tier": "gold"},
        max_retries=0,
        timeout_seconds=60,
        resources=Resources(cpu_millicores=2000, memory_mib=4096),
    )
    async def sales(context: Any) -> None:
        return None

    defn = definition_of(sales)
    assert str(defn.key) == "analytics.daily_sales"
    assert defn.description == "Sales per day"
    assert defn.partitions == (DailyPartitions(start="2024-01-01"),)
    assert defn.owners == ("data@acme.io",) and dict(defn.tags) == {"tier": "gold"}
    assert (defn.max_retries, defn.timeout_seconds) == (0, 60)
    assert defn.resources.memory_mib == 4096
    assert defn.is_async


def test_empty_parentheses_work_like_the_bare_form() -> None:
    @asset()
    def thing(ctx: Any) -> None: ...

    assert str(definition_of(thing).key) == "test_asset.thing"


def test_deps_by_key_spelling_and_by_function() -> None:
    @asset(namespace="raw")
    def events(ctx: Any) -> None: ...

    @asset(namespace="staging", deps=[events, "raw/users", "raw.orders"])
    def cleaned(ctx: Any) -> None: ...

    assert definition_of(cleaned).upstream_keys == ("raw.events", "raw.users", "raw.orders")
    assert all(dep.parameter_name is None for dep in definition_of(cleaned).deps)


def test_deps_by_annotation_and_by_parameter_named_after_a_dep() -> None:
    @asset(namespace="raw")
    def events(ctx: Any) -> None: ...

    @asset(namespace="staging", deps=[events])
    def joined(
        ctx: Any,
        events: dict[str, Any],
        orders: Annotated[dict[str, Any], AssetIn("raw/orders")],
    ) -> None: ...

    deps = {str(d.upstream_key): d.parameter_name for d in definition_of(joined).deps}
    assert deps == {"raw.orders": "orders", "raw.events": "events"}
    assert all(d.mapping == "identity" for d in definition_of(joined).deps)


def test_string_annotations_are_read_without_evaluating_them(tmp_path: Path) -> None:
    module = load_module(
        tmp_path,
        "sales",
        """
        from __future__ import annotations
        from servo import asset, AssetIn

        @asset
        def report(ctx, daily: AssetIn["analytics.daily"], extra: Undefined[AssetIn("raw.x")]):
            pass
        """,
    )
    deps = {str(d.upstream_key): d.parameter_name for d in definition_of(module.report).deps}
    assert deps == {"analytics.daily": "daily", "raw.x": "extra"}
    assert str(definition_of(module.report).key) == "sales.report"


def test_subscripted_asset_in_is_an_evaluated_marker(tmp_path: Path) -> None:
    module = load_module(
        tmp_path,
        "evaluated",
        """
        from servo import asset, AssetIn

        @asset
        def report(ctx, daily: AssetIn["analytics.daily"]):
            pass
        """,
    )
    assert module.report.__annotations__["daily"] == AssetIn("analytics.daily")
    (dep,) = definition_of(module.report).deps
    assert (str(dep.upstream_key), dep.parameter_name) == ("analytics.daily", "daily")


def test_a_parameter_that_is_not_an_upstream_is_a_type_error_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as info:
        load_module(
            tmp_path,
            "bad",
            """
            from servo import asset

            @asset
            def b(ctx, a):
                pass
            """,
        )
    assert isinstance(info.value, AssetDefinitionError)
    assert f"{tmp_path / 'bad.py'}:4:" in str(info.value)
    assert "parameter 'a'" in str(info.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"namespace": "Raw"}, "namespace"),
        ({"name": "ev-ents"}, "name"),
        ({"namespace": "raw.x"}, "namespace"),
        ({"deps": ["raw..events"]}, "deps"),
        ({"deps": ["analytics/"]}, "deps"),
    ],
)
def test_bad_keys_raise_invalid_asset_key_with_file_and_line(options: dict[str, Any], fragment: str) -> None:
    def f(ctx: Any) -> None: ...

    with pytest.raises(InvalidAssetKey) as info:
        asset(**options)(f)
    assert f"{__file__}:{f.__code__.co_firstlineno}:" in str(info.value)
    assert fragment in str(info.value)
    assert not hasattr(f, "__servo_asset__")


def test_function_name_that_is_not_a_key_segment_is_rejected() -> None:
    def Bad(ctx: Any) -> None: ...

    with pytest.raises(InvalidAssetKey, match="name must be"):
        asset(Bad)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"owners": "me"}, "owners"),
        ({"tags": {"a": 1}}, "tags"),
        ({"deps": [42]}, "deps"),
        ({"resources": {"cpu": 1}}, "resources"),
        ({"partitions": "date"}, "partitions"),
    ],
)
def test_bad_options_are_definition_errors(options: dict[str, Any], fragment: str) -> None:
    def f(ctx: Any) -> None: ...

    with pytest.raises(AssetDefinitionError, match=fragment):
        asset(**options)(f)


def test_misuse_of_the_decorator_itself() -> None:
    with pytest.raises(TypeError, match="keyword"):
        asset("raw.events")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="unknown option"):
        asset(group="x")  # type: ignore[call-overload]

    def no_context() -> None: ...

    with pytest.raises(AssetDefinitionError, match="first positional parameter"):
        asset(no_context)

    def varargs(ctx: Any, *rest: Any) -> None: ...

    with pytest.raises(AssetDefinitionError, match=r"\*args"):
        asset(varargs)

    def once(ctx: Any) -> None: ...

    asset(once)
    with pytest.raises(AssetDefinitionError, match="already an @asset"):
        asset(once)


def test_duplicate_partition_dimension_names_are_rejected() -> None:
    def f(ctx: Any) -> None: ...

    with pytest.raises(AssetDefinitionError, match="twice"):
        asset(partitions=[DailyPartitions(), StaticPartitions("date", ["a"])])(f)


def test_two_parameters_for_one_upstream_are_rejected() -> None:
    def f(
        ctx: Any,
        a: Annotated[Any, AssetIn("raw.a")],
        b: Annotated[Any, AssetIn("raw/a")],
    ) -> None: ...

    with pytest.raises(AssetDefinitionError, match="already received"):
        asset(f)


def test_fingerprint_follows_the_source_including_the_decorator(tmp_path: Path) -> None:
    source = """
        from servo import asset

        @asset(max_retries={n})
        def x(ctx):
            return {body}
        """
    one = definition_of(load_module(tmp_path, "m1", source.format(n=1, body=1)).x).transform_fingerprint
    same = definition_of(load_module(tmp_path, "m2", source.format(n=1, body=1)).x).transform_fingerprint
    retries = definition_of(load_module(tmp_path, "m3", source.format(n=2, body=1)).x).transform_fingerprint
    body = definition_of(load_module(tmp_path, "m4", source.format(n=1, body=2)).x).transform_fingerprint
    assert one == same
    assert len({one, retries, body}) == 3


def test_no_global_registry_the_same_key_can_be_declared_in_two_scopes() -> None:
    def make() -> Any:
        @asset(namespace="raw")
        def events(ctx: Any) -> None: ...

        return events

    assert definition_of(make()).key == definition_of(make()).key


def test_importing_servo_core_does_not_import_the_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, servo.core.planner, servo.core.keys; print('servo.sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
