"""Cloud Function `compactor`: a GCS finalize CloudEvent on ``{tenant}/{workspace}/ledger/...`` compacts
that workspace, then acts on the runs that changed (design §5). Other objects are acknowledged and ignored.
"""

import logging
import re

import functions_framework
from cloudevents.http import CloudEvent
from servo.http.app import HandlerFailed, install_cloudevent_errors_in_current_app
from servo.http.runtime import function_context
from servo.jsonlog import log_fields
from servo.services.orchestrate import compact_and_act
from servo.services.timers import SWEEP_LOOKBACK_MS

logger = logging.getLogger("servo.compactor")
_LEDGER_OBJECT = re.compile(
    r"([a-z0-9_-]+)/([a-z0-9_-]+)/(ledger/(?:orchestration/[0-9A-HJKMNP-TV-Z]{26}\.json|kicks/[0-9A-HJKMNP-TV-Z]{26}\.kick))"
)

install_cloudevent_errors_in_current_app()


@functions_framework.cloud_event
def compactor(event: CloudEvent) -> None:
    raw = event.get_data()
    data = raw if isinstance(raw, dict) else {}
    name = str(data.get("name") or str(event.get("subject") or "").removeprefix("objects/"))
    match = _LEDGER_OBJECT.fullmatch(name)
    if match is None:
        logger.info(f"ignored finalize of a non-ledger object {name!r}", extra=log_fields(object=name))
        return
    tenant_id, workspace_id, relative = match.groups()
    # The sweep re-kicks compaction with a ledger/kicks/ object (finalize events can be lost): scan the
    # recent window instead of folding one named object.
    rekick = relative.endswith(".kick")
    hint = [] if rekick else [relative]
    lookback = SWEEP_LOOKBACK_MS if rekick else None
    # Any failure is a 500: Eventarc redelivers, and compaction is idempotent.
    try:
        outcome = compact_and_act(
            function_context(), tenant_id, workspace_id, hint=hint, lookback_ms=lookback
        )
    except Exception as exc:
        raise HandlerFailed(str(exc)) from exc
    logger.info(
        "compacted",
        extra=log_fields(object=name, published=outcome.published, events_applied=outcome.events_applied),
    )
