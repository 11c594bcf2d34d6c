"""A small OAuth authorization server on 127.0.0.1 for the resource-server tests: only its RFC 7662
introspection endpoint, which answers for the tokens it is given and checks the caller's client
credentials (HTTP Basic)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

CLIENT = ("fanout", "s3cret")


@contextmanager
def fake_issuer(tokens: Mapping[str, dict[str, Any]]) -> Generator[tuple[str, list[str]]]:
    """The issuer's base URL, and the tokens introspected so far (in order), while it runs."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            expected = "Basic " + base64.b64encode(":".join(CLIENT).encode()).decode()
            if self.path != "/introspect" or self.headers.get("authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            token = parse_qs(body).get("token", [""])[0]
            asked.append(token)
            answer = json.dumps(tokens.get(token, {"active": False})).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
