"""Deliver a :class:`~safeload.alerts.messages.Message`: webhook, Web API, or a local file.

* ``conn_type`` ``slackwebhook``: an incoming webhook, through the Slack provider's
  :class:`SlackWebhookHook`. No threads (a webhook cannot reply in one).
* ``conn_type`` ``slack``: the Web API's ``chat.postMessage`` through :class:`SlackHook`,
  with ``thread_ts`` for replies. The channel: the notifier's ``channel``, else the
  connection extra ``channel``, else ``#data-alerts``.
* no such connection: the alert is logged and appended as a JSON line to
  ``$AIRFLOW_HOME/safeload/alerts.jsonl``, labelled ``[slack not configured: alert
  written to <file>]``.

Sending never raises. Errors that may pass (HTTP 5xx, 429, timeouts, refused or dropped
connections) are retried by ``slack_sdk``'s own retry machinery, through the handlers
below: at most ``max_retries`` retries, exponential backoff with jitter, ``Retry-After``
honoured but capped, and all of it within ``budget`` seconds. Errors that will not pass
by themselves (a 4xx, ``invalid_auth``, ``channel_not_found``) are not retried. Then the
result is logged and returned as a :class:`SendResult`.

Secrets stay out of logs: ``slack_sdk`` logs the full request URL (a webhook URL *is*
the secret) when it retries, so the hooks get a logger of ours that is quiet and
scrubbed, and every error text we log or return goes through :func:`scrub`.

Airflow and the Slack provider are imported inside the functions that need them, so
importing this module (and the DAG files that use the notifiers) stays cheap.
"""

from __future__ import annotations

import fcntl
import functools
import http.client
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

if TYPE_CHECKING:
    from slack_sdk.http_retry.handler import RetryHandler

    from safeload.alerts.messages import Message

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "#data-alerts"
FALLBACK_FILE_ENV = "SAFELOAD_ALERT_FILE"
FALLBACK_FILE = "alerts.jsonl"
#: The fallback file is rotated (to ``.1``) past this size.
MAX_FALLBACK_BYTES = 5 << 20

# ---------------------------------------------------------------------------- scrubbing

