"""Cloud Function `automation`: a thin HTTP entry over servo.services (routes in infra/openapi.yaml)."""

import functions_framework
from flask import Request, Response
from servo.http.app import handle, install_json_errors_in_current_app
from servo.http.runtime import function_context

install_json_errors_in_current_app()


@functions_framework.http
def automation(request: Request) -> Response:
    return handle(request, function_context(), function="automation")
