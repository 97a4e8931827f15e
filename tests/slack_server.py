"""A local stand-in for Slack: incoming webhooks and the Web API's ``chat.postMessage``.

A real HTTP server on 127.0.0.1 (random port) in a background thread. It records every
request and can be scripted to misbehave, one behaviour per request, in order:

.. code-block:: python

    with FakeSlack() as slack:
        slack.script(Status(500), RateLimited(retry_after=1), Slow(2.0), Close())
        ...  # the next four requests get those; later ones succeed
        slack.posts()  # the successful posts: endpoint, body, thread_ts

Protocol, as far as safeload uses it:

* ``POST /services/T…/B…/X…`` with a JSON body: ``200 ok``; a wrong path ``404
  no_service``; a body that is not JSON ``400 invalid_payload``.
* ``POST /api/chat.postMessage`` (JSON or form) with ``Authorization: Bearer <token>``:
  ``{"ok": true, "channel": "C…", "ts": "…"}``; a wrong token ``{"ok": false, "error":
  "invalid_auth"}``; no channel ``channel_not_found``.

Every wait in here is bounded, and :meth:`FakeSlack.stop` releases slow handlers at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MAX_SLOW_SECONDS = 10.0

# safeload's alert settings for tests against this server: retries, back-off and waits
# short enough that a scripted outage costs well under a second per alert
FAST_RETRIES = {
    "SAFELOAD_ALERT_MAX_RETRIES": "2",
    "SAFELOAD_ALERT_BACKOFF": "0.05",
    "SAFELOAD_ALERT_MAX_BACKOFF": "0.2",
    "SAFELOAD_ALERT_TIMEOUT": "5",
    "SAFELOAD_ALERT_RETRY_AFTER_CAP": "2",
    "SAFELOAD_ALERT_BUDGET": "10",
}


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status (and body, headers) instead of the normal reply."""

    code: int
    body: str = "internal_error"
    headers: tuple[tuple[str, str], ...] = ()


