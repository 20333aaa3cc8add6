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


def _scan(method: str, path: str) -> Match | object | None:
    """What the table says, read the plain way: every route's regex, in order."""
    wrong = None
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method.upper():
            return Match(route, found.groupdict())
        wrong = route
    return wrong


def test_the_literal_prefix_index_answers_as_a_scan_of_every_route() -> None:
    """``match`` tries only the routes whose literal start the path has (a callback was matched against
    13 regexes before its own): for every route's path, and near misses, it answers as the full scan."""
    paths = {"/", "/v1", "/v1/", "/v1/workspaces//runs", "/v1/workspaces/w/runs/\n", "/healthz"}
    for route in ROUTES:
        concrete = route.template.replace("{", "").replace("}", "")
        paths |= {concrete, concrete + "/", concrete + "\n", concrete[:-1], "/x" + concrete}
    for path in paths:
        for method in ("GET", "post", "PUT", "DELETE", "TRACE"):
            assert match(method, path) == _scan(method, path), (method, path)


def test_every_route_has_a_literal_start_its_regex_requires() -> None:
    from servo.http.routes import literal_prefix

    for route in ROUTES:
        prefix = literal_prefix(route.template)
        assert prefix.startswith("/") and "{" not in prefix
        assert route.pattern.pattern.startswith("^" + prefix)
