"""Push sensors and sensor evaluations in servo-core (automation §9): one Pub/Sub topic and push
subscription per push sensor aimed at automation's push route, the push account and its grants, the
dead-letter path, and the Cloud Tasks queue of sensor evaluations. Locals and variable validations are
evaluated by the real Terraform; resource arguments are read as written (their names are checked
against the provider schema in test_provider_schema.py, references in test_terraform_refs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from servo.core.sensors import InvalidSensor, parse_sensor
from servo.services.effects import _audience

from tests.infra import _refs, _tf, _tfrun
from tests.infra.conftest import CORE, GIVEN, PROJECT_NUMBER
from tests.infra.conftest import core_variables as _variables

EXAMPLE = _tf.INFRA / "environments" / "example"
AUTOMATION_URL = f"https://servo-automation-{PROJECT_NUMBER}.us-central1.run.app"
PUSH_SA = "${google_service_account.pubsub_push.email}"
PUBSUB_AGENT = 'serviceAccount:${google_project_service_identity.agent["pubsub"].email}'
SENSORS = {"default/orders": ["serviceAccount:shop@p.iam.gserviceaccount.com"], "team-b/file_drops": []}


@pytest.fixture(scope="module")
def sensor_locals(manifest: Path) -> dict[str, Any]:
    return _refs.evaluate_locals(
        CORE, _variables(manifest, push_sensors=SENSORS, default_tenant="acme"), GIVEN
    )


def _resources() -> dict[tuple[str, str], dict[str, Any]]:
    return _tf.resources(CORE)


def _automation() -> dict[str, Any]:
    automation: dict[str, Any] = _tf.blocks(CORE, "locals")["dispatcher_functions"]["automation"]
    return automation


def test_each_push_sensor_gets_its_topic_and_its_push_route(sensor_locals: dict[str, Any]) -> None:
    sensors = sensor_locals["push_sensors"]
    assert sorted(sensors) == ["default/orders", "team-b/file_drops"]
    orders = sensors["default/orders"]
    assert orders["topic"] == "servo-sensor-default-orders"
    assert orders["subscription"] == "servo-sensor-default-orders-push"
    # automation's push route for the deployment's one tenant (automation §4: .../sensors/{id}/push?tenant=).
    assert orders["endpoint"] == f"{AUTOMATION_URL}/v1/workspaces/default/sensors/orders/push?tenant=acme"
    url = urlsplit(sensors["team-b/file_drops"]["endpoint"])
    assert url.path == "/v1/workspaces/team-b/sensors/file_drops/push"
    assert parse_qs(url.query) == {"tenant": ["acme"]}
    # The sensor ids are the ids deploy accepts for a push sensor.
    for s in sensors.values():
        assert parse_sensor({"id": s["sensor"], "kind": "PUSH", "target": ["ns.a"]}).sensor_id == s["sensor"]


def test_the_push_audience_is_automations_run_app_url_as_the_code_derives_it(
    sensor_locals: dict[str, Any],
) -> None:
    # Known at plan time, so neither the gateway nor the subscriptions depend on automation's outputs,
    # and the audience Cloud Run accepts for the service automation is deployed as.
    assert sensor_locals["automation_url"] == AUTOMATION_URL
    assert sensor_locals["automation_name"] == "servo-automation"
    assert _automation()["name"] == "${local.automation_name}"
    assert _tf.blocks(CORE, "module")["dispatcher"]["name"] == "${each.value.name}"
    assert (
        _tf.blocks(CORE, "module")["openapi"]["template_vars"]["automation_url"] == "${local.automation_url}"
    )
    for s in sensor_locals["push_sensors"].values():
        assert _audience(s["endpoint"]) == AUTOMATION_URL


def test_automation_can_hand_a_manual_evaluation_to_the_worker() -> None:
    # Like the sweep: the worker reports to the gateway (callbackBaseUrl) with a token automation
    # mints, and the task carries the dispatch secret; automation accepts pushes from the push account.
    env = _automation()["environment"]
    assert env == "${merge(local.common_env, {SERVO_API_URL = local.api_url}, local.push_env)}"
    assert "SERVO_API_URL = local.api_url" in _tf.blocks(CORE, "locals")["dispatcher_env"]
    assert _tf.blocks(CORE, "locals")["push_env"] == {"SERVO_PUSH_SERVICE_ACCOUNT": PUSH_SA}
    secrets = _tf.blocks(CORE, "locals")["function_secrets"]["automation"]
    assert secrets == "${merge(local.token_key, local.dispatch_key)}"
    assert _tf.blocks(CORE, "module")["dispatcher"]["environment"] == "${each.value.environment}"


def test_the_push_subscription_signs_for_automation_and_backs_off_to_a_dead_letter() -> None:
    sub = _resources()[("google_pubsub_subscription", "sensor_push")]
    assert sub["for_each"] == "${local.push_sensors}"
    assert sub["topic"] == "${google_pubsub_topic.sensor[each.key].id}"
    push = sub["push_config"][0]
    assert push["push_endpoint"] == "${each.value.endpoint}"
    assert "no_wrapper" not in push  # the standard envelope {message: {messageId, data, attributes}}
    oidc = push["oidc_token"][0]
    assert oidc == {"service_account_email": PUSH_SA, "audience": "${local.automation_url}"}
    assert sub["ack_deadline_seconds"] == 60
    assert sub["retry_policy"][0] == {"minimum_backoff": "10s", "maximum_backoff": "600s"}
    dead = sub["dead_letter_policy"][0]
    assert dead == {
        "dead_letter_topic": "${google_pubsub_topic.sensor_dead_letter.id}",
        "max_delivery_attempts": 10,
    }
    # A quiet sensor must not lose its subscription (the default expires after 31 idle days).
    assert sub["expiration_policy"][0]["ttl"] == ""
    # Nothing kept once acknowledged; an unacknowledged message is dead-lettered long before a day.
    assert sub["retain_acked_messages"] is False
    assert sub["message_retention_duration"] == "86400s"


def test_topics_keep_nothing_at_rest_and_dead_letters_wait_for_an_operator() -> None:
    res = _resources()
    topic = res[("google_pubsub_topic", "sensor")]
    assert topic["for_each"] == "${local.push_sensors}"
    assert topic["name"] == "${each.value.topic}"
    assert "message_retention_duration" not in topic
    dead_topic = res[("google_pubsub_topic", "sensor_dead_letter")]
    assert "message_retention_duration" not in dead_topic
    # A topic without a subscription drops what it receives: dead letters are kept for a week.
    dead_sub = res[("google_pubsub_subscription", "sensor_dead_letter")]
    assert dead_sub["topic"] == "${google_pubsub_topic.sensor_dead_letter.id}"
    assert "push_config" not in dead_sub
    assert dead_sub["message_retention_duration"] == "604800s"
    assert dead_sub["expiration_policy"][0]["ttl"] == ""
    alert = _tf.blocks(CORE, "locals")["alerts"]["sensor_dead_letters"]
    assert "google_pubsub_subscription.sensor_dead_letter.name" in alert["filter"]


def test_the_push_account_may_invoke_automation_only() -> None:
    res = _resources()
    account = res[("google_service_account", "pubsub_push")]
    assert account["account_id"] == "${var.name_prefix}-pubsub-push"
    automation = _automation()
    assert automation["invokers"] == [
        "serviceAccount:${google_service_account.gateway.email}",
        f"serviceAccount:{PUSH_SA}",
    ]
    assert automation["ingress"] == "ALLOW_ALL"
    assert _tf.blocks(CORE, "module")["dispatcher"]["invoker_members"] == "${each.value.invokers}"
    # Nothing else grants the push account anything.
    named = [key for key, body in res.items() if "google_service_account.pubsub_push.email" in str(body)]
    assert named == [("google_pubsub_subscription", "sensor_push")]
    others = {
        fn
        for fn, body in _tf.blocks(CORE, "locals")["dispatcher_functions"].items()
        if "pubsub_push" in str(body)
    }
    assert others == {"automation"}


def test_the_pubsub_service_agent_gets_exactly_what_oidc_push_and_dead_letters_need() -> None:
    res = _resources()
    agents = _tf.blocks(CORE, "locals")["token_minting_agents"]
    assert agents["pubsub"] == {
        "service": "pubsub.googleapis.com",
        "account": "${google_service_account.pubsub_push.name}",
    }
    identity = res[("google_project_service_identity", "agent")]
    assert (identity["provider"], identity["for_each"]) == ("google-beta", "${local.token_minting_agents}")
    token = res[("google_service_account_iam_member", "agent_token_creator")]
    assert token["for_each"] == "${local.token_minting_agents}"
    assert (token["service_account_id"], token["role"]) == (
        "${each.value.account}",
        "roles/iam.serviceAccountTokenCreator",
    )
    granted = {
        (rtype, body["role"])
        for (rtype, _), body in res.items()
        if rtype.endswith("_iam_member") and body.get("member") == PUBSUB_AGENT
    }
    assert granted == {
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
        ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber"),
    }
    publisher = res[("google_pubsub_topic_iam_member", "dead_letter_publisher")]
    assert publisher["topic"] == "${google_pubsub_topic.sensor_dead_letter.name}"
    subscriber = res[("google_pubsub_subscription_iam_member", "dead_letter_subscriber")]
    assert subscriber["for_each"] == "${local.push_sensors}"
    assert subscriber["subscription"] == "${google_pubsub_subscription.sensor_push[each.key].name}"


def test_publishers_are_granted_on_their_sensors_topic_only(sensor_locals: dict[str, Any]) -> None:
    assert sensor_locals["push_publishers"] == {
        "default/orders serviceAccount:shop@p.iam.gserviceaccount.com": {
            "sensor": "default/orders",
            "member": "serviceAccount:shop@p.iam.gserviceaccount.com",
        }
    }
    grant = _resources()[("google_pubsub_topic_iam_member", "publisher")]
    assert grant["for_each"] == "${local.push_publishers}"
    assert grant["topic"] == "${google_pubsub_topic.sensor[each.value.sensor].name}"
    assert grant["role"] == "roles/pubsub.publisher"


@pytest.mark.parametrize(
    "key",
    [
        "default/Orders",
        "default/orders-x",
        "default/9x",
        f"default/{'x' * 65}",
        "Default/orders",
        "orders",
        "a/b/c",
        "w/",
    ],
)
def test_a_push_sensor_deploy_would_refuse_is_refused_at_plan(manifest: Path, key: str) -> None:
    workspace, _, sensor = key.rpartition("/")
    if workspace == "default":
        # The id is one deploy refuses too (the variable's pattern is parse_sensor's).
        with pytest.raises(InvalidSensor):
            parse_sensor({"id": sensor, "kind": "PUSH", "target": ["ns.a"]})
    with pytest.raises(_tfrun.TerraformError, match="as deploy accepts it"):
        _refs.evaluate_locals(CORE, _variables(manifest, push_sensors={key: []}), GIVEN)


def test_no_push_sensor_makes_no_topic(core_locals: dict[str, Any]) -> None:
    assert core_locals["push_sensors"] == {}
    assert core_locals["push_publishers"] == {}


# Sensor evaluations: Cloud Tasks named s_... carried to the worker's /sensor-evaluations route.


def test_sensor_evaluations_have_their_own_queue_shaped_as_the_spec_says(manifest: Path) -> None:
    sized = _refs.evaluate_locals(
        CORE, _variables(manifest, worker_max_instances=2, worker_concurrency=3), GIVEN
    )
    sensors = sized["queues"]["sensors"]
    # automation §9: 5 attempts, backoff 5..60 s.
    assert sensors["name"] == "servo-sensors"
    assert sensors["attempts"] == 5
    assert sensors["retry"] == {"min_backoff": "5s", "max_backoff": "60s", "max_doublings": 4}
    assert 5 * 2 ** sensors["retry"]["max_doublings"] >= 60
    # They run on the worker too: never more at once than it can run, by default fewer.
    assert sensors["concurrent"] == 6
    assert sized["queues"]["dispatch"]["retry"] == sized["queue_retry"]
    env = _tf.blocks(CORE, "locals")["common_env"]
    assert env["SERVO_SENSORS_QUEUE"] == '${google_cloud_tasks_queue.queue["sensors"].name}'
    queue = _resources()[("google_cloud_tasks_queue", "queue")]
    assert queue["retry_config"][0]["max_attempts"] == "${each.value.attempts}"
    assert queue["retry_config"][0]["min_backoff"] == "${each.value.retry.min_backoff}"


def test_the_sensor_evaluators_may_enqueue_as_the_tasks_account(manifest: Path) -> None:
    # automation §9: compactor, timers and automation enqueue on the sensors queue and act as the invoker
    # account; automation (manual evaluate) on that queue only.
    given = {**GIVEN, "queue_names": ["servo-dispatch", "servo-sensors", "servo-timers"]}
    evaluated = _refs.evaluate_locals(CORE, _variables(manifest), given)
    enqueue = {tuple(pair) for pair in evaluated["task_enqueuers"].values()}
    assert {
        ("compactor", "servo-sensors"),
        ("timers", "servo-sensors"),
        ("automation", "servo-sensors"),
    } <= enqueue
    assert {q for fn, q in enqueue if fn == "automation"} == {"servo-sensors"}
    assert evaluated["act_as_tasks"] == ["automation", "compactor", "timers"]
    res = _resources()
    assert (
        res[("google_cloud_tasks_queue_iam_member", "dispatchers_enqueue")]["for_each"]
        == "${local.task_enqueuers}"
    )
    assert res[("google_service_account_iam_member", "dispatchers_act_as_tasks")]["for_each"] == (
        "${toset(local.act_as_tasks)}"
    )


def test_an_extra_queue_cannot_take_the_sensors_key(manifest: Path) -> None:
    with pytest.raises(_tfrun.TerraformError, match="sensors"):
        _refs.evaluate_locals(CORE, _variables(manifest, extra_worker_queues=["sensors"]), GIVEN)


def test_the_example_environment_passes_push_sensors_and_shows_their_topics() -> None:
    assert _tf.blocks(EXAMPLE, "module")["servo"]["push_sensors"] == "${var.push_sensors}"
    outputs = _tf.blocks(EXAMPLE, "output")
    assert outputs["sensor_topics"]["value"] == "${module.servo.sensor_topics}"
    assert outputs["push_service_account"]["value"] == "${module.servo.push_service_account}"
    core_outputs = _tf.blocks(CORE, "output")
    assert {"sensor_topics", "push_service_account", "push_audience", "sensors_queue"} <= set(core_outputs)
    assert (
        _tf.blocks(CORE, "variable")["push_sensors"]["type"]
        == _tf.blocks(EXAMPLE, "variable")["push_sensors"]["type"]
    )
