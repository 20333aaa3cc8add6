"""Cloud Function `callback`: a thin HTTP entry over servo.services (routes in infra/openapi.yaml)."""

import functions_framework
from flask import Request, Response
from servo.http.app import handle
from servo.http.runtime import function_context


@functions_framework.http
def callback(request: Request) -> Response:
    return handle(request, function_context(), function="callback")
