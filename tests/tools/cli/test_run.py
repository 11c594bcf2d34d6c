"""The ``run`` command of the installed ``fanout-mcp`` script: a plan file takes every argument
``spawn_parallel`` takes."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fake_api import FakeApi
from tests.server.changes.fake_editors import run_git
from tests.tools.cli.implementers import implementer
from tests.tools.cli.test_main import REPO, run_script, script_env


def test_a_plan_naming_the_spawns_backend_and_tools_runs_its_tasks_there_with_those_tools(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("the plan's tools read this\n")
    rounds = [[{"name": "read_file", "input": {"path": "notes.txt"}}]]
    look = f"[[tools64:{base64.b64encode(json.dumps(rounds).encode()).decode()}]] [[tool_echo]]"
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "tasks": [{"task": f"read the notes {look}", "label": "reader"}],
                "backend": "anthropic",
                "tools": ["read"],
                "synthesis": {"mode": "none"},
            }
        )
    )
    # The server's default backend is another one: the task runs on anthropic only if the plan says so.
    done = run_script(
        "run", str(plan), "--json", "--root", str(tmp_path), "--backend", "batch", env=script_env(fake_api)
    )
    assert done.returncode == 0, done.stderr
    (task,) = json.loads(done.stdout)["tasks"]
    assert (task["label"], task["state"], task["backend"]) == ("reader", "completed", "anthropic")
    assert json.loads(task["output"]) == [{"is_error": False, "content": "1: the plan's tools read this"}]


def test_the_implement_example_runs_five_implementers_then_the_matrix_an_apply_and_the_projects_own_tests(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    # The user's repository: the example's fixture project, committed, with uncommitted work of theirs.
    project = shutil.copytree(REPO / "examples" / "implement-project", tmp_path / "bookshelf")
    run_git(project, "init", "-q", "-b", "main")
    run_git(project, "add", "-A")
    run_git(project, "commit", "-qm", "bookshelf")
    (project / "NOTES.txt").write_text("the user's own uncommitted work\n")
    head = run_git(project, "rev-parse", "HEAD")
    fake_api.script = implementer

    done = run_script("run", "examples/implement-plan.json", "--root", str(project), env=script_env(fake_api))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    labels = ["auth", "endpoints", "schema", "tests", "docs"]
    assert all(f"\n## {label} [" in out for label in labels)
    changes = out[out.index("\n# Changes\n") :]
    assert "- 0 conflicting pair(s), 10 that merge cleanly" in changes
    assert changes.count(" applies\n") == 5
    assert "\n# Applied (a-" in changes and changes.count("- applied: ") == 5 and "skipped" not in changes

    tests = subprocess.run(
        [sys.executable, "-m", "unittest"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tests.returncode == 0 and "Ran 7 tests" in tests.stderr, tests.stderr
    assert "[docs/api.md](docs/api.md)" in (project / "README.md").read_text()
    # Only the working tree was written: HEAD and the index as they were, the user's work still there.
    assert run_git(project, "rev-parse", "HEAD") == head and run_git(project, "diff", "--cached") == ""
    assert (project / "NOTES.txt").read_text() == "the user's own uncommitted work\n"
