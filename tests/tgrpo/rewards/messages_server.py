"""A local HTTP server on 127.0.0.1 that speaks the Anthropic Messages API wire format, for tests.

It answers ``POST /v1/messages`` from a script of canned replies (status, JSON body or raw text with its content
type, headers, delay) and records every request (path, headers, JSON body). Built on the standard library only.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


def message_body(text: str, model: str = "claude-test", stop_reason: str = "end_turn") -> dict:
    """A Messages API response object with one text block."""
    return {
        "id": "msg_test_0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 1234, "output_tokens": 567},
    }


def error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test"}


@dataclass
class Reply:
    """One canned reply: `body` is sent as JSON (any JSON value), or as it is when it is a str (a non-JSON
    body such as an HTML error page, with `content_type`)."""

    status: int
    body: dict | list | str
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str = "application/json"

    def payload(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: dict | None


class MessagesServer:
    """Context manager: ``with MessagesServer([Reply(...), ...]) as srv: srv.base_url``."""

    def __init__(self, replies: list[Reply], repeat_last: bool = False):
        self.replies = list(replies)
        self.repeat_last = repeat_last
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = None
                with server._lock:
                    server.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in
                                                                       self.headers.items()}, body))
                    if self.path != "/v1/messages":
                        reply = Reply(404, error_body("not_found_error", f"no route {self.path}"))
                    elif server.replies:
                        reply = server.replies.pop(0) if (len(server.replies) > 1 or not server.repeat_last) \
                            else server.replies[0]
                    else:
                        reply = Reply(500, error_body("api_error", "no scripted reply left"))
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", "req_test")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
