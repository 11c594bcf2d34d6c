"""What the fake Messages API answers to a schema-constrained request: a valid instance of the schema,
deterministic from the prompt (the same prompt gets the same answer, another prompt another one).

Three kinds, by the schema's shape:

* **findings** (``FINDINGS_SCHEMA``, ``output_schema: "findings"``): a finding or two for each file the
  prompt shows (``<file path="...">``, at most three files). Which problem a file has, its title and its
  lines come from the file's path, so every task that reviews the same file reports the same problem at
  about the same lines and the merge has something to merge; its severity, its confidence and which of
  two opposed recommendations it makes come from the rest of the prompt (its role, task and file names,
  not the files' text), so tasks with other roles or other files tend to disagree about it, and the
  merge has conflicts to show. No file: no finding.
* **synthesis** (``SYNTHESIS_SCHEMA``): a real merge of the findings in the prompt's answers
  (``<answer task_id=...>``, or the partial syntheses of ``<result task_id=...>``): one finding per path
  and title citing every task that reported it, a conflict for each finding the tasks rate differently or
  recommend opposite things for, an action per recommendation. It cites only the ids in the prompt.
* **any other schema**: a generic instance: every property, the first non-null branch of a choice, enum
  values, numbers inside their bounds (also the bounds the SDK moves into a description as
  ``{minimum: 1}``), arrays of their minimum length or two items.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any, Final, cast

__all__ = ["schema_answer", "wanted_schema"]

_SEVERITIES: Final = ("critical", "high", "medium", "low", "info")
_FILE: Final = re.compile(r'<file path="([^"]+)"[^>]*>\n(.*?)</file>', re.DOTALL)
_ANSWER: Final = re.compile(r'<(answer|result) task_id="([^"]+)"[^>]*>\n(.*?)\n</\1>', re.DOTALL)
_ROLE: Final = re.compile(r"You are an? (.+?) specialist")
_FENCE: Final = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)
_HINTS: Final = re.compile(r"\{((?:\w+: [^,{}]+)(?:, \w+: [^,{}]+)*)\}\s*$")
_MAX_FILES: Final = 3


# (title, what is wrong, the two opposed recommendations): opposite verbs about one subject, so the
# server's merge (server/fanin/findings.py) sees them as a conflict too.
_PROBLEMS: Final = (
    ("Unbounded cache growth", "keeps an entry for every request and never evicts one",
     ("Add a size limit to the cache", "Remove the size limit from the cache; its entries are small")),
    ("Blocking call on the event loop", "reads a file synchronously inside a coroutine",
     ("Use a worker thread for the file read", "Avoid a worker thread for the file read; the file is small")),
    ("Missing timeout on a network call", "waits for the provider without a deadline",
     ("Add a timeout to the request", "Remove the timeout from the request; the caller bounds it")),
    ("Secret in an error message", "puts the raw configuration into an exception's text",
     ("Remove the configuration from the error message", "Keep the configuration in the error message for debugging")),
    ("Retry loop without back-off", "retries at once after every failure",
     ("Increase the delay between retries", "Decrease the delay between retries to recover sooner")),
    ("Untested cancellation path", "has no test that cancels a task while it runs",
     ("Add a cancellation test for a running task", "Remove the cancellation test for a running task; it is flaky")),
    ("Caller input not validated", "takes a path from the caller without checking that it is inside the roots",
     ("Enable the path check for every caller", "Disable the path check for trusted callers")),
)  # fmt: skip


def wanted_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a request asks its answer to match (``output_config.format``, or the older
    ``output_format``), or None."""
    config: Any = body.get("output_config")
    spec: Any = (
        cast(dict[str, Any], config).get("format") if isinstance(config, dict) else body.get("output_format")
    )
    if not isinstance(spec, dict):
        return None
    fields = cast(dict[str, Any], spec)
    schema = fields.get("schema")
    return (
        cast(dict[str, Any], schema)
        if fields.get("type") == "json_schema" and isinstance(schema, dict)
        else None
    )


def schema_answer(schema: dict[str, Any], prompt: str) -> str:
    """A valid instance of ``schema`` as JSON text, chosen by ``prompt``."""
    properties = set(_properties(schema))
    if properties == {"summary", "findings", "conflicts", "actions"}:
        value: Any = _synthesis(prompt)
    elif properties == {"findings"} and {"title", "location", "recommendation"} <= set(
        _properties(_node(_properties(schema)["findings"], schema).get("items", {}))
    ):
        value = {"findings": _findings(prompt)}
    else:
        value = _Instance(schema, _digest(prompt)).of(schema)
    return json.dumps(value, indent=1)


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:8], "big")


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    found: Any = schema.get("properties")
    return cast(dict[str, Any], found) if isinstance(found, dict) else {}


