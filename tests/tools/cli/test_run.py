"""The ``run`` command of the installed ``fanout-mcp`` script: a plan file takes every argument
``spawn_parallel`` takes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.fake_api import FakeApi
from tests.tools.cli.test_main import run_script, script_env


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
