"""What a failed call to the Messages API means: a ``Transient`` fault to retry, or a ``TaskFailure``.

Provider exceptions (the SDK's and httpx's) are translated here and nowhere else: the API backend,
the batch backend and ``doctor`` all ask ``classify``. A transient fault (429, 529, 5xx, 408, 409, a
dropped or refused connection, an ``overloaded_error`` mid-stream) is retried by the caller with
``backoff_delay``; 429 and 529 are the provider pushing back (``Transient.pushback``). What is certain
to fail (a refused key, a bad request, an account that cannot be billed) is a ``TaskFailure`` whose
message says what to do.
"""

from __future__ import annotations

import datetime
import math
import random
from email.utils import parsedate_to_datetime
from typing import Final

import anthropic
import httpx2

from ..core.errors import TaskFailure
from ..core.state import ErrorKind
from .endpoint import Refused

_RETRYABLE_STATUS: Final = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class Transient(Exception):
    """A fault worth retrying. ``pushback`` marks the provider asking for less load (429/529);
    ``unconnected`` says why a try never reached the endpoint (refused, a name that does not resolve, a
    proxy that would not connect), or is None when it did."""

    def __init__(
        self, what: str, retry_after: float | None, *, pushback: bool, unconnected: str | None = None
    ) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after
        self.pushback = pushback
        self.unconnected = unconnected

    @property
    def kind(self) -> ErrorKind:
        """What the task fails as if its time runs out on this fault."""
        return ErrorKind.RATE_LIMITED if self.pushback else ErrorKind.API_ERROR


def backoff_delay(fault: Transient, attempt: int, base_s: float, cap_s: float) -> float:
    """How long to wait before try ``attempt + 1``: the provider's retry-after if it gave one, else
    exponential back-off from ``base_s`` with jitter; never more than ``cap_s``."""
    if fault.retry_after is not None and fault.retry_after > 0:
        return min(fault.retry_after, cap_s)
    backoff = base_s * 2 ** min(attempt - 1, 16)
    return min(backoff, cap_s) * random.uniform(0.75, 1.0)  # jitter, not crypto


def classify(exc: Exception) -> Exception:
    """Translate a provider exception into ``Transient`` (retry) or ``TaskFailure`` (give up)."""
    if isinstance(exc, anthropic.APIStatusError):
        return _classify_status(exc)
    if _unconnected(exc):
        why = _cause(exc, detailed=True)
        what = f"could not connect to the Messages API ({why})"
        return Transient(what, None, pushback=False, unconnected=why)
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return Transient("the Messages API did not answer in time", None, pushback=False)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return Transient(f"connection to the Messages API failed ({_cause(exc)})", None, pushback=False)
    if isinstance(exc, anthropic.CredentialsError):
        return TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, f"the Anthropic credentials cannot be used: {exc}")
    if isinstance(exc, anthropic.APIResponseValidationError | httpx2.StreamError | ValueError):
        # A garbled answer (bad JSON in an event, a stream read twice): a fresh attempt may well work.
        return Transient(f"the answer could not be read ({type(exc).__name__})", None, pushback=False)
    if isinstance(exc, anthropic.AnthropicError):
        return TaskFailure(ErrorKind.API_ERROR, f"the Anthropic SDK failed: {exc}")
    return exc


# The status an `error` event inside a streamed (HTTP 200) answer stands for, by its error type.
_STREAM_ERROR_STATUS: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _classify_status(exc: anthropic.APIStatusError) -> Exception:
    status, headers = exc.status_code, exc.response.headers
    detail = exc.api_message or exc.message
    if status == 200:  # an `error` event inside a streamed answer: classify it by its error type
        status = _STREAM_ERROR_STATUS.get(str(exc.type), 500)
        if status in _RETRYABLE_STATUS:
            label = f"the answer stream broke off ({exc.type})"
            return Transient(label, None, pushback=status in {429, 529})
    should_retry = headers.get("x-should-retry")
    retryable = status in _RETRYABLE_STATUS and not _is_spend_limit(exc)
    if should_retry == "true" or (retryable and should_retry != "false"):
        label = {429: "rate limited (429)", 529: "overloaded (529)"}.get(status, f"HTTP {status}")
        return Transient(label, _retry_after(headers), pushback=status in {429, 529})
    request_id = f" (request id {exc.request_id})" if exc.request_id else ""
    if status in {401, 403}:
        request = f"; request id {exc.request_id}" if exc.request_id else ""
        return Refused(status, f"{status} {exc.type or 'error'}: {detail}{request}")
    if _is_spend_limit(exc) or status == 402:
        return TaskFailure(
            ErrorKind.BACKEND_UNAVAILABLE, f"the account cannot be billed ({status}: {detail}){request_id}."
        )
    if status == 404:
        return TaskFailure(
            ErrorKind.INVALID_INPUT,
            f"the Messages API answered 404: {detail}{request_id}. Most often the model id is wrong; "
            "use one such as claude-sonnet-5-5, or leave model unset for the server's default.",
        )
    if status in {400, 413, 422}:
        return TaskFailure(
            ErrorKind.INVALID_INPUT,
            f"the Messages API rejected the request ({status}: {detail}){request_id}. Change the task "
            "(a shorter prompt, fewer files, another max_tokens or model) and spawn it again.",
        )
    return TaskFailure(ErrorKind.API_ERROR, f"the Messages API answered {status}: {detail}{request_id}")


def _is_spend_limit(exc: anthropic.APIStatusError) -> bool:
    return bool(exc.error_code and "spend_limit" in str(exc.error_code))


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms`` first, then ``retry-after``."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        seconds = _number(raw_ms)
        if seconds is not None:
            return seconds / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _cause(exc: Exception, *, detailed: bool = False) -> str:
    # httpx's own error names the failure (whichever transport's exception it was made from); the SDK's
    # wraps httpx's.
    cause = exc if isinstance(exc, httpx2.TransportError) else exc.__cause__ or exc.__context__ or exc
    name = type(cause).__name__
    return f"{name}: {cause}" if detailed and str(cause) else name


def _unconnected(exc: Exception) -> bool:
    """Whether the try never reached the endpoint: no connection was made (refused, a name that does not
    resolve, a connect timeout, a proxy that would not connect), so nothing was sent or billed."""
    cause = exc if isinstance(exc, httpx2.TransportError) else exc.__cause__ or exc.__context__
    return isinstance(cause, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.ProxyError)


def give_up(fault: Transient, attempts: int, elapsed: float) -> TaskFailure:
    advice = (
        "Its siblings kept their results. Spawn this task again later, or with a lower max_concurrency."
        if fault.pushback
        else "Spawn this task again later; if it keeps failing, check the provider's status."
    )
    return TaskFailure(
        fault.kind,
        f"gave up after {attempts} attempts over {elapsed:.0f} s: {fault.what}; the task's timeout leaves "
        f"no time for another try. {advice}",
    )
