"""Fake agent CLIs: small Python scripts the tests install as executables (``claude``, ``codex``, ...).

``REPLAY`` stands in for any CLI: it prints what the test prepared. It is steered through variables
its command's ``env`` sets (a command's ``env`` always reaches it):

* ``FAKE_OUTPUT``: a file whose bytes it prints on stdout; ``FAKE_STDERR``: text for stderr;
  ``FAKE_STATUS``: its exit status.
* ``FAKE_RECORD``: a file it writes its argv, stdin, working directory and environment to, as JSON.
* ``FAKE_SKIP_STDIN``: when set, it never reads stdin.

``CLAUDE`` and ``CODEX_HANG`` are the two agent CLIs, speaking their real output formats. The others each
act out one situation: a big prompt, a huge answer, a hang, children left behind.
"""

from __future__ import annotations

import os
import subprocess
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

# Claude Code in print mode with `--output-format stream-json --verbose`: reads its prompt on stdin and
# prints one JSON event a line: init, a text and a tool use (Read README.md), the tool's result, then its
# answer and the result event (cost, usage). Steered by its command's env:
# * FAKE_GATE: a port on 127.0.0.1; it connects at once and, after the tool's result, waits for a byte
#   from it before it answers (the test holds it there while it looks at the partial output).
# * FAKE_ANSWER_BYTES: the answer is that many "x" (a huge answer, in the last text and the result).
# * FAKE_ERROR: the result reports is_error with that message and it exits 1 (as a logged-out CLI does).
CLAUDE = """
import json, os, socket, sys
def say(event):
    print(json.dumps({**event, "session_id": "5f0c1d2e"}), flush=True)
def message(role, *content):
    return {"type": role, "message": {"role": role, "content": list(content)}}
gate = socket.create_connection(("127.0.0.1", int(os.environ["FAKE_GATE"]))) if "FAKE_GATE" in os.environ else None
prompt = sys.stdin.read()
say({"type": "system", "subtype": "init", "cwd": os.getcwd(), "model": "claude-sonnet-4-6",
     "tools": ["Read", "Grep", "Glob"], "permissionMode": "default"})
say(message("assistant", {"type": "text", "text": "Looking at the code."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "README.md"}}))
say(message("user", {"type": "tool_result", "tool_use_id": "toolu_1", "content": "# A readme"}))
if gate is not None:
    gate.recv(1)
error = os.environ.get("FAKE_ERROR")
size = int(os.environ.get("FAKE_ANSWER_BYTES", "0"))
answer = "x" * size if size else f"Read {len(prompt)} characters of prompt."
if not error:
    say(message("assistant", {"type": "text", "text": answer}))
say({
    "type": "result", "subtype": "success", "is_error": bool(error), "duration_ms": 1998, "num_turns": 2,
    "result": error or answer, "stop_reason": "end_turn", "total_cost_usd": 0.0079825,
    "usage": {"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 15635,
              "output_tokens": 6},
    "modelUsage": {"claude-sonnet-4-6": {"inputTokens": 3, "outputTokens": 6, "costUSD": 0.0079825}},
})
sys.exit(1 if error else 0)
"""

