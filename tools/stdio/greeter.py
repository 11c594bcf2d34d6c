"""The handshake, answered while the server is still starting.

A client waits for the answer to its first request, ``initialize`` (protocols up to 2025-11-25) or
``server/discover`` (2026-07-28), before it offers a server's tools: Claude Code told its model "still
connecting" meanwhile. Importing the MCP SDK alone takes most of a second of CPU (its protocol types are
some 600 pydantic models), and more on a busy machine. So ``serve`` starts a ``Greeter`` before it
imports the SDK: a thread that reads the first line of stdin and, if it is a well-formed ``initialize``
or ``server/discover``, writes the answer at once. The answer is static: the server's name, version,
instructions and capabilities, and for ``initialize`` the protocol version, negotiated as the SDK does.

Once the SDK is up, ``hand_over`` gives it everything read so far: the SDK handles the first request as
usual (the connection's protocol version and the client's capabilities come from it), and ``stdio``
drops the SDK's own answer to it after checking that it is the same, with a warning if not (a new SDK
answering differently: the copy here is out of date; tests/tools/stdio/test_greeter.py compares the two).
Any other first line, malformed or not, is left to the SDK, as is every line after the first.
"""

from __future__ import annotations

import json
import os
import select
import threading
from dataclasses import dataclass
from typing import Any, Final, cast

from ..identity import INSTRUCTIONS, NAME, TITLE

# As mcp_types.version has them (importing it imports every protocol type).
HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: Final = ("2026-07-28",)
_META: Final = "io.modelcontextprotocol/"
# What tools/tasks advertises: core tasks at 2025-11-25 (core.py), the tasks extension at 2026-07-28.
_CORE_TASKS: Final = "2025-11-25"
_TASKS_CAPABILITY: Final[dict[str, Any]] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
_TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
# A first line longer than this is not a handshake: the SDK gets it unanswered.
_MAX_FIRST_LINE: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Greeting:
    """The first request, answered here; its answer as sent."""

    request_id: str | int
    answer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Handover:
    """What the greeter read (the SDK reads it first), and the greeting, if it answered one."""

    read: bytes
    greeting: Greeting | None


class Greeter:
    """Answers the first request on ``fd_in`` if it is a handshake, on ``fd_out``, from a thread."""

    def __init__(self, version: str, fd_in: int = 0, fd_out: int = 1) -> None:
        self._version = version
        self._fd_in, self._fd_out = fd_in, fd_out
        self._read = bytearray()
        self._greeting: Greeting | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._greet, name="fanout-greeter", daemon=True)

    def start(self) -> Greeter:
        self._thread.start()
        return self

    def hand_over(self) -> Handover:
        """Stop reading (an answer being written is written first) and give what was read."""
        os.write(self._wake_w, b"x")
        self._thread.join()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        return Handover(bytes(self._read), self._greeting)

    def _greet(self) -> None:
        poller = select.poll()
        poller.register(self._fd_in, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while b"\n" not in self._read and len(self._read) <= _MAX_FIRST_LINE:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready:
                return
            try:
                chunk = os.read(self._fd_in, _MAX_FIRST_LINE)
            except OSError:  # no stdin to read: the SDK finds that out too
                return
            if not chunk:
                return
            self._read += chunk
        first = bytes(self._read[: self._read.find(b"\n") + 1])
        greeting = self._answer(first) if first else None
        if greeting is not None:
            line = json.dumps({"jsonrpc": "2.0", "id": greeting.request_id, "result": greeting.answer})
            try:
                _write_all(self._fd_out, line.encode() + b"\n")
            except OSError:  # the client has gone; the SDK will find out
                return
            self._greeting = greeting

    def _answer(self, line: bytes) -> Greeting | None:
        try:
            request: Any = json.loads(line)
        except ValueError:
            return None
        if not isinstance(request, dict):
            return None
        request = cast(dict[str, Any], request)
        request_id, params, method = request.get("id"), request.get("params"), request.get("method")
        if request.get("jsonrpc") != "2.0" or isinstance(request_id, bool) or not isinstance(params, dict):
            return None
        if not isinstance(request_id, str | int):
            return None
        params = cast(dict[str, Any], params)
        if method == "initialize":
            answer = initialize_answer(params, self._version)
        elif method == "server/discover":
            answer = discover_answer(params, self._version)
        else:
            return None
        return Greeting(request_id, answer) if answer is not None else None


def initialize_answer(params: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The SDK's answer to a well-formed ``initialize`` with ``params``; None for any other."""
    client = params.get("clientInfo")
    well_formed = (
        isinstance(params.get("protocolVersion"), str)
        and isinstance(params.get("capabilities"), dict)
        and isinstance(client, dict)
        and all(isinstance(cast(dict[str, Any], client).get(key), str) for key in ("name", "version"))
    )
    if not well_formed:
        return None
    asked = params["protocolVersion"]
    negotiated = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
    capabilities: dict[str, Any] = {
        "prompts": {"listChanged": False},
        "resources": {"listChanged": False, "subscribe": False},
        "tools": {"listChanged": False},
    }
    if negotiated == _CORE_TASKS:
        capabilities["tasks"] = _TASKS_CAPABILITY
    return {
        "capabilities": capabilities,
        "instructions": INSTRUCTIONS,
        "protocolVersion": negotiated,
        "serverInfo": _server_info(version),
    }


def discover_answer(params: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The SDK's answer to a well-formed ``server/discover`` with ``params``; None for any other."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    meta = cast(dict[str, Any], meta)
    if meta.get(f"{_META}protocolVersion") not in MODERN_VERSIONS:
        return None
    if not isinstance(meta.get(f"{_META}clientCapabilities"), dict):
        return None
    return {
        "cacheScope": "private",
        "capabilities": {
            "extensions": {_TASKS_EXTENSION: {}},
            "prompts": {"listChanged": True},
            "resources": {"listChanged": True, "subscribe": True},
            "tools": {"listChanged": True},
        },
        "instructions": INSTRUCTIONS,
        "resultType": "complete",
        "supportedVersions": list(MODERN_VERSIONS),
        "ttlMs": 0,
        "_meta": {f"{_META}serverInfo": _server_info(version)},
    }


def _server_info(version: str) -> dict[str, Any]:
    return {"name": NAME, "title": TITLE, "version": version}


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
