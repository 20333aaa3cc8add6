"""A whole control plane on local files, driven through its real function entry points under faults.

``World`` deploys a scenario's asset graph, then plays every outside party in rounds: the client that
triggers runs (and retries a 5xx), Cloud Tasks delivering dispatch envelopes and due timers (retrying
a failed delivery), the worker answering each envelope by the scenario's script, Eventarc delivering
finalize events to the compactor, and Cloud Scheduler ticking the sweep once a fake minute. A
``Chaos`` duplicates, shuffles and drops those inputs and injects store faults; a clean World runs
the same scenario without any, giving the final state the faulty one must reach.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app
from servo.dispatch import HttpTask
from servo.services._recent_writes import INSTANCE_KEY
from servo.services.context import ServiceContext
from servo.services.read_model import load_snapshot
from servo.store import LocalFileStore

from tests.functions.test_deploy_function import asset, manifest
from tests.support.context import inline_hook, make_context
from tests.support.faults import ChaosQueue, FaultPlan, FaultyStore, phase, shuffled_with_duplicates

ROOT = Path(__file__).resolve().parents[2]
TENANT, WS = "default", "chaos"
STEP_MS = 6_000
MINUTE_MS = 60_000
TERMINAL_RUN = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}
TERMINAL_TASK = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"}


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One run: its runKey, what the worker reports per asset and attempt, and where it cancels.

    ``outcomes[asset]`` lists ``ok`` / ``retry`` (retryable failure) / ``fatal`` per attempt; missing
    attempts succeed. With ``cancel_at`` the worker of that asset cancels the run after it started and
    then reports a (late) success anyway.
    """

    label: str
    outcomes: Mapping[str, tuple[str, ...]]
    cancel_at: str | None = None

    def outcome(self, asset: str, attempt: int) -> str:
        script = self.outcomes.get(asset, ())
        return script[attempt - 1] if attempt <= len(script) else "ok"


@dataclass(frozen=True, slots=True)
class Scenario:
    assets: tuple[tuple[str, tuple[str, ...], int], ...]  # key, upstream keys, maxRetries
    runs: tuple[RunPlan, ...]


def random_scenario(rng: random.Random, n_runs: int = 3) -> Scenario:
    """A DAG of 3–6 assets with one root (so a cancel lands on a known state) and ``n_runs`` runs."""
    n = rng.randint(3, 6)
    keys = [f"ns.a{i}" for i in range(n)]
    assets = []
    for i, key in enumerate(keys):
        deps = tuple(sorted(rng.sample(keys[:i], rng.randint(1, min(2, i))))) if i else ()
        assets.append((key, deps, rng.choice((1, 2))))
    runs = []
    for r in range(n_runs):
        kind = rng.choice(("clean", "retry", "fatal", "cancel"))
        outcomes: dict[str, tuple[str, ...]] = {}
        cancel_at = None
        if kind == "cancel":
            cancel_at = keys[0]
        else:
            for key, _, retries in assets:
                roll = rng.random()
                if kind != "clean" and roll < 0.3:
                    outcomes[key] = ("retry",)
                elif kind == "fatal" and roll < 0.45:
                    outcomes[key] = ("fatal",)
                elif kind == "retry" and roll < 0.4:
                    outcomes[key] = ("retry",) * (retries + 1)  # exhausts its attempts
        runs.append(RunPlan(f"run-{r}-{kind}", outcomes, cancel_at))
    return Scenario(tuple(assets), tuple(runs))


@dataclass(frozen=True, slots=True)
class Chaos:
    """Which faults a World injects. All random choices derive from ``seed``."""

    seed: int = 0
    duplicate_rate: float = 0.0  # each external input delivered again
    shuffle: bool = False  # external inputs of a round in random order
    deferred: bool = False  # finalize events go to the compactor function (else compaction is inline)
    lose_finalize_rate: float = 0.0
    compactor_threads: int = 1
    store: FaultPlan = field(default_factory=FaultPlan)
    lose_inline: frozenset[int] = frozenset()  # inline compactions (by count) skipped: lost finalize
    # Every callback reaches an instance that did not write what came before it (the callback
    # dispatch's memory of its own writes is lost): it sees only published views.
    callback_amnesia: bool = False
    # The trigger dispatches its run's roots itself, as on the embedded stack (settings.trigger_dispatch).
    trigger_dispatch: bool = False


