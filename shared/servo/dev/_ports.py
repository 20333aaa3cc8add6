"""A free TCP port for a child process to listen on."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now. The child binds it later, so another process can take it in
    between (an outgoing connection's ephemeral port, say): callers retry on a new port when the
    child reports the address in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
