"""Directives that make the fake Messages API answer with a given JSON value (see tests/fake_api.py)."""

from __future__ import annotations

import base64
import json
from typing import Any


def reply(value: Any) -> str:
    """``[[reply64:...]]``: the fake answers with this value as JSON."""
    return f"[[reply64:{base64.b64encode(json.dumps(value).encode()).decode()}]]"


def then(value: Any) -> str:
    """``[[then64:...]]``: the fake answers a follow-up turn (a repair) with this value as JSON."""
    return f"[[then64:{base64.b64encode(json.dumps(value).encode()).decode()}]]"


def finding(
    title: str, severity: str, path: str, line: int | None, recommendation: str, confidence: float = 0.8
) -> dict[str, Any]:
    return {
        "title": title,
        "severity": severity,
        "location": {"path": path, "start_line": line, "end_line": line},
        "detail": f"{title}: see the code",
        "recommendation": recommendation,
        "confidence": confidence,
    }


def synthesis(summary: str = "All good.", sources: list[str] | None = None) -> dict[str, Any]:
    """A minimal valid synthesis answer (SYNTHESIS_SCHEMA), citing ``sources`` if given."""
    findings = []
    actions = []
    if sources:
        findings = [{"title": "merged", "severity": "high", "location": None, "detail": "d",
                     "recommendation": "fix it", "sources": sources}]  # fmt: skip
        actions = [{"action": "fix it", "priority": 1, "sources": sources}]
    return {"summary": summary, "findings": findings, "conflicts": [], "actions": actions}
