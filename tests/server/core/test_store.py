"""The in-memory task store keeps the contract every store must keep (see server/core/store.py)."""

from __future__ import annotations

from server import TaskState, Tokens
from server.core.models import TaskSpec
from server.core.records import GroupRecord, TaskRecord
from server.core.store import MemoryStore, Outcome, TaskStore


def spec(index: int) -> TaskSpec:
    return TaskSpec(index, f"p{index}", None, f"part {index}", "m", "scripted", 60.0, ())


def spawn(store: TaskStore, group_id: str, count: int, owner: str = "alice") -> list[str]:
    records = [TaskRecord(f"{group_id}-t{i}", group_id, spec(i), owner) for i in range(count)]
    store.put(GroupRecord(group_id, [r.id for r in records], owner), records)
    return [r.id for r in records]


def end(store: TaskStore, task_id: str, finished_at: float, target: TaskState = TaskState.COMPLETED) -> None:
    store.move(task_id, TaskState.RUNNING, 1.0)
    store.move(task_id, target, 2.0, Outcome("ok", None, "end_turn", "m", None, None, 1, finished_at))


def test_each_end_is_raised_once_in_order_after_the_record_shows_it() -> None:
    store = MemoryStore()
    ids = spawn(store, "g", 3)
    node = store.ending
    seen: list[tuple[str, TaskState]] = []

    end(store, ids[2], 100.0)
    end(store, ids[0], 101.0, TaskState.FAILED)

    while node.next is not None:
        assert node.event.is_set()
        record = store.task(node.task_id)
        assert record is not None
        seen.append((node.task_id, record.state))
        node = node.next
    assert seen == [(ids[2], TaskState.COMPLETED), (ids[0], TaskState.FAILED)]
    assert not node.event.is_set()  # the open end: the next end sets it


def test_the_tallies_follow_every_move_for_the_store_and_each_group() -> None:
    store = MemoryStore()
    first, second = spawn(store, "g1", 3), spawn(store, "g2", 2)

    store.move(first[0], TaskState.RUNNING, 1.0)
    end(store, second[1], 50.0)

    assert dict(store.tally()) == {**dict.fromkeys(TaskState, 0), "queued": 3, "running": 1, "completed": 1}
    assert dict(store.tally("g1")) == {**dict.fromkeys(TaskState, 0), "queued": 2, "running": 1}
    assert [r.id for r in store.newest("g1", TaskState.QUEUED, 5)] == first[1:]
    assert [r.id for r in store.newest(None, None, 2)] == second


def test_eviction_forgets_only_ended_tasks_oldest_end_first_and_a_group_with_its_last_task() -> None:
    store = MemoryStore()
    ids = spawn(store, "g", 4)
    end(store, ids[1], 10.0)
    end(store, ids[0], 20.0)
    end(store, ids[2], 30.0)

    store.evict(ended_before=15.0, keep=10)
    assert [store.task(i) is None for i in ids] == [False, True, False, False]
    store.evict(ended_before=0.0, keep=1)
    assert [store.task(i) is None for i in ids] == [True, True, False, False]
    assert store.finished() == 1 and store.group("g") is not None

    end(store, ids[3], 40.0)
    store.evict(ended_before=1_000.0, keep=0)
    assert store.group("g") is None and dict(store.tally()) == dict.fromkeys(TaskState, 0)


def test_usage_adds_to_its_task_and_group_at_once_and_the_group_keeps_it_after_eviction() -> None:
    store = MemoryStore()
    (task_id,) = spawn(store, "g", 1)
    store.move(task_id, TaskState.RUNNING, 1.0)

    store.record_usage(task_id, Tokens(input_tokens=10), 0.5)
    store.record_usage(task_id, Tokens(output_tokens=3), None)

    record, group = store.task(task_id), store.group("g")
    assert record is not None and group is not None
    assert (record.spend.input_tokens, record.spend.output_tokens, record.spend.cost_usd) == (10, 3, None)
    assert (group.spend.input_tokens, group.spent_usd, group.spend.cost_usd) == (10, 0.5, None)


def test_an_owners_tally_and_newest_hold_only_its_tasks_and_go_with_its_last_one() -> None:
    store = MemoryStore()
    alices = spawn(store, "g1", 2, owner="alice")
    bobs = spawn(store, "g2", 3, owner="bob")
    end(store, bobs[0], 10.0)

    assert dict(store.tally(owner="alice")) == {**dict.fromkeys(TaskState, 0), "queued": 2}
    assert dict(store.tally(owner="bob")) == {**dict.fromkeys(TaskState, 0), "queued": 2, "completed": 1}
    assert dict(store.tally(owner="carol")) == dict.fromkeys(TaskState, 0)
    assert [r.id for r in store.newest(None, None, 10, owner="alice")] == alices
    assert [r.id for r in store.newest(None, TaskState.QUEUED, 1, owner="bob")] == bobs[2:]
    assert [r.id for r in store.newest(None, None, 10)] == alices + bobs  # None: every owner's

    for task_id in bobs[1:]:
        end(store, task_id, 20.0)
    store.evict(ended_before=1_000.0, keep=0)
    assert store.newest(None, None, 10, owner="bob") == []
    assert dict(store.tally(owner="bob")) == dict.fromkeys(TaskState, 0)


def test_an_interrupted_task_ends_with_what_it_holds_its_reason_and_its_end_raised() -> None:
    store = MemoryStore()
    queued, running = spawn(store, "g", 2)
    store.move(running, TaskState.RUNNING, 1.0)
    record = store.task(running)
    assert record is not None
    record.output = "half an ans"  # what a durable store flushed of a running task's partial answer
    node = store.ending

    store.interrupt(running, "its server process (pid 4242) ended", 5.0)
    store.interrupt(queued, "its server process (pid 4242) ended", 5.0)

    for task_id, output in ((running, "half an ans"), (queued, None)):
        ended = store.task(task_id)
        assert ended is not None and ended.state is TaskState.INTERRUPTED
        assert (ended.output, ended.note) == (output, "its server process (pid 4242) ended")
        assert ended.finished_at is not None
    assert (node.task_id, node.next is not None and node.next.task_id) == (running, queued)
    assert dict(store.tally("g")) == {**dict.fromkeys(TaskState, 0), "interrupted": 2}
    assert store.finished() == 2
