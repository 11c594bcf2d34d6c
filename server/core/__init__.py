"""The core of the engine: task states, errors, records, the task table, the runner and the registry.

``registry.py`` is the API (spawn, retry, select, list, snapshots, usage, wait, cancel, close);
``spawning.py`` turns a request into registered tasks, and ``retries.py`` plans a retry from the
requests spawns keep. Beneath them, ``table.py`` keeps every task's record in a store (``store.py``: the
interface, and the in-memory store; ``durable/``: the SQLite store) and holds ``move``, the one place a
task's state changes; ``runner.py`` runs one task from its turn to its end; a running task's backend
reports to its ``Progress`` (``progress.py``). A record (``records.py``) is plain data; what an
unfinished task holds besides (its request, cancel scope, gates, progress) is its ``Live`` part
(``live.py``), dropped when it ends. Every task and group has an owner, the principal that spawned it;
the registry's calls take the ``Caller`` (``callers.py``) and show it only what it owns, unless it is an
operator.

Every field has exactly one writer:

================================================  ===================================================
field                                             its one writer
================================================  ===================================================
TaskRecord id, group_id, spec, owner,            ``Spawner._register`` (made once)
depends_on, retry_of
TaskRecord state, started, ended, finished_at     ``TaskTable.move``
TaskRecord output, structured, stop_reason,       ``TaskTable.move``, at the end: what the runner
model, error, note, attempts                      says, else what the task's progress last said
TaskRecord spend                                  ``TaskTable.record_usage``, told by the progress
GroupRecord id, task_ids, owner, request,         ``Spawner._register`` (made once)
budget_usd, shared_bytes
GroupRecord spend, spent_usd                      ``TaskTable.record_usage``, told by the progress
Live scope, planned, deps, warm_gate, opens       ``Runner.prepare`` (made once, at registration)
Live progress                                     ``Runner._start``
Live cancel_note                                  ``TaskTable.ask_cancel``
Live saved_revision                               ``TaskTable.moved_progress``
Progress partial output, note, retry cause,       the ``Progress`` itself, from its backend's reports
attempts, model                                   (and the runner's repair call); closed at the end
================================================  ===================================================

``TaskTable.move`` and ``record_usage`` write through the store's operations; nothing else writes a
record. A snapshot reads the record, and while the task runs its progress.
"""
