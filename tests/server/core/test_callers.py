from __future__ import annotations

import getpass

from server import Caller


def test_the_local_caller_is_the_user_this_process_runs_as_and_no_operator() -> None:
    local = Caller.local()
    assert local.principal == f"local:{getpass.getuser()}" and not local.operator


def test_a_caller_sees_its_own_and_an_operator_everyones() -> None:
    assert Caller("alice").sees("alice") and not Caller("alice").sees("bob")
    assert Caller("root", operator=True).sees("bob")
    assert Caller("alice").owner_filter == "alice" and Caller("root", operator=True).owner_filter is None