@cache
def _app(name: str, signature: str = "http") -> Any:
    return create_app(name, str(ROOT / f"functions/{name}/main.py"), signature)


def _manifest(scenario: Scenario) -> bytes:
    assets = [asset(key, *deps, maxRetries=retries) for key, deps, retries in scenario.assets]
    return json.dumps(manifest(*assets)).encode()


def finalize_event(name: str) -> tuple[dict[str, str], bytes]:
    attributes = {
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "//storage.googleapis.com/projects/_/buckets/servo-local",
        "subject": f"objects/{name}",
    }
    headers, body = to_binary(CloudEvent(attributes, {"bucket": "servo-local", "name": name}))
    return dict(headers), body


_RECENT_WRITES = INSTANCE_KEY  # services/_recent_writes: the instance memory amnesia drops


def _not_visible(res: Any) -> bool:
    """A callback answered "the dispatch is not published yet: retry" (the worker's tries ran out)."""
    return bool(res.status_code == 503 and (res.get_json() or {}).get("error") == "dispatch_not_visible")


WORKER_FACTS = frozenset({"ledger:TaskStarted", "ledger:TaskHeartbeat", "ledger:TaskFinished"})


class World:
    """One workspace, its functions and the parties around them, under a Chaos."""

    def __init__(self, tmp_path: Path, scenario: Scenario, chaos: Chaos) -> None:
        self.scenario = scenario
        self.chaos = chaos
        self.rng = random.Random(chaos.seed)
        # Every run end moves its run to the index at once, so each scenario crosses that write too.
        # The callback dispatch is on, as on GCP: a completion dispatches what it made ready itself.
        # A dispatch's acknowledgement is deferred inline, as on the local stacks, and written at once
        # through the compactor, as on GCP (settings.defer_dispatch_ack): both paths meet the chaos.
        base, self.clock, _ = make_context(
            tmp_path,
            compact=False,
            ended_runs_per_index_write=1,
            callback_dispatch=True,
            trigger_dispatch=chaos.trigger_dispatch,
            defer_dispatch_ack=not chaos.deferred,
        )
        # fsync buys nothing for throwaway data and costs most of a write.
        self.store = FaultyStore(LocalFileStore(tmp_path / base.settings.bucket, durable=False), chaos.store)
        self.queue = ChaosQueue(
            seed=chaos.seed,
            duplicate_rate=chaos.duplicate_rate,
            late_rate=0.5 if chaos.shuffle else 0.0,
            shuffle=chaos.shuffle,
        )
        self.ctx: ServiceContext = replace(
            base,
            store=self.store,
            queue=self.queue,
            after_ledger_write=self._hook,
            before_read=self._settle if chaos.trigger_dispatch else None,
        )
        self.finalize: list[str] = []
        self.late_callbacks: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
        self.inline_count = 0
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "input_duplicates",
                "lost_finalize",
                "server_errors",
                "concurrent_compactions",
                "not_visible",
                "run_not_visible",
            ),
            0,
        )
        self.run_ids: dict[str, str] = {}
        self.accepted_events: set[str] = set()
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._mark = 0
        self.deployed = ""
        self.deliveries = 0

    # ------------------------------------------------------------------------------------- plumbing

    def _hook(
        self,
        ctx: ServiceContext,
        tenant_id: str,
        workspace_id: str,
        names: Any,
        *,
        await_publish: bool = True,
        urgent: bool = True,
    ) -> None:
        # Compacts in the writer's thread (or defers to finalize): awaiting or not, the order is the same.
        if self.chaos.deferred:
            with self._lock:
                self.finalize.extend(f"{tenant_id}/{workspace_id}/{n}" for n in names)
            return
        self.inline_count += 1
        if self.inline_count in self.chaos.lose_inline:
            self.counts["lost_finalize"] += 1
            return
        with phase("compaction"):
            inline_hook(ctx, tenant_id, workspace_id, names, await_publish=await_publish)

    def _settle(self, tenant_id: str, workspace_id: str) -> None:
        """The embedded stack's read barrier (``ServiceContext.before_read``), where the trigger
        dispatches its roots as there: a user's read first has the pending finalize events compacted,
        so a run is readable (and cancellable) the moment its trigger answered."""
        with self._lock:
            names, self.finalize = sorted(set(self.finalize)), []
        if names:
            self._compact_batch(names)

    def _call(self, label: str, send: Callable[[], Any], retries: int = 8) -> Any:
        """A client that retries a 5xx at once (the crash was one-shot)."""
        for _ in range(retries):
            self._mark = len(self.store.writes)
            with phase(label):
                res = send()
            if res.status_code < 500 or _not_visible(res):
                return res
            self.counts["server_errors"] += 1
        raise AssertionError(f"{label}: still failing after {retries} tries: {res.get_json()}")

    def _written_by_last_call(self) -> set[str]:
        """The worker facts the last (successful) attempt of ``_call`` wrote. Not the dispatches a
        completion makes on its way out: those are the controller's, and one that crashed before it
        landed is simply made again by the compactor (nothing accepted is lost)."""
        return {
            w.name
            for w in self.store.writes[self._mark :]
            if w.op == "create" and w.kind in WORKER_FACTS and w.phase == "callback"
        }

    # ---------------------------------------------------------------------------------- the parties

    def deploy(self, body: bytes) -> str:
        """The CLI's deploy: one Idempotency-Key for the request and its retries; the manifest id."""
        headers = {"Idempotency-Key": "deploy-1", "Content-Type": "application/json"}
        url = f"/v1/workspaces/{WS}/manifests"
        res = self._call("deploy", lambda: _app("deploy").test_client().post(url, data=body, headers=headers))
        assert res.status_code in (200, 201), res.get_json()
        return str(res.get_json()["manifestId"])

    def trigger(self, plan: RunPlan) -> None:
        body = {"selection": [a[0] for a in self.scenario.assets], "runKey": plan.label}
        res = self._call(
            "trigger", lambda: _app("trigger").test_client().post(f"/v1/workspaces/{WS}/runs", json=body)
        )
        assert res.status_code in (200, 201), res.get_json()
        self.run_ids[plan.label] = res.get_json()["runId"]

    def _plan_of(self, run_id: str) -> RunPlan:
        label = next(k for k, v in self.run_ids.items() if v == run_id)
        return next(p for p in self.scenario.runs if p.label == label)

    def _callback(self, env: dict[str, Any], action: str, body: dict[str, Any], late: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {env['taskToken']}"}
        url = f"/v1/tasks/{env['taskId']}/{action}"
        if self.chaos.callback_amnesia:
            self.ctx.cache.pop(_RECENT_WRITES, None)
        res = self._call(
            "callback", lambda: _app("callback").test_client().post(url, json=body, headers=headers)
        )
        if res.status_code == 200 and action in ("started", "completed"):
            self.accepted_events |= self._written_by_last_call()
        if not late and self.chaos.shuffle and self.rng.random() < self.chaos.duplicate_rate:
            # The worker's HTTP client re-sends it after a lost response: it lands a round later,
            # in any order with everything else.
            self.late_callbacks.append((env, action, body))
            self.counts["input_duplicates"] += 1
        return res

    def cancel(self, run_id: str) -> Any:
        url = f"/v1/workspaces/{WS}/runs/{run_id}/cancel"
        res = self._call("cancel", lambda: _app("cancel").test_client().post(url, json={"reason": "chaos"}))
        assert res.status_code in (200, 202, 409), res.get_json()
        return res

    def work(self, env: dict[str, Any]) -> bool:
        """The worker's answer to one delivered envelope (a duplicate delivery runs it again); False
        when the delivery must come again (its dispatch was not visible yet: the worker answers 500)."""
        plan = self._plan_of(env["runId"])
        ids = {"attempt": env["attempt"], "attemptId": env["attemptId"], "workerId": "w-chaos"}
        # One execution id per delivery, kept by the client's retries of the same request.
        self.deliveries += 1
        started = ids | {"executionId": f"delivery-{self.deliveries}"}
        reply = self._callback(env, "started", started)
        if _not_visible(reply):
            self.counts["not_visible"] += 1
            if "run is not published" in (reply.get_json() or {}).get("message", ""):
                self.counts["run_not_visible"] += 1  # a root its trigger dispatched, its run unseen
            return False
        if reply.status_code != 200:
            return True
        if plan.cancel_at == env["taskKey"] and env["runId"] not in self.cancelled:
            self.cancelled.add(env["runId"])
            for _ in range(2 if self.rng.random() < self.chaos.duplicate_rate else 1):
                self.cancel(env["runId"])
        if self._callback(env, "heartbeat", ids | {"progressPct": 50}).status_code != 200:
            return True
        logs = {"attempt": env["attempt"], "stdout": f"{env['taskKey']} attempt {env['attempt']}"}
        self._callback(env, "logs", logs)
        outcome = plan.outcome(env["taskKey"], env["attempt"])
        if outcome == "ok":
            body = ids | {"outcome": "SUCCEEDED", "output": {"rowCount": len(env["taskKey"])}}
        else:
            error = {
                "category": "USER_CODE",
                "message": f"{outcome} failure",
                "retryable": outcome == "retry",
            }
            body = ids | {"outcome": "FAILED", "error": error}
        self._callback(env, "completed", body)
        return True

    def deliver(self, task: HttpTask) -> None:
        if task.url == self.ctx.settings.worker_url:
            if not self.work(json.loads(task.body)):
                self.queue.redeliver(task)
            return
        with phase("timers"):
            res = _app("timers").test_client().post("/v1/timers/fire", data=task.body, headers=task.headers)
        if res.status_code >= 500:
            self.counts["server_errors"] += 1
            self.queue.redeliver(task)

    def compact(self, name: str) -> bool:
        headers, body = finalize_event(name)
        with phase("compaction"):
            res = _app("compactor", "cloudevent").test_client().post("/", headers=headers, data=body)
        return bool(res.status_code < 300)

    def _compact_batch(self, names: list[str]) -> None:
        failed: list[str] = []
        if len(names) > 1 and self.chaos.compactor_threads > 1:
            self.counts["concurrent_compactions"] += len(names)
            threads = [
                threading.Thread(target=lambda n=n: None if self.compact(n) else failed.append(n))
                for n in names
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            failed = [n for n in names if not self.compact(n)]
        if failed:
            self.counts["server_errors"] += len(failed)
            with self._lock:
                self.finalize.extend(failed)  # Eventarc redelivers a failed event

    def sweep(self) -> None:
        with phase("timers"):
            res = (
                _app("timers")
                .test_client()
                .post("/v1/timers/sweep", json={}, headers=self.ctx.settings.internal_headers())
            )
        if res.status_code >= 500:
            self.counts["server_errors"] += 1

    # ------------------------------------------------------------------------------------- driving

    def _finalize_deliveries(self) -> list[str]:
        with self._lock:
            names, self.finalize = self.finalize, []
        kept = []
        for name in names:
            if self.rng.random() < self.chaos.lose_finalize_rate:
                self.counts["lost_finalize"] += 1
            else:
                kept.append(name)
        out, extra = shuffled_with_duplicates(kept, self.rng, self.chaos.duplicate_rate)
        self.counts["input_duplicates"] += extra
        return out if self.chaos.shuffle else sorted(out)

    def observe(self) -> dict[str, dict[str, Any]]:
        views = {label: self.public_run(run_id) for label, run_id in self.run_ids.items()}
        for label, view in views.items():
            self.history.setdefault(label, []).append(view)
        return views

    def public_run(self, run_id: str) -> dict[str, Any]:
        res = _app("runs").test_client().get(f"/v1/workspaces/{WS}/runs/{run_id}")
        if res.status_code == 404:
            return {"state": None, "tasks": {}}
        assert res.status_code == 200, res.get_json()
        body = res.get_json()
        tasks = {
            t["taskKey"]: (t["state"], t["attempt"], t.get("errorCategory"), t.get("output"))
            for t in body["tasks"]
        }
        return {"state": body["state"], "tasks": tasks}

    def done(self) -> bool:
        views = self.observe()
        return len(views) == len(self.scenario.runs) and all(
            v["state"] in TERMINAL_RUN for v in views.values()
        )

    def run(self, max_rounds: int = 120) -> dict[str, dict[str, Any]]:
        """Play the scenario until every run is terminal and nothing is pending; the final views."""
        self.deployed = self.deploy(_manifest(self.scenario))
        triggers = list(self.scenario.runs)
        if self.chaos.shuffle:
            triggers = triggers + [p for p in triggers if self.rng.random() < self.chaos.duplicate_rate]
            self.counts["input_duplicates"] += len(triggers) - len(self.scenario.runs)
            self.rng.shuffle(triggers)
        for plan in triggers:
            self.trigger(plan)
        last_sweep = self.clock()
        for _ in range(max_rounds):
            busy = False
            tasks = self.queue.due(self.clock())
            finals = self._finalize_deliveries()
            late, self.late_callbacks = self.late_callbacks, []
            inputs: list[tuple[str, Any]] = [("task", t) for t in tasks] + [("finalize", n) for n in finals]
            inputs += [("callback", c) for c in late]
            if self.chaos.shuffle:
                self.rng.shuffle(inputs)
            i = 0
            while i < len(inputs):
                kind, item = inputs[i]
                busy = True
                if kind == "task":
                    self.deliver(item)
                    i += 1
                    continue
                if kind == "callback":
                    env, action, body = item
                    self._callback(env, action, body, late=True)
                    i += 1
                    continue
                # Consecutive finalize deliveries may run at once: concurrent compactors.
                width = self.rng.randint(1, self.chaos.compactor_threads)
                batch = [item]
                while (
                    len(batch) < width
                    and i + len(batch) < len(inputs)
                    and inputs[i + len(batch)][0] == "finalize"
                ):
                    batch.append(inputs[i + len(batch)][1])
                self._compact_batch(batch)
                i += len(batch)
            self.observe()
            if self.clock() - last_sweep >= MINUTE_MS or not busy:
                for _ in range(2 if self.rng.random() < self.chaos.duplicate_rate else 1):
                    self.sweep()
                last_sweep = self.clock()
            idle = not busy and self.queue.pending() == 0 and not self.finalize and not self.late_callbacks
            if idle and self.store.held:
                self.store.flush()  # a slow upload finishes at last; the sweep's look-back finds it
            elif idle and self.done():
                return self.observe()
            self.clock.advance(STEP_MS if busy else MINUTE_MS)
        raise AssertionError(f"not converged after {max_rounds} rounds: {self.observe()}")

    # ------------------------------------------------------------------------------------ checks

    @property
    def injected(self) -> int:
        return (
            self.store.injected
            + self.queue.duplicates
            + self.queue.reorders
            + self.counts["input_duplicates"]
            + self.counts["lost_finalize"]
            + self.counts["concurrent_compactions"]
        )

    def projection_events(self) -> dict[str, set[str]]:
        snap = load_snapshot(self.ctx.workspace_store(TENANT, WS))
        out = {}
        for run_id in self.run_ids.values():
            part = snap.partition(run_id, events=True)
            out[run_id] = set(part.events) if part is not None else set()
        return out

    def ledger_events(self, *, superseded: bool = False) -> dict[str, set[str]]:
        """Every event in the ledger that belongs to a run, by run, but the heartbeats a newer one of
        the same attempt superseded (the fold keeps the newest liveness only: servo.core.liveness);
        with ``superseded``, those heartbeats only."""
        from servo.core.events import decode_event
        from servo.core.liveness import newest_beats

        store = self.ctx.workspace_store(TENANT, WS)
        events = []
        for meta in store.list("ledger/orchestration/"):
            obj = store.get(meta.name)
            assert obj is not None
            events.append(decode_event(obj.data))
        kept = newest_beats(events, {})
        out: dict[str, set[str]] = {}
        for event in events:
            if event.run_id is not None and (event.event_id in kept) != superseded:
                out.setdefault(event.run_id, set()).add(event.event_id)
        return out

    def dispatches(self) -> dict[tuple[str, str, int], list[tuple[str, str, str]]]:
        """(run, task, attempt) -> the (Cloud Task name, attemptId, dispatchId) of each worker task
        created for it (the queue already dropped names it had seen, as Cloud Tasks does)."""
        out: dict[tuple[str, str, int], list[tuple[str, str, str]]] = {}
        for _, task in self.queue.recorded:
            if task.url != self.ctx.settings.worker_url:
                continue
            env = json.loads(task.body)
            key = (env["runId"], env["taskKey"], env["attempt"])
            out.setdefault(key, []).append((task.task_id, env["attemptId"], env["dispatchId"]))
        return out