_SECRET_PATTERNS = [
    (re.compile(r"(xox[a-z]-)[A-Za-z0-9-]+"), r"\1***"),
    (re.compile(r"xapp-[A-Za-z0-9-]+"), "xapp-***"),
    (re.compile(r"(hooks\.slack(?:-gov)?\.com/)[^\s'\"<>|]+"), r"\1***"),
    (re.compile(r"/services/T[A-Za-z0-9_-]+/B[A-Za-z0-9_-]+/[A-Za-z0-9_-]+"), "/services/***"),
    (re.compile(r"(?i)(bearer\s+)[^\s'\"]+"), r"\1***"),
    (
        re.compile(r"(?i)(\"?(?:token|password|authorization)\"?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
        r"\1***",
    ),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
]
_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Have :func:`scrub` redact ``secret`` (a connection's password) from now on."""
    if not secret or len(secret) < 6:
        return
    with _secrets_lock:
        if len(_known_secrets) >= 64:  # bounded: connections are few
            _known_secrets.pop()
        _known_secrets.add(secret)
        from urllib.parse import quote

        _known_secrets.add(quote(secret, safe=""))


def scrub(text: Any, extra: Iterable[str | None] = ()) -> str:
    """``text`` with Slack tokens, webhook URLs, passwords and known secrets redacted."""
    out = str(text)
    with _secrets_lock:
        secrets = sorted(
            {*(_known_secrets), *(s for s in extra if s and len(s) >= 6)}, key=len, reverse=True
        )
    for secret in secrets:
        out = out.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        out = pattern.sub(replacement, out)
    return out


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = scrub(record.getMessage())
            record.args = None
        except Exception:  # a log line must never break sending
            record.msg, record.args = "(log line dropped: could not be scrubbed)", None
        return True


#: The logger handed to slack_sdk's clients. slack_sdk logs the full request URL when it
#: retries and the connection error at ERROR on every attempt; we log retries ourselves.
sdk_logger = logging.getLogger("safeload.alerts.slack_sdk")
sdk_logger.setLevel(logging.CRITICAL)
sdk_logger.addFilter(_ScrubFilter())


# ---------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one alert.

    The defaults free the worker fast: a Slack that hangs costs at most ``budget``
    seconds (10) per alert, two attempts of 4 s; a Slack that answers 5xx or 429 gets
    its retries within the same 10 s.

    :param max_retries: retries after the first attempt (default 2).
    :param backoff: first wait in seconds after a 5xx or a connection error; doubles on
        each retry, with jitter (default 0.5).
    :param max_backoff: cap of that wait (default 2).
    :param retry_after_cap: cap of a 429's ``Retry-After`` (default 5): Slack asks for
        about a second; a longer ask is not worth holding a worker for.
    :param timeout: seconds for one HTTP attempt (default 4).
    :param budget: no retry starts unless its wait and a whole attempt (``timeout``)
        end within this many seconds of the first attempt (default 10): one send takes
        at most ``max(budget, timeout)`` seconds.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 2.0
    retry_after_cap: float = 5.0
    timeout: float = 4.0
    budget: float = 10.0

    ENV = {
        "max_retries": "SAFELOAD_ALERT_MAX_RETRIES",
        "backoff": "SAFELOAD_ALERT_BACKOFF",
        "max_backoff": "SAFELOAD_ALERT_MAX_BACKOFF",
        "retry_after_cap": "SAFELOAD_ALERT_RETRY_AFTER_CAP",
        "timeout": "SAFELOAD_ALERT_TIMEOUT",
        "budget": "SAFELOAD_ALERT_BUDGET",
    }

    def __post_init__(self) -> None:
        for name in (
            "max_retries",
            "backoff",
            "max_backoff",
            "retry_after_cap",
            "timeout",
            "budget",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ValueError(f"RetryPolicy {name}={value!r}: must be a number >= 0")
        if self.timeout <= 0:
            raise ValueError(f"RetryPolicy timeout={self.timeout!r}: must be > 0 seconds, e.g. 10")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """The defaults, overridden by ``SAFELOAD_ALERT_MAX_RETRIES``, ``..._BACKOFF``,
        ``..._MAX_BACKOFF``, ``..._RETRY_AFTER_CAP``, ``..._TIMEOUT``, ``..._BUDGET``."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for name, var in cls.ENV.items():
            raw = env.get(var)
            if raw in (None, ""):
                continue
            try:
                kwargs[name] = int(raw) if name == "max_retries" else float(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not a number; e.g. {var}=3") from None
        return cls(**kwargs)


class _Attempts:
    """The retry bookkeeping of one send, shared by its retry handlers."""

    def __init__(self, policy: RetryPolicy, label: str) -> None:
        self.policy = policy
        self.label = label
        self.reset()

    def reset(self) -> None:
        self.started = time.monotonic()
        self.retries = 0
        self.waited = 0.0
        self.last_problem: str | None = None
        self.gave_up: str | None = None

    def allow(self, wait: float, problem: str) -> bool:
        self.last_problem = problem
        if self.retries >= self.policy.max_retries:
            self.gave_up = f"{problem}; no retries left ({self.policy.max_retries} max)"
            return False
        if time.monotonic() - self.started + wait + self.policy.timeout > self.policy.budget:
            self.gave_up = (
                f"{problem}; a {wait:.1f} s wait and a {self.policy.timeout:g} s attempt would pass "
                f"the {self.policy.budget:g} s budget"
            )
            return False
        return True

    def wait(self, seconds: float, problem: str) -> None:
        self.retries += 1
        log.warning(
            "Slack %s: %s; retry %d of %d in %.1f s",
            self.label,
            scrub(problem),
            self.retries,
            self.policy.max_retries,
            seconds,
        )
        self.waited += seconds
        time.sleep(seconds)


#: Errors worth another try: refused, reset, dropped connections and timeouts.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    URLError,
    ConnectionError,
    TimeoutError,
    http.client.HTTPException,
)


@functools.cache
def handler_classes() -> tuple[type[RetryHandler], type[RetryHandler], type[RetryHandler]]:
    """slack_sdk retry handlers whose waits come from a :class:`RetryPolicy`.

    Built on first use: importing slack_sdk costs about a second, which a DAG file that
    only imports the notifiers should not pay at parse time.

    :return: the 429, 5xx and connection-error handler classes.
    """
    from slack_sdk.http_retry.handler import RetryHandler

    class BoundedRetryHandler(RetryHandler):
        def __init__(self, attempts: _Attempts) -> None:
            # the count is enforced by ``attempts`` (shared by all handlers), which also
            # records why it gave up; slack_sdk's own check would stop it silently
            super().__init__(max_retry_count=attempts.policy.max_retries + 1)
            self.attempts = attempts
            self._next_wait = 0.0

        def _problem(self, response, error) -> str | None:
            raise NotImplementedError

        def _wait(self, state, response) -> float:
            p = self.attempts.policy
            base = min(p.backoff * (2**self.attempts.retries), p.max_backoff)
            return base * (0.5 + random.random() / 2)  # "equal jitter": between half and all of it

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            problem = self._problem(response, error)
            if problem is None:
                return False
            wait = self._wait(state, response)
            if not self.attempts.allow(wait, problem):
                return False
            self._next_wait = wait
            return True

        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
            state.next_attempt_requested = True
            self.attempts.wait(self._next_wait, self.attempts.last_problem or "error")
            state.increment_current_attempt()

    class RateLimitRetryHandler(BoundedRetryHandler):
        """Retries HTTP 429 after its ``Retry-After`` (capped), or a backoff without one."""

        def _problem(self, response, error):
            if response is not None and response.status_code == 429:
                return "HTTP 429 rate limited"
            return None

        def _wait(self, state, response):
            for name, values in (response.headers if response is not None else {}).items():
                if name.lower() == "retry-after":
                    value = values[0] if isinstance(values, list) else values
                    try:
                        return min(max(float(value), 0.0), self.attempts.policy.retry_after_cap)
                    except (TypeError, ValueError):
                        break
            return min(super()._wait(state, response) + 1.0, self.attempts.policy.retry_after_cap)

    class ServerErrorRetryHandler(BoundedRetryHandler):
        """Retries HTTP 5xx with exponential backoff."""

        def _problem(self, response, error):
            if response is not None and 500 <= response.status_code <= 599:
                return f"HTTP {response.status_code}"
            return None

    class ConnectionErrorRetryHandler(BoundedRetryHandler):
        """Retries connection errors and timeouts (slack_sdk's own handler skips timeouts)."""

        def _problem(self, response, error):
            if response is not None or error is None:
                return None
            if isinstance(error, RETRYABLE_ERRORS):
                return f"{type(error).__name__}: {error}"
            return None

    return RateLimitRetryHandler, ServerErrorRetryHandler, ConnectionErrorRetryHandler


def retry_handlers(attempts: _Attempts) -> list[RetryHandler]:
    """Fresh handlers for one transport, sharing ``attempts``."""
    return [cls(attempts) for cls in handler_classes()]


# ---------------------------------------------------------------------------- transports


@dataclass
class SendResult:
    """How sending one alert went. ``error`` is scrubbed of secrets."""

    ok: bool
    transport: str  # webhook | web_api | file | none
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    ts: str | None = None
    channel: str | None = None
    path: str | None = None
    elapsed: float = 0.0
    retry_waits: float = field(default=0.0, repr=False)


class Transport:
    """Sends messages; :meth:`send` never raises."""

    name = "none"
    supports_threads = False
    #: the ``contacts`` mapping in the Slack connection's extra (see safeload.alerts.contacts)
    contacts: Any = None

    def send(
        self,
        message: Message,
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
        broadcast: bool = False,
    ) -> SendResult:
        started = time.monotonic()
        try:
            result = self._send(message, thread_ts=thread_ts, channel=channel, broadcast=broadcast)
        except Exception as e:  # never into Airflow
            result = SendResult(
                ok=False,
                transport=self.name,
                error=scrub(f"{type(e).__name__}: {e}", self._secrets()),
            )
        result.elapsed = time.monotonic() - started
        if not result.ok:
            log.error(
                "Slack alert not delivered (%s, %d attempt(s), %.1f s): %s. The task's own state is unchanged; "
                "the alert text follows: %s",
                self.name,
                result.attempts,
                result.elapsed,
                result.error,
                scrub(message.text, self._secrets()),
            )
        return result

    def _send(
        self, message: Message, *, thread_ts: str | None, channel: str | None, broadcast: bool
    ) -> SendResult:
        raise NotImplementedError

    def _secrets(self) -> list[str]:
        return []


class _HookTransport(Transport):
    def __init__(
        self, conn_id: str, *, policy: RetryPolicy, secrets: Iterable[str | None] = ()
    ) -> None:
        self.conn_id = conn_id
        self.policy = policy
        self.secrets = [s for s in secrets if s]
        for s in self.secrets:
            register_secret(s)
        self.attempts = _Attempts(policy, self.name)
        self._lock = threading.Lock()
        self._hook: Any = None

    def _secrets(self) -> list[str]:
        return self.secrets

    def _failed(self, problem: str, status: int | None = None) -> SendResult:
        a = self.attempts
        error = a.gave_up or problem
        if a.gave_up and problem not in a.gave_up:
            error = f"{a.gave_up}; last error: {problem}"
        return SendResult(
            ok=False,
            transport=self.name,
            attempts=a.retries + 1,
            status=status,
            error=scrub(error, self.secrets),
            retry_waits=a.waited,
        )

    def send(self, message, *, thread_ts=None, channel=None, broadcast=False):
        # one send at a time per transport: the retry bookkeeping is per send
        with self._lock:
            self.attempts.reset()
            return super().send(message, thread_ts=thread_ts, channel=channel, broadcast=broadcast)


class WebhookTransport(_HookTransport):
    """An incoming webhook (``conn_type`` ``slackwebhook``) via :class:`SlackWebhookHook`."""

    name = "webhook"
    supports_threads = False

    @property
    def hook(self):
        if self._hook is None:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            self._hook = SlackWebhookHook(
                slack_webhook_conn_id=self.conn_id,
                timeout=self.policy.timeout,
                retry_handlers=retry_handlers(self.attempts),
                logger=sdk_logger,
            )
        return self._hook

    def _send(self, message, *, thread_ts, channel, broadcast):
        # a webhook posts where it was installed: channel, thread_ts and broadcast do not apply
        client = self.hook.client  # the hook's send() raises on non-200 without the status
        try:
            response = client.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as e:
            return self._failed(f"{type(e).__name__}: {e}")
        if response.status_code == 200:
            a = self.attempts
            return SendResult(
                ok=True,
                transport=self.name,
                attempts=a.retries + 1,
                status=200,
                retry_waits=a.waited,
            )
        body = (response.body or "")[:200]
        return self._failed(f"HTTP {response.status_code}: {body}", status=response.status_code)


class WebApiTransport(_HookTransport):
    """The Web API (``conn_type`` ``slack``): ``chat.postMessage`` via :class:`SlackHook`."""

    name = "web_api"
    supports_threads = True

    def __init__(
        self, conn_id: str, *, channel: str, policy: RetryPolicy, secrets: Iterable[str | None] = ()
    ) -> None:
        super().__init__(conn_id, policy=policy, secrets=secrets)
        self.channel = channel

    @property
    def hook(self):
        if self._hook is None:
            from airflow.providers.slack.hooks.slack import SlackHook

            self._hook = SlackHook(
                slack_conn_id=self.conn_id,
                timeout=self.policy.timeout,
                retry_handlers=retry_handlers(self.attempts),
                logger=sdk_logger,
            )
        return self._hook

    def _send(self, message, *, thread_ts, channel, broadcast):
        from slack_sdk.errors import SlackApiError

        body: dict[str, Any] = {
            "channel": channel or self.channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread_ts:
            body["thread_ts"] = thread_ts
            if broadcast:
                body["reply_broadcast"] = True
        try:
            response = self.hook.call("chat.postMessage", json=body)
        except SlackApiError as e:
            status = getattr(e.response, "status_code", None)
            data = getattr(e.response, "data", None)
            detail = data.get("error") if isinstance(data, dict) else None
            return self._failed(
                f"Slack API error {detail or ''} (HTTP {status})".replace("  ", " "), status=status
            )
        except Exception as e:
            return self._failed(f"{type(e).__name__}: {e}")
        a = self.attempts
        return SendResult(
            ok=True,
            transport=self.name,
            attempts=a.retries + 1,
            status=response.status_code,
            ts=response.get("ts"),
            channel=response.get("channel") or body["channel"],
            retry_waits=a.waited,
        )


def default_fallback_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$SAFELOAD_ALERT_FILE``, else ``$AIRFLOW_HOME/safeload/alerts.jsonl``."""
    env = os.environ if environ is None else environ
    if env.get(FALLBACK_FILE_ENV):
        return Path(env[FALLBACK_FILE_ENV])
    home = env.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return Path(home) / "safeload" / FALLBACK_FILE


class FileTransport(Transport):
    """No Slack: log the alert and append it as one JSON line to a local file."""

    name = "file"
    supports_threads = False

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, reason: str = "slack not configured"
    ) -> None:
        self.path = Path(path) if path is not None else default_fallback_path()
        self.reason = reason

    def _send(self, message, *, thread_ts, channel, broadcast):
        label = f"[{self.reason}: alert written to {self.path}]"
        record = {
            "time": datetime.now(timezone.utc).isoformat(),
            "label": label,
            "kind": message.kind,
            "text": scrub(message.text),
            "blocks": json.loads(scrub(json.dumps(message.blocks))),
            "thread_ts": thread_ts,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                fcntl.flock(
                    f.fileno(), fcntl.LOCK_EX
                )  # appends of concurrent tasks stay whole lines
                try:
                    if f.tell() > MAX_FALLBACK_BYTES:
                        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                        with open(self.path, "a", encoding="utf-8") as fresh:
                            fresh.write(line)
                    else:
                        f.write(line)
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        except OSError as e:
            log.warning(
                "%s %s",
                label.replace("alert written to", "could not write the alert to"),
                scrub(message.text),
            )
            return SendResult(
                ok=False, transport=self.name, attempts=1, error=scrub(f"{e}"), path=str(self.path)
            )
        log.warning("%s %s", label, scrub(message.text))
        return SendResult(ok=True, transport=self.name, attempts=1, path=str(self.path))


def resolve_transport(
    conn_id: str,
    *,
    channel: str | None = None,
    policy: RetryPolicy | None = None,
    fallback_path: str | os.PathLike[str] | None = None,
) -> Transport:
    """The transport for Airflow connection ``conn_id``, chosen by its ``conn_type``.

    A missing connection, or one of another type, gives the file fallback (the reason
    is in the label). Never raises.
    """
    policy = policy or RetryPolicy.from_env()
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception as e:
        if type(e).__name__ == "AirflowNotFoundException":
            return FileTransport(
                fallback_path, reason=f"slack not configured (no connection {conn_id!r})"
            )
        return FileTransport(
            fallback_path,
            reason=f"slack connection {conn_id!r} could not be read ({scrub(f'{type(e).__name__}: {e}')})",
        )
    password = conn.password
    conn_type = (conn.conn_type or "").lower().replace("_", "").replace("-", "")
    extra = {}
    try:
        extra = conn.extra_dejson or {}
    except Exception:
        pass
    transport: Transport
    if conn_type == "slackwebhook":
        secrets = [password]
        if password and conn.host:
            secrets.append(f"{conn.host.rstrip('/')}/{password.strip().lstrip('/')}")
        transport = WebhookTransport(conn_id, policy=policy, secrets=secrets)
        transport.contacts = extra.get("contacts")
        return transport
    if conn_type == "slack":
        chosen = (
            channel or extra.get("channel") or extra.get("extra__slack__channel") or DEFAULT_CHANNEL
        )
        transport = WebApiTransport(conn_id, channel=chosen, policy=policy, secrets=[password])
        transport.contacts = extra.get("contacts")
        return transport
    return FileTransport(
        fallback_path,
        reason=(
            f"slack not configured (connection {conn_id!r} has conn_type {conn.conn_type!r}; "
            "expected 'slackwebhook' or 'slack')"
        ),
    )
