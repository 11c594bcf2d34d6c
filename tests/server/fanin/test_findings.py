"""The deterministic merge of findings: a fixed input merges to a known result."""

from __future__ import annotations

from typing import Any

import pytest

from server.fanin.findings import merge_findings, quorum_needed


def finding(title: str, severity: str, path: str, start: int | None, end: int | None, recommendation: str,
            confidence: float = 0.8, detail: str = "details") -> dict[str, Any]:  # fmt: skip
    return {
        "title": title,
        "severity": severity,
        "location": {"path": path, "start_line": start, "end_line": end},
        "detail": detail,
        "recommendation": recommendation,
        "confidence": confidence,
    }


SECURITY = ("t-sec", [
    finding("SQL injection in login", "critical", "src/auth.py", 42, 44, "Use a parameterised query", 0.95),
    finding("Session cookie lacks HttpOnly", "medium", "src/session.py", 10, None, "Set HttpOnly on the cookie"),
])  # fmt: skip
PERFORMANCE = ("t-perf", [
    finding("Login query vulnerable to SQL injection", "high", "./src/auth.py", 40, 40, "Bind parameters", 0.7),
    finding("N+1 queries listing users", "high", "src/users.py", 88, 95, "Add a join to the user query", 0.9),
    finding("Response cache too small", "low", "src/cache.py", 5, 5, "Increase the cache size", 0.6),
])  # fmt: skip
TESTING = ("t-test", [
    finding("SQL injection risk in the login query", "critical", "SRC/auth.py", 43, None, "Parameterise it", 0.8),
    finding("Cache size", "low", "src/cache.py", 6, 6, "Decrease the cache size to save memory", 0.5),
])  # fmt: skip
ARCHITECTURE = ("t-arch", [
    finding("N+1 query pattern when listing users", "medium", "src/users.py", 90, None, "Batch the lookups", 0.7),
])  # fmt: skip
ANSWERS = [SECURITY, PERFORMANCE, TESTING, ARCHITECTURE]


def test_duplicates_merge_once_with_every_source_and_the_list_is_ranked() -> None:
    merged = merge_findings(ANSWERS)
    titles = [(f.title, f.severity, f.support) for f in merged.findings]
    assert titles == [
        ("SQL injection in login", "critical", 3),
        ("N+1 queries listing users", "high", 2),  # tie high/medium: the more severe wins
        ("Session cookie lacks HttpOnly", "medium", 1),
        ("Response cache too small", "low", 2),  # "Cache size", a line away, is the same problem
    ]
    sql = merged.findings[0]
    assert sql.sources == ["t-sec", "t-perf", "t-test"]
    assert sql.location is not None and (sql.location.start_line, sql.location.end_line) == (40, 44)
    assert sql.recommendation == "Use a parameterised query"  # from the most confident report
    assert sql.confidence == pytest.approx((0.95 + 0.7 + 0.8) / 3, abs=0.01)
    assert set(sql.other_titles) == {
        "Login query vulnerable to SQL injection",
        "SQL injection risk in the login query",
    }
    assert merged.tasks == 4


def test_conflicts_show_both_sides_with_their_tasks() -> None:
    merged = merge_findings(ANSWERS)
    severity = [c for c in merged.conflicts if c.kind == "severity"]
    assert [(c.topic, [(s.position, s.sources) for s in c.sides]) for c in severity] == [
        (
            "SQL injection in login",
            [("severity critical", ["t-sec", "t-test"]), ("severity high", ["t-perf"])],
        ),
        ("N+1 queries listing users", [("severity high", ["t-perf"]), ("severity medium", ["t-arch"])]),
    ]
    (advice,) = [c for c in merged.conflicts if c.kind == "recommendation"]
    positions = {s.position: s.sources for s in advice.sides}
    assert positions == {
        "Increase the cache size": ["t-perf"],
        "Decrease the cache size to save memory": ["t-test"],
    }


def test_actions_follow_the_ranking_and_cite_their_tasks() -> None:
    actions = merge_findings(ANSWERS).actions
    assert actions[0].action == "Use a parameterised query" and actions[0].priority == 1
    assert actions[0].sources == ["t-sec", "t-perf", "t-test"]
    assert [a.priority for a in actions] == list(range(1, len(actions) + 1))


@pytest.mark.parametrize(
    ("quorum", "kept"),
    [("any", 4), ("majority", 1), (2, 3), ("all", 0), (1, 4)],
)
def test_quorum_keeps_only_findings_reported_by_enough_tasks(quorum: Any, kept: int) -> None:
    merged = merge_findings(ANSWERS, quorum)
    assert len(merged.findings) == kept
    assert merged.below_quorum == 4 - kept