def _node(value: Any, root: dict[str, Any]) -> dict[str, Any]:
    """A subschema, with a local ``$ref`` followed."""
    node = cast(dict[str, Any], value) if isinstance(value, dict) else {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = cast(dict[str, Any], target).get(key, {}) if isinstance(target, dict) else {}
        return _node(target, root)
    return node


# --- findings -------------------------------------------------------------------------------------------


def _findings(prompt: str) -> list[dict[str, Any]]:
    role = _ROLE.search(prompt)
    perspective = f" (seen as {role.group(1)})" if role else ""
    # The prompt without the files' text: a review of the same task reads the same whatever the files hold
    # today, so the README's demo shows the same findings from one commit to the next.
    asked = _FILE.sub("", prompt)
    found: list[dict[str, Any]] = []
    for path, text in _FILE.findall(prompt)[:_MAX_FILES]:
        lines = text.count("\n")
        per_file = _digest(path)
        count = 1 + _digest(asked, path, "count") % 2  # a second problem for about half the prompts
        for which in range(count):
            title, wrong, advice = _PROBLEMS[(per_file + which * 3) % len(_PROBLEMS)]
            mine = _digest(asked, path, title)
            start = 1 + (per_file // 7 + which * 40) % max(1, lines) if lines else None
            if start is not None:
                start = min(lines, start + mine % 3)  # about the same lines as another task's report
            end = None if start is None else min(lines, start + per_file % 5)
            found.append({
                "title": title,
                "severity": _SEVERITIES[mine % 4],
                "location": {"path": path, "start_line": start, "end_line": end},
                "detail": f"{path} {wrong}{perspective}.",
                "recommendation": advice[mine // 4 % 2],
                "confidence": round(0.55 + mine // 8 % 40 / 100, 2),
            })  # fmt: skip
    return found


# --- synthesis ------------------------------------------------------------------------------------------


def _synthesis(prompt: str) -> dict[str, Any]:
    answers = _ANSWER.findall(prompt)
    reports: list[tuple[dict[str, Any], list[str]]] = []
    for kind, task_id, body in answers:
        value = _json(body)
        listed: Any = cast(dict[str, Any], value).get("findings") if isinstance(value, dict) else None
        for item in cast(list[Any], listed) if isinstance(listed, list) else []:
            if isinstance(item, dict) and isinstance(cast(dict[str, Any], item).get("title"), str):
                finding = cast(dict[str, Any], item)
                cited: Any = finding.get("sources") if kind == "result" else [task_id]
                sources = [str(s) for s in cast(list[Any], cited)] if isinstance(cited, list) else []
                reports.append((finding, sources or [task_id]))
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], list[str]]]] = {}
    for finding, sources in reports:
        groups.setdefault((_path(finding), finding["title"].casefold()), []).append((finding, sources))
    merged = [_merged(group) for group in groups.values()]
    merged.sort(key=lambda pair: (_rank(pair[0]["severity"]), -len(pair[0]["sources"])))
    findings = [finding for finding, _ in merged]
    conflicts = [conflict for _, group_conflicts in merged for conflict in group_conflicts]
    actions: dict[str, list[str]] = {}
    for finding in findings:
        cited = actions.setdefault(finding["recommendation"], [])
        cited.extend(s for s in finding["sources"] if s not in cited)
    shared = sum(1 for f in findings if len(f["sources"]) > 1)
    summary = (
        f"{len(answers)} answer(s) merged: {len(findings)} finding(s), {shared} reported by more than one "
        f"task; {len(conflicts)} conflict(s)."
        if answers
        else "No task has answered."
    )
    return {
        "summary": summary,
        "findings": findings,
        "conflicts": conflicts,
        "actions": [
            {"action": text, "priority": n, "sources": ids}
            for n, (text, ids) in enumerate(actions.items(), 1)
        ],
    }


