"""A tiny OpenAI-compatible Chat Completions server on loopback, for the advisor tests.

It speaks just enough of the protocol for the official ``openai`` client:
``POST /v1/chat/completions`` answered from a queue of scripted replies (status, JSON body,
headers, an optional delay before answering, optionally only once other requests are in flight
too). A reply can be meant for one answer schema (``enqueue(..., schema="LLMVote")``), so
concurrent vote and plan requests each get theirs whatever order they arrive in. Every request
body, its headers and the time it arrived are kept so tests can check what the client really
sent, and when. Nothing is mocked: the client goes through httpx, a real socket and this
``http.server``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


@dataclass(frozen=True)
class StubReply:
    """One scripted answer: HTTP status, body (dict → JSON, str → sent as is), headers, delay.

    ``together``: answer only once this many chat requests have arrived in all (counting this
    one), waiting at most ``delay_s`` or 5 s: a request whose peer is only sent after it was
    answered (sequential calls) gets a 500 "stub: no concurrent request" instead.
    """

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    together: int = 0


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float = 0.0  # time.monotonic() when the request arrived

    @property
    def schema(self) -> str | None:
        """The structured-output schema's name ("LLMVote", "LLMActionPlan"), if any."""
        fmt = self.body.get("response_format") or {}
        return (fmt.get("json_schema") or {}).get("name")


def completion(content: str, *, prompt_tokens: int = 120, completion_tokens: int = 40,
               model: str = "gpt-4o-mini", finish_reason: str = "stop") -> StubReply:
    """A 200 reply carrying ``content`` as the assistant message (what structured outputs return)."""
    body = {
        "id": f"chatcmpl-stub{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return StubReply(200, body)


def json_completion(payload: dict[str, Any], **kwargs: Any) -> StubReply:
    return completion(json.dumps(payload), **kwargs)


def error(status: int, message: str, *, code: str | None = None, err_type: str = "server_error",
          headers: dict[str, str] | None = None, delay_s: float = 0.0) -> StubReply:
    """An OpenAI-style error reply (``{"error": {"message", "type", "code"}}``)."""
    body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
    return StubReply(status, body, headers or {}, delay_s)


class ChatStubServer:
    """Serve scripted replies on 127.0.0.1:<free port>; use as a context manager.

    When the queue is empty the server answers 500 "no reply queued", so a test that makes more
    requests than it scripted fails loudly instead of hanging.
    """

    def __init__(self) -> None:
        self._replies: deque[tuple[str | None, StubReply]] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closing = threading.Event()
        self.requests: list[SeenRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # never join a handler that is still sleeping
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    # -- scripting -------------------------------------------------------------------------
    def enqueue(self, *replies: StubReply, schema: str | None = None) -> None:
        """Queue replies; with ``schema`` only requests for that answer schema take them."""
        with self._lock:
            self._replies.extend((schema, reply) for reply in replies)

    def _next_reply(self, request: SeenRequest) -> StubReply:
        with self._lock:
            for item in self._replies:
                if item[0] is None or item[0] == request.schema:
                    self._replies.remove(item)
                    return item[1]
        return error(500, "stub: no reply queued")

    def _arrive(self, request: SeenRequest) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def _await_peers(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` chat requests have arrived in all (False if they never do)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.chat_requests) >= count
                                          or self._closing.is_set(), timeout=timeout_s)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ChatStubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # wakes handlers that are simulating a slow answer
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ChatStubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                request = SeenRequest(self.path, dict(self.headers.items()), body,
                                      received_at=time.monotonic())
                stub._arrive(request)
                if not self.path.endswith("/chat/completions"):
                    self._send(error(404, f"stub: unknown path {self.path}"))
                    return
                reply = stub._next_reply(request)
                if reply.together:
                    if not stub._await_peers(reply.together, reply.delay_s or 5.0):
                        self._send(error(500, "stub: no concurrent request"))
                        return
                elif reply.delay_s and stub._closing.wait(reply.delay_s):
                    return
                self._send(reply)

            def _send(self, reply: StubReply) -> None:
                payload = (reply.body if isinstance(reply.body, str)
                           else json.dumps(reply.body)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        return Handler
