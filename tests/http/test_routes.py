"""The route table's matching (its regexes are built once per template: a speed cut, issue 21)."""

from __future__ import annotations

from servo.http.routes import ROUTES, Match, match

TASK = "ct1_MDFKQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUEAZGVtby53aGVyZQ"


def test_a_callback_path_resolves_to_its_operation_and_task() -> None:
    for prefix, suffix in (("/v1", ""), ("/api/v1", "Compat")):
        found = match("POST", f"{prefix}/tasks/{TASK}/completed")
        assert isinstance(found, Match)
        assert found.route.operation == f"taskCompleted{suffix}"
        assert found.params == {"task_id": TASK}
    assert match("GET", f"/v1/tasks/{TASK}/completed") == next(
        r for r in ROUTES if r.operation == "taskCompleted"
    )
    assert match("POST", f"/v1/tasks/{TASK}/finished") is None
