"""The Temporal executor: ``--executor temporal`` runs every spawn on a Temporal cluster, so that many
server replicas (front ends) and workers share one fan-out engine. Imported only when chosen: the
embedded default needs no ``temporalio`` (the optional extra ``fanout-mcp[temporal]``).

Design (issue 17; this is the first step, what is not done yet is listed at the end)

* **The seam.** The registry registers tasks in its table and hands the spawn to an ``Executor``
  (``core/executor.py``). The embedded one is the ``Runner``. This one (``executor.py``) keeps no live
  part in the table: it stages the spawn's workflow input (prompts written, dependencies as ids) with
  the store, and the store's ``flush`` starts the workflow before ``spawn_parallel`` returns its ids. The
  ``TemporalStore`` (``store.py``) is a ``MemoryStore`` whose records are copies of what Temporal holds:
  every front end reads and cancels the same way, whether it spawned the group or not, exactly as a
  durable store reads another process's tasks (``core/durable/store.py``).
* **A workflow per group, not per task** (``workflows.py``; its id is the group id). Dependencies are
  between tasks of one spawn, so they are workflow logic (wait for the answers, fail the dependant of a
  task that did not complete, hand the answers on); the spawn's ``max_concurrency`` is a semaphore in it
  and its budget a check before each task starts. Per-task workflows would need signals between
  workflows for all three. A model synthesis is a spawn of its own (``spawn_planned``), so it is a
  workflow whose one task is an activity, like any other.
* **Each subagent call is an activity** (``activities.py``), run by a worker with the same backends and
  settings as the embedded engine, through the same ``core/attempt.py``: timeout, repair call, errors.
  Its activity id is the task id. While it runs it heartbeats its partial output (the newest
  ``BEAT_CHARS`` characters), its note, tries and usage so far; a front end reads the heartbeats from the
  workflow's pending activities (``describe``) and the ended tasks from the workflow's ``view`` query,
  every ``TICK_S`` while someone holds an unfinished task of the group.
* **Cancellation** is a ``cancel`` signal to the workflow with task ids and the reason: a queued task ends
  at once, a running one through activity cancellation (delivered at its next heartbeat: workers send
  them at least every ``worker.HEARTBEAT_THROTTLE_S``, not the SDK's 80% of the heartbeat timeout).
* **Failover**: a worker that dies stops heartbeating; after ``HEARTBEAT_TIMEOUT_S`` Temporal retries the
  activity on another worker, which starts from the dead attempt's last heartbeat (its usage and tries
  are kept, so the task's usage counts both attempts).
* **Ids**: a task's id names its group (``t-TOKEN.N`` of the group and workflow ``g-TOKEN``), so any front
  end reads a task it is asked about at once, without waiting for Temporal's visibility to index it (and
  without a search attribute of every task id, which passes Temporal's 2 KB value limit at about 100
  tasks).
* **Ownership and secrets**: the principal travels as the search attribute ``FanoutOwner`` (listings
  find an owner's groups by it) and in the workflow input; the registry checks the caller against the
  record's owner as for any task. API keys are the worker's environment, never workflow input or
  history.

A model synthesis's key (a digest) is the search attribute ``FanoutSynthesis`` of its group, so a front
end asked for the same synthesis picks it up (``recall_synthesis``) instead of starting another.
**Connecting** (``credentials.py``): plaintext to a dev server; TLS with the system's roots or a CA of
the settings, a client certificate for mutual TLS, and an API key read from a file (TLS implied).

**A task is running** once a worker has started its activity (the workflow asks for it earlier, and it
may wait for a free worker): the front end reads that from the workflow's pending activities, as it
reads a cancel asked on any front end. **Limits**: the front end's ``max_unfinished`` and statistics
count the unfinished tasks of the groups it spawned (``elsewhere``); ``--task-queue-rpm`` is the queue's
rate for all workers together (``worker.py``). **Payloads** of 256 KiB or more are kept by reference in
a shared directory (``payloads.py``), and a front end's read of a running group carries only the tasks
whose end it has not seen (``wire.ViewAsk``).

**Warm-first**: a spawn's cache-warming lead (``TaskCall.warms``) signals ``OPENED`` from its activity
once its answer begins; its siblings (``warm_lead``) wait for that in the workflow, or ``WARM_WAIT_S``.

**Retries** whose tasks depend on unfinished tasks outside them wait for those through the
``AWAIT_ACTIVITY`` (``outside.py``: a workflow cannot read another workflow; an activity can).

Not on Temporal: edit tasks and the sampling backend (they need the front end's machine or client).
"""
