"""Reads and writes right after a trigger that dispatched its roots itself, on the embedded stack.

The group commit here never publishes on its own (its windows outlast every test): only a reader's
settle or an awaited writer makes it publish, so each answer below is one the stack gives a user
right after the trigger, before any publish of the run (issue 21; docs/contracts.md, "Dispatch by the
trigger").
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from bench import _stacks
from bench._api import deploy, wait_state

NEVER_MS = 600_000
HELD = {"group_commit_window_ms": NEVER_MS, "group_commit_progress_window_ms": NEVER_MS}
DEADLINE_S = 60


def _project(root: Path, body_a: str, body_b: str) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "pair.py").write_text(
        "import json\nimport time\nfrom servo.sdk import asset\n\n\n"
        f'@asset(namespace="pair")\ndef a(context):\n    {body_a}\n\n\n'
        f'@asset(deps=["pair.a"], namespace="pair")\ndef b(context):\n    {body_b}\n'
    )
    return root


def test_a_root_triggered_right_after_its_upstreams_run_ended_gets_that_output(tmp_path: Path) -> None:
    # a's run ended moments ago: its end is held back by the group commit. b's trigger dispatches b
    # itself, and b's payload must still carry a's output (read from the published state, settled first).
    seen = tmp_path / "seen.json"
    project = _project(
        tmp_path / "p",
        'return {"rows": 7}',
        f"open({str(seen)!r}, 'w').write(json.dumps(dict(context.upstream), default=str))",
    )
    with _stacks.embedded(project, tmp_path / "data", HELD) as target:
        http = requests.Session()
        assert deploy(http, target.api_url, "ws", project, "pair") == 2
        url = f"{target.api_url}/v1/workspaces/ws/runs"
        first = http.post(url, json={"selection": ["pair.a"]}, timeout=DEADLINE_S).json()["runId"]
        assert target.timeline.wait_completed(first, 1, DEADLINE_S)
        second = http.post(url, json={"selection": ["pair.b"]}, timeout=DEADLINE_S).json()["runId"]
        assert target.timeline.wait_completed(second, 1, DEADLINE_S)
        assert "pair.a" in json.loads(seen.read_text())


def test_a_same_key_retry_and_a_cancel_right_after_the_trigger(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", "time.sleep(1.5)", "return None")
    with _stacks.embedded(project, tmp_path / "data", HELD) as target:
        http = requests.Session()
        assert deploy(http, target.api_url, "ws", project, "pair") == 2
        url = f"{target.api_url}/v1/workspaces/ws/runs"
        body = {"selection": ["pair.a"], "includeDownstream": True, "runKey": "k1"}
        first = http.post(url, json=body, timeout=DEADLINE_S)
        assert first.status_code == 201, first.text
        run_id = first.json()["runId"]
        again = http.post(url, json=body, timeout=DEADLINE_S)
        assert (again.status_code, again.json()["runId"]) == (200, run_id)
        cancel = http.post(f"{url}/{run_id}/cancel", json={}, timeout=DEADLINE_S)
        assert cancel.status_code in (200, 202), cancel.text
        run, _ = wait_state(http, target.api_url, "ws", run_id, DEADLINE_S, every=0.05)
        assert run["state"] == "CANCELLED"
        assert "pair.b" not in target.timeline.of_run(run_id)