# `codex exec --json` that says it is looking around, runs a command that never ends (a child, which
# starts a grandchild), and hangs. Each process appends its pid to FAKE_PIDS; the agent message comes
# only once all three have.
CODEX_HANG = """
import json, os, subprocess, sys, time
role = os.environ.get("FAKE_ROLE", "codex")
with open(os.environ["FAKE_PIDS"], "a") as pids:
    pids.write(f"{os.getpid()}\\n")
below = {"codex": "child", "child": "grandchild"}.get(role)
if below is not None:
    env = {**os.environ, "FAKE_ROLE": below}
    started = subprocess.Popen([sys.executable, __file__], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    started.stdout.readline()  # it is up, with its own children
if role == "codex":
    sys.stdin.read()
    command = {"id": "item_1", "type": "command_execution", "command": "bash -lc 'make test'"}
    for event in [
        {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": "Running the tests."}},
        {"type": "item.started", "item": {**command, "status": "in_progress"}},
    ]:
        print(json.dumps(event), flush=True)
else:
    print("up", flush=True)
while True:
    time.sleep(3600)
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

# `leave-child <pid file> <holds-pipes|detached|setsid>`: starts a child that sleeps for good (holding the
# caller's stdout and stderr; or not; or not and in a session of its own), writes its pid, prints an
# answer and exits 0 at once.
LEAVE_CHILD = """
import subprocess, sys
pid_file, mode = sys.argv[1], sys.argv[2]
quiet = {} if mode == "holds-pipes" else {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
child = subprocess.Popen(
    [sys.executable, "-c", "import time\\nwhile True: time.sleep(3600)"],
    stdin=subprocess.DEVNULL,
    start_new_session=mode == "setsid",
    **quiet,
)
with open(pid_file, "w") as pids:
    pids.write(f"{child.pid}\\n")
print("the answer", flush=True)
"""

# `family <pid file>`: the leader starts a child, which starts a grandchild and a daemon (a grandchild in a
# session of its own, as `setsid` makes) and then exits, leaving both to whoever adopts orphans. Each
# writes its pid to the file, the leader first; once all four have, the leader prints "ready". All but
# the child sleep for good.
FAMILY = """
import os, subprocess, sys, time
pid_file = sys.argv[1]
role = sys.argv[2] if len(sys.argv) > 2 else "leader"
with open(pid_file, "a") as pids:
    pids.write(f"{os.getpid()}\\n")
def start(role, **how):
    below = subprocess.Popen(
        [sys.executable, __file__, pid_file, role], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, **how
    )
    below.stdout.readline()  # it is up, with its own children
if role == "leader":
    start("child")
elif role == "child":
    start("grandchild")
    start("daemon", start_new_session=True)
    sys.exit(0)
print("ready" if role == "leader" else "up", flush=True)
while True:
    time.sleep(3600)
"""

# `snoop TOP`: walks up from itself through every ancestor up to the process TOP (no further: above it
# are the test's own ancestors) and prints, for each, what it can read of it: its environ, cmdline, maps,
# where its file descriptors point and what the regular files among them hold, and whatever looks like
# an Anthropic key ("sk-ant-") in its memory; "denied" where it cannot. First it says who it runs as.
SNOOP = """
import os, sys

def parent(pid):
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return int(stat.read().rsplit(b")", 1)[1].split()[1])

def keys_in_memory(pid):
    hits = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if not perms.startswith("r") or end - start > 1 << 30:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            at = data.find(b"sk-ant-")
            while at >= 0:
                hits.append(data[at : at + 40])
                at = data.find(b"sk-ant-", at + 1)
    return hits

def files(pid):
    seen = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        seen[fd] = target
        if target.startswith("/") and os.path.isfile(target):
            try:
                with open(f"/proc/{pid}/fd/{fd}", "rb") as held:
                    seen[fd] += " holds " + repr(held.read(4096))
            except OSError:
                pass
    return seen

def attempt(pid, what, read):
    try:
        print(f"{pid} {what}: {read()!r}")
    except OSError as exc:
        print(f"{pid} {what}: denied ({type(exc).__name__})")

print(f"uid {os.getuid()} gid {os.getgid()} groups {os.getgroups()}")
top, pid = int(sys.argv[-1]), os.getpid()
while pid not in (top, 1):
    pid = parent(pid)
    attempt(pid, "environ", lambda: open(f"/proc/{pid}/environ", "rb").read())
    attempt(pid, "cmdline", lambda: open(f"/proc/{pid}/cmdline", "rb").read())
    attempt(pid, "maps", lambda: len(open(f"/proc/{pid}/maps").read()))
    attempt(pid, "mem", lambda: keys_in_memory(pid))
    attempt(pid, "fd", lambda: files(pid))
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


def python_runnable_by(uid: int) -> str:
    """A Python of this version that ``uid`` (and its group of the same number) can run: this one, else the
    system's (this one may live where only root can reach, such as under /root)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/local/bin/{name}", f"/usr/bin/{name}"):
        try:
            subprocess.run(
                [candidate, "-I", "-c", "pass"],
                user=uid,
                group=uid,
                extra_groups=[],
                capture_output=True,
                check=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    raise AssertionError(f"no {name} that uid {uid} can run")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
