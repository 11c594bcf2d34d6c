"""Fake agent CLIs: small Python scripts the tests install as executables (``claude``, ``codex``, ...).

``REPLAY`` stands in for any CLI: it prints what the test prepared. It is steered through variables
its command's ``env`` sets (a command's ``env`` always reaches it):

* ``FAKE_OUTPUT``: a file whose bytes it prints on stdout; ``FAKE_STDERR``: text for stderr;
  ``FAKE_STATUS``: its exit status.
* ``FAKE_RECORD``: a file it writes its argv, stdin, working directory and environment to, as JSON.
* ``FAKE_SKIP_STDIN``: when set, it never reads stdin.

The others each act out one situation: a big prompt, a huge answer, a hang, children left behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPLAY = """
import json, os, sys
stdin = b"" if os.environ.get("FAKE_SKIP_STDIN") else sys.stdin.buffer.read()
if os.environ.get("FAKE_RECORD"):
    seen = {"argv": sys.argv[1:], "stdin": stdin.decode(), "cwd": os.getcwd(), "env": dict(os.environ)}
    with open(os.environ["FAKE_RECORD"], "w") as record:
        json.dump(seen, record)
if os.environ.get("FAKE_OUTPUT"):
    with open(os.environ["FAKE_OUTPUT"], "rb") as output:
        sys.stdout.buffer.write(output.read())
sys.stderr.write(os.environ.get("FAKE_STDERR", ""))
sys.exit(int(os.environ.get("FAKE_STATUS", "0")))
"""

# Prints a megabyte before it reads stdin: a caller that wrote all of stdin before reading stdout would
# deadlock with it. Then prints the sha256 and byte count of what came in.
DIGEST_STDIN = """
import hashlib, sys
sys.stdout.write("." * 1_000_000 + "\\n")
sys.stdout.flush()
data = sys.stdin.buffer.read()
print(hashlib.sha256(data).hexdigest(), len(data))
"""

# Prints 10 MB, then exits 0.
FLOOD = """
import sys
line = b"y" * 1023 + b"\\n"
for _ in range(10 * 1024):
    sys.stdout.buffer.write(line)
sys.stdout.buffer.write(sys.argv[1].encode() + b"\\n")
"""

# `hang <pid file> <ignore-term|obey-term>`: starts a child, which starts a grandchild; each writes its
# pid to the file. Once all three have, the leader prints "ready" and all of them sleep for good. With
# ignore-term, all three ignore SIGTERM.
HANG = """
import os, signal, subprocess, sys, time
pid_file, term = sys.argv[1], sys.argv[2]
role = sys.argv[3] if len(sys.argv) > 3 else "leader"
if term == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(pid_file, "a") as pids:
    pids.write(f"{os.getpid()}\\n")
after = {"leader": "child", "child": "grandchild"}.get(role)
if after is not None:
    below = subprocess.Popen([sys.executable, __file__, pid_file, term, after], stdout=subprocess.PIPE)
    below.stdout.readline()  # it is up, with its own children
print("ready" if role == "leader" else "up", flush=True)
while True:
    time.sleep(3600)
"""

# `leave-child <pid file> <holds-pipes|detached>`: starts a child that sleeps for good (holding the
# caller's stdout and stderr, or not), writes its pid, prints an answer and exits 0 at once.
LEAVE_CHILD = """
import subprocess, sys
pid_file, mode = sys.argv[1], sys.argv[2]
quiet = {} if mode == "holds-pipes" else {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
child = subprocess.Popen(
    [sys.executable, "-c", "import time\\nwhile True: time.sleep(3600)"], stdin=subprocess.DEVNULL, **quiet
)
with open(pid_file, "w") as pids:
    pids.write(f"{child.pid}\\n")
print("the answer", flush=True)
"""

# Prints a partial answer, then dies of SIGTERM it sends itself.
SUICIDE = """
import os, signal, sys
print("half an answer", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
"""


def install(bin_dir: Path, name: str, script: str) -> Path:
    """Write ``script`` as the executable ``bin_dir/name``, run by this test run's Python."""
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{script.lstrip()}", encoding="utf-8")
    path.chmod(0o755)
    return path


def is_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie has: only its parent's reaping is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc here: ask the kernel instead (a zombie then counts as alive)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def read_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]