def _json(text: str) -> Any:
    for candidate in (text, *_FENCE.findall(text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _path(finding: dict[str, Any]) -> str:
    location: Any = finding.get("location")
    path: Any = cast(dict[str, Any], location).get("path") if isinstance(location, dict) else None
    return str(path or "").strip().removeprefix("./").casefold()


def _rank(severity: str) -> int:
    return _SEVERITIES.index(severity) if severity in _SEVERITIES else len(_SEVERITIES)


def _merged(group: list[tuple[dict[str, Any], list[str]]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One finding for a group of reports, and the conflicts between them."""
    first = group[0][0]
    sources = list(dict.fromkeys(s for _, cited in group for s in cited))
    votes = Counter(str(f.get("severity")) for f, _ in group)
    severity = min(votes, key=lambda s: (-votes[s], _rank(s)))
    location: Any = first.get("location")
    finding = {
        "title": first["title"],
        "severity": severity if severity in _SEVERITIES else "info",
        "location": _location(location),
        "detail": str(first.get("detail", "")),
        "recommendation": str(first.get("recommendation", "")),
        "sources": sources,
    }
    conflicts: list[dict[str, Any]] = []
    for field, chosen, reason in (
        ("severity", finding["severity"], "the severity most tasks gave, the more severe on a tie"),
        ("recommendation", finding["recommendation"], "the recommendation of the first task that made it"),
    ):
        sides: dict[str, list[str]] = {}
        for reported, cited in group:
            ids = sides.setdefault(str(reported.get(field, "")), [])
            ids.extend(s for s in cited if s not in ids)
        if len(sides) > 1:
            conflicts.append({
                "topic": f"{first['title']}: {field}",
                "sides": [{"position": position, "sources": ids} for position, ids in sides.items()],
                "resolution": chosen,
                "reason": reason,
            })  # fmt: skip
    return finding, conflicts


def _location(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(cast(dict[str, Any], value).get("path"), str):
        return None
    location = cast(dict[str, Any], value)
    lines = {k: location.get(k) for k in ("start_line", "end_line")}
    return {"path": location["path"]} | {k: v for k, v in lines.items() if isinstance(v, int) and v >= 1}


# --- any other schema -----------------------------------------------------------------------------------


class _Instance:
    """A generic instance of a schema, varied by ``seed``."""

    def __init__(self, root: dict[str, Any], seed: int) -> None:
        self._root, self._seed = root, seed

    def _pick(self, n: int, *salt: str) -> int:
        return _digest(str(self._seed), *salt) % max(1, n)

    def of(self, value: Any, where: str = "") -> Any:
        schema = self._constrained(_node(value, self._root))
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = cast(list[Any], schema["enum"])
            return options[self._pick(len(options), where)]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                branches = [_node(b, self._root) for b in cast(list[Any], schema[key])]
                return self.of(next((b for b in branches if b.get("type") != "null"), branches[0]), where)
        if isinstance(schema.get("allOf"), list):
            combined: dict[str, Any] = {}
            for part in cast(list[Any], schema["allOf"]):
                combined |= _node(part, self._root)
            return self.of(combined, where)
        kind: Any = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in cast(list[Any], kind) if k != "null"), "null")
        return self._typed(str(kind), schema, where)

    def _typed(self, kind: str, schema: dict[str, Any], where: str) -> Any:
        if kind == "object":
            return {name: self.of(sub, f"{where}.{name}") for name, sub in _properties(schema).items()}
        if kind == "array":
            least = int(schema.get("minItems", 0))
            most = int(schema.get("maxItems", max(least, 2)))
            return [
                self.of(schema.get("items", {}), f"{where}[{i}]") for i in range(min(max(least, 2), most))
            ]
        if kind in ("integer", "number"):
            return self._number(kind, schema, where)
        if kind == "boolean":
            return self._pick(2, where) == 1
        if kind == "null":
            return None
        return self._string(schema, where)

    def _number(self, kind: str, schema: dict[str, Any], where: str) -> int | float:
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", 0)))
        high = float(schema.get("maximum", schema.get("exclusiveMaximum", low + 10)))
        if kind == "integer":
            low_int = int(low) + (1 if "exclusiveMinimum" in schema or low != int(low) else 0)
            high_int = int(high) - (1 if "exclusiveMaximum" in schema and high == int(high) else 0)
            return low_int + self._pick(max(1, high_int - low_int + 1), where)
        return round(low + (high - low) * (1 + self._pick(98, where)) / 100, 2)

    def _string(self, schema: dict[str, Any], where: str) -> str:
        formats = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00Z",
                   "email": "someone@example.com", "uri": "https://example.com/", "uuid":
                   "00000000-0000-4000-8000-000000000000", "ipv4": "127.0.0.1", "ipv6": "::1",
                   "hostname": "example.com"}  # fmt: skip
        if schema.get("format") in formats:
            return formats[str(schema["format"])]
        name = where.rsplit(".", 1)[-1].strip("[]0123456789") or "value"
        text = f"{name} {self._pick(1000, where)}"
        least, most = int(schema.get("minLength", 0)), int(schema.get("maxLength", len(text)))
        return text.ljust(least, "x")[: max(least, most)]

    @staticmethod
    def _constrained(schema: dict[str, Any]) -> dict[str, Any]:
        """The schema with the bounds the SDK moved into its description (``{minimum: 1}``) put back."""
        description = schema.get("description")
        hints = _HINTS.search(description) if isinstance(description, str) else None
        if hints is None:
            return schema
        restored: dict[str, Any] = {}
        for pair in hints.group(1).split(", "):
            key, _, raw = pair.partition(": ")
            try:
                restored[key] = json.loads(raw)
            except ValueError:
                continue
        return {**restored, **schema}