def RateLimited(retry_after: float | None = 1) -> Status:
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Status(429, body="rate_limited", headers=headers)


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds`` (at most :data:`MAX_SLOW_SECONDS`) before the normal reply."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """Close the connection without a response."""


@dataclass
class Request:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    at: float
    endpoint: str  # webhook | chat.postMessage | other
    response_status: int | None = None
    behaviour: Any = None
    delivered: bool = False  # answered as a successful post

    @property
    def thread_ts(self) -> str | None:
        return self.body.get("thread_ts") if isinstance(self.body, dict) else None

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.body.get("blocks") if isinstance(self.body, dict) else None
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return blocks or []

    @property
    def text(self) -> str:
        return (self.body.get("text") if isinstance(self.body, dict) else None) or ""

    def all_text(self) -> str:
        """The fallback text and every text in the blocks, one string (for asserts)."""
        parts = [self.text]

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "text" and isinstance(v, str):
                        parts.append(v)
                    else:
                        walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(self.blocks)
        return "\n".join(parts)


@dataclass
class FakeSlack:
    """The server. ``token`` is the valid Web API token, ``webhook_path`` the valid hook."""

    token: str = "xoxb-123456789012-1234567890123-SeCrEtToKeNvAlUe42"
    webhook_path: str = "/services/T0SAFELOAD/B0ALERTS1/WebhookSecretXyZ987654"
    channel_id: str = "C0DATAALRT"
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._behaviours: deque[Any] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ts = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._reply(self, 405, "method_not_allowed")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ scripting

    def script(self, *behaviours: Any) -> None:
        """Queue behaviours for the next requests, one each, in order."""
        with self._lock:
            self._behaviours.extend(behaviours)

    def always(self, behaviour: Any, times: int = 50) -> None:
        """The same behaviour for the next ``times`` requests (bounded on purpose)."""
        self.script(*([behaviour] * times))

    def reset(self) -> None:
        with self._lock:
            self._behaviours.clear()
            self.requests.clear()

    # ------------------------------------------------------------------ connections

    def webhook_conn(self, path: str | None = None) -> str:
        """``AIRFLOW_CONN_*`` value (JSON) for an incoming-webhook connection."""
        return json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": self.url,
                "password": (path or self.webhook_path).lstrip("/"),
            }
        )

    def web_api_conn(self, token: str | None = None, **extra: Any) -> str:
        """``AIRFLOW_CONN_*`` value (JSON) for a Web API connection."""
        return json.dumps(
            {
                "conn_type": "slack",
                "password": token or self.token,
                "extra": {"base_url": f"{self.url}/api/", **extra},
            }
        )

    # ------------------------------------------------------------------ queries

    def posts(self, endpoint: str | None = None) -> list[Request]:
        """Requests answered as successful posts, optionally of one endpoint."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.delivered and (endpoint is None or r.endpoint == endpoint)
            ]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Request]:
        """Wait (bounded) until ``n`` requests have arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        with self._lock:
            return list(self.requests)

    # ------------------------------------------------------------------ handling

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"1700000000.{self._ts:06d}"

    def _reply(
        self, handler: BaseHTTPRequestHandler, status: int, body: str | dict, headers: tuple = ()
    ) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        try:
            handler.send_response(status)
            ctype = (
                "application/json; charset=utf-8"
                if isinstance(body, dict)
                else "text/plain; charset=utf-8"
            )
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(min(length, 10 << 20)) if length else b""
        path = handler.path.split("?", 1)[0]
        ctype = handler.headers.get("Content-Type", "")
        body: Any
        try:
            if "json" in ctype:
                body = json.loads(raw or b"{}")
            elif "x-www-form-urlencoded" in ctype:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                if isinstance(body.get("blocks"), str):
                    body["blocks"] = json.loads(body["blocks"])
            else:
                body = raw.decode(errors="replace")
        except ValueError:
            body = None
        if path.startswith("/api/"):
            endpoint = path[len("/api/") :]
        elif path.startswith("/services/"):
            endpoint = "webhook"
        else:
            endpoint = "other"
        with self._lock:
            behaviour = self._behaviours.popleft() if self._behaviours else None
        request = Request(
            method=handler.command,
            path=path,
            headers=dict(handler.headers.items()),
            raw=raw,
            body=body,
            at=time.monotonic(),
            endpoint=endpoint,
            behaviour=behaviour,
        )
        with self._lock:
            self.requests.append(request)

        if isinstance(behaviour, Close):
            request.response_status = None
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(behaviour, Status):
            request.response_status = behaviour.code
            self._reply(handler, behaviour.code, behaviour.body, behaviour.headers)
            return
        if isinstance(behaviour, Slow):
            self._stopping.wait(min(behaviour.seconds, MAX_SLOW_SECONDS))

        status, reply = self._normal(request)
        request.response_status = status
        request.delivered = status == 200 and (
            reply == "ok" or (isinstance(reply, dict) and reply.get("ok") is True)
        )
        self._reply(handler, status, reply)

    def _normal(self, request: Request) -> tuple[int, str | dict]:
        if request.endpoint == "webhook":
            if request.path != self.webhook_path:
                return 404, "no_service"
            if not isinstance(request.body, dict):
                return 400, "invalid_payload"
            if not request.body.get("text") and not request.body.get("blocks"):
                return 400, "no_text"
            return 200, "ok"
        if request.endpoint == "chat.postMessage":
            auth = request.headers.get("Authorization", "")
            if auth != f"Bearer {self.token}":
                return 200, {"ok": False, "error": "invalid_auth"}
            if not isinstance(request.body, dict) or not request.body.get("channel"):
                return 200, {"ok": False, "error": "channel_not_found"}
            ts = self._next_ts()
            return 200, {
                "ok": True,
                "channel": self.channel_id,
                "ts": ts,
                "message": {
                    "text": request.body.get("text"),
                    "ts": ts,
                    "thread_ts": request.body.get("thread_ts"),
                },
            }
        return 404, {"ok": False, "error": "unknown_method"}