def test_quorum_arithmetic() -> None:
    assert [quorum_needed(q, 4) for q in ("any", "majority", "all", 3)] == [1, 3, 4, 3]
    assert quorum_needed("majority", 5) == 3


def test_different_places_or_different_problems_stay_apart() -> None:
    far = ("t-x", [finding("SQL injection in login", "high", "src/auth.py", 200, 210, "Parameterise")])
    other_file = ("t-y", [finding("SQL injection in login", "high", "src/other.py", 42, 44, "Parameterise")])
    other_problem = (
        "t-z",
        [finding("Timing attack on password compare", "high", "src/auth.py", 43, 43, "x")],
    )
    merged = merge_findings([SECURITY, far, other_file, other_problem])
    assert sum(1 for f in merged.findings if "injection" in f.title) == 3


def test_grouping_does_not_depend_on_the_order_of_the_tasks() -> None:
    chain = [("t1", [finding("Leak in pool", "high", "a.py", 10, None, "Close it")]),
             ("t2", [finding("Leak in pool", "high", "a.py", 15, None, "Close it")]),
             ("t3", [finding("Leak in pool", "high", "a.py", 20, None, "Close it")])]  # fmt: skip
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        merged = merge_findings([chain[i] for i in order])
        assert [f.support for f in merged.findings] == [3]


def test_titles_in_any_script_are_compared_and_wordless_titles_never_match() -> None:
    answers = [("t1", [finding("Утечка памяти", "high", "a.py", 1, None, "x")]),
               ("t2", [finding("Гонка данных", "high", "a.py", 1, None, "y")]),
               ("t3", [finding("Утечка памяти в пуле", "high", "a.py", 2, None, "z")]),
               ("t4", [finding("", "high", "a.py", 1, None, "w")]),
               ("t5", [finding("the", "high", "a.py", 1, None, "v")])]  # fmt: skip
    supports = sorted(f.support for f in merge_findings(answers).findings)
    assert supports == [1, 1, 1, 2]  # only the two memory-leak reports merge


def test_conflict_sides_list_every_task_and_a_task_does_not_conflict_with_itself() -> None:
    answers = [("t1", [finding("Debug mode on", "high", "s.py", 3, None, "Disable debug mode"),
                       finding("Debug mode on", "low", "s.py", 3, None, "Disable debug mode")]),
               ("t2", [finding("Debug mode on", "high", "s.py", 3, None, "Disable debug mode")]),
               ("t3", [finding("Debug mode enabled", "high", "s.py", 4, None, "Enable debug mode for support")])]  # fmt: skip
    merged = merge_findings(answers, "majority")
    assert [c.kind for c in merged.conflicts] == ["severity", "recommendation"]
    severity, advice = merged.conflicts
    assert {s.position: s.sources for s in severity.sides} == {
        "severity high": ["t1", "t2", "t3"],
        "severity low": ["t1"],
    }
    assert {s.position: s.sources for s in advice.sides} == {
        "Disable debug mode": ["t1", "t2"],
        "Enable debug mode for support": ["t3"],
    }
    lone = merge_findings(
        [
            (
                "t1",
                [
                    finding("X bug", "high", "a.py", 1, None, "a"),
                    finding("X bug", "low", "a.py", 1, None, "b"),
                ],
            )
        ]
    )
    assert lone.conflicts == []  # one task, two severities: not a disagreement between tasks


def test_unrelated_recommendations_are_not_conflicts() -> None:
    answers = [("t1", [finding("Weak hash", "high", "p.py", 5, None, "Use bcrypt for the password hash")]),
               ("t2", [finding("Password logged", "high", "p.py", 6, None, "Do not log the password")]),
               ("t3", [finding("Debug endpoint", "high", "p.py", 7, None, "Remove the debug endpoint")]),
               ("t4", [finding("No validation", "high", "p.py", 7, None, "Add input validation")])]  # fmt: skip
    assert merge_findings(answers).conflicts == []
    negated = [("t1", [finding("Secrets", "high", "p.py", 5, None, "Log the password reset events")]),
               ("t2", [finding("Secrets", "high", "p.py", 5, None, "Do not log the password reset events")])]  # fmt: skip
    assert [c.kind for c in merge_findings(negated).conflicts] == ["recommendation"]


def test_only_the_first_findings_of_a_task_are_merged_and_the_rest_is_counted() -> None:
    from server.fanin.findings import MAX_FINDINGS_PER_TASK

    many = [
        finding(f"Problem {i}", "low", f"f{i}.py", 1, None, f"fix {i}")
        for i in range(MAX_FINDINGS_PER_TASK + 5)
    ]
    merged = merge_findings([("t1", many)])
    assert len(merged.findings) == MAX_FINDINGS_PER_TASK and merged.not_merged == 5
