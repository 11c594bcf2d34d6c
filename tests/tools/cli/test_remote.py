"""The installed script's remote commands: ``serve`` refusing to start where it must, ``token add`` and
what ``doctor`` says of the HTTP settings."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tools.http.tokens import digest

SCRIPT = Path(sys.executable).with_name("fanout-mcp")


def run_script(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False, cwd=home
    )


def test_serve_on_a_non_loopback_address_without_authentication_refuses_to_start(tmp_path: Path) -> None:
    done = run_script("serve", "--host", "0.0.0.0", "--port", "0", home=tmp_path)

    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in done.stderr
    assert "--auth-tokens FILE" in done.stderr and "--oauth-issuer" in done.stderr
    assert "serving MCP" not in done.stderr


def test_a_token_file_with_bad_lines_stops_serve_naming_their_numbers_and_never_their_content(
    tmp_path: Path,
) -> None:
    secret = "pasted-token-not-a-digest-1234567890"
    tokens = tmp_path / "tokens"
    good = f"alice sha256:{digest('x').hex()}"
    tokens.write_text(f"# team tokens\n{good}\n\nbob {secret}\n{good}  # again\ncarol sha256:abc\n")

    done = run_script("serve", "--port", "0", "--auth-tokens", str(tokens), home=tmp_path)

    assert done.returncode == 2
    assert f"token file {str(tokens)!r}: lines 4, 6 not of the form" in done.stderr
    assert secret not in done.stderr and "abc" not in done.stderr


def test_token_add_prints_a_new_token_once_and_appends_its_digest_to_a_private_file(tmp_path: Path) -> None:
    tokens = tmp_path / "conf" / "tokens"

    first = run_script("token", "add", "alice", "--file", str(tokens), home=tmp_path)
    second = run_script("token", "add", "bob", "--auth-tokens", str(tokens), home=tmp_path)
    bad = run_script("token", "add", "not a name", "--file", str(tokens), home=tmp_path)

    assert first.returncode == second.returncode == 0
    token_a, token_b = first.stdout.strip(), second.stdout.strip()
    assert len(token_a) >= 43 and token_a != token_b
    assert tokens.read_text() == f"alice sha256:{digest(token_a).hex()}\nbob sha256:{digest(token_b).hex()}\n"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert token_a not in first.stderr and "shown only now" in first.stderr
    assert bad.returncode == 2 and "principal 'not a name'" in bad.stderr


def test_doctor_reports_the_http_settings(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice sha256:{digest('a').hex()}\nbob sha256:{digest('b').hex()}\n")

    done = run_script(
        "doctor", "--auth-tokens", str(tokens), "--port", "9000", "--operators", "alice", home=tmp_path
    )
    refused = run_script("doctor", "--host", "0.0.0.0", home=tmp_path)

    assert "serve (HTTP): http://127.0.0.1:9000/mcp (bind 127.0.0.1:9000)" in done.stdout
    assert f"serve auth: bearer tokens from {tokens} (2 principals)" in done.stdout
    assert "serve allowed hosts: 127.0.0.1, 127.0.0.1:*, localhost, localhost:*" in done.stdout
    assert (
        "principals: operators alice; each may have 5000 unfinished tasks and make 600 spawns" in done.stdout
    )
    assert "serve cannot start: refusing to listen on 0.0.0.0 without authentication" in refused.stdout
