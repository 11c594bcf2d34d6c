"""A fake agent CLI that edits files in its working directory, steered by directives in its prompt, and
helpers that make real git repositories for the tests.

``EDITOR`` reads its prompt on stdin and acts on every directive in it:

* ``[[edits64:B64]]``: B64 is the base64 of a JSON object {path: text, or null to delete}; each path is
  written (or deleted) relative to its working directory (a path with ``..`` or an absolute one writes
  wherever it points: the fake that tries to write outside).
* ``[[commit]]``: it runs ``git add -A`` and ``git commit`` itself, as an agent told not to might.
* ``[[worktrees]]``: it prints ``git worktree list --porcelain`` as it sees it while it runs.
* ``[[cat:PATH]]``: before any edit, it prints the file at PATH as it found it.
* ``[[say64:B64]]``: it prints the text whose base64 is B64 (an answer that a later prompt quotes, with
  directives that then act: a resolving task's).

It answers "edited N files" on stdout.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

EDITOR = """
import base64, json, os, re, subprocess, sys
prompt = sys.stdin.read()
done = 0
for path in re.findall(r"\\[\\[cat:([^\\]]+)\\]\\]", prompt):
    print(open(path).read())
for b64 in re.findall(r"\\[\\[edits64:([A-Za-z0-9+/=]+)\\]\\]", prompt):
    for path, text in json.loads(base64.b64decode(b64)).items():
        if text is None:
            os.remove(path)
        else:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w") as out:
                out.write(text)
        done += 1
if "[[commit]]" in prompt:
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "agent"], check=True)
if "[[worktrees]]" in prompt:
    print(subprocess.run(["git", "worktree", "list", "--porcelain"], capture_output=True, text=True).stdout)
for b64 in re.findall(r"\\[\\[say64:([A-Za-z0-9+/=]+)\\]\\]", prompt):
    print(base64.b64decode(b64).decode())
print(f"edited {done} files")
"""


def edits(files: dict[str, str | None]) -> str:
    """The directive that has EDITOR write (or, for None, delete) ``files``."""
    return f"[[edits64:{base64.b64encode(json.dumps(files).encode()).decode()}]]"


def says(text: str) -> str:
    """The directive that has EDITOR print ``text`` in its answer."""
    return f"[[say64:{base64.b64encode(text.encode()).decode()}]]"


def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` with ``files`` committed."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    run_git(path, "add", "-A")
    run_git(path, "commit", "-qm", "start")
    return path


def state(repo: Path) -> tuple[str, str, str, str]:
    """What the user would see of the repository: HEAD, branches, the index (staged) and the status."""
    return (
        run_git(repo, "rev-parse", "HEAD"),
        run_git(repo, "branch", "-a"),
        run_git(repo, "diff", "--cached", "--name-status"),
        run_git(repo, "status", "--porcelain", "--untracked-files=all"),
    )
