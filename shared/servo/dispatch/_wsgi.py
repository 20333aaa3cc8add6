"""An endpoint of the Transport port served over HTTP too: a WSGI request in, a (Flask) response out."""

from __future__ import annotations

from flask import Response
from werkzeug.wrappers import Request

from servo.dispatch._transport import InboundRequest, Reply


def inbound_request(request: Request) -> InboundRequest:
    """A WSGI request as an endpoint receives it in process (header names lower-cased)."""
    return InboundRequest(
        method=request.method,
        path=request.path,
        query=request.query_string.decode("latin-1"),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=request.get_data(),
    )


def wsgi_response(reply: Reply) -> Response:
    """An endpoint's reply as the WSGI response that carries it over HTTP."""
    response = Response(reply.body, status=reply.status)
    # The reply names its own Content-Type (or none); werkzeug's default must not be added.
    del response.headers["Content-Type"]
    for name, value in reply.headers.items():
        response.headers[name] = value
    return response
