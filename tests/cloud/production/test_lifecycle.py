"""The work-order and operation transition tables, as plain values."""

from __future__ import annotations

import pytest

from cloud.production import lifecycle as lc

WORK_ORDER_LEGAL = [
    ("planned", "release", "released"),
    ("planned", "abort", "aborted"),
    ("released", "start", "running"),
    ("released", "hold", "held"),
    ("released", "abort", "aborted"),
    ("running", "hold", "held"),
    ("running", "complete", "completed"),
    ("running", "abort", "aborted"),
    ("held", "resume", "running"),
    ("held", "abort", "aborted"),
    ("completed", "close", "closed"),
    ("aborted", "close", "closed"),
]
OPERATION_LEGAL = [
    ("pending", "ready", "ready"),
    ("ready", "start", "running"),
    ("running", "pause", "paused"),
    ("running", "finish", "finished"),
    ("running", "report", "running"),
    ("paused", "resume", "running"),
    ("paused", "finish", "finished"),
    ("paused", "report", "paused"),
]


def test_the_tables_cover_every_state_and_nothing_else():
    assert set(lc.WORK_ORDER_TRANSITIONS) == set(lc.WORK_ORDER_STATES)
    assert set(lc.OPERATION_TRANSITIONS) == set(lc.OPERATION_STATES)
    assert len(WORK_ORDER_LEGAL) == sum(map(len, lc.WORK_ORDER_TRANSITIONS.values()))
    assert len(OPERATION_LEGAL) == sum(map(len, lc.OPERATION_TRANSITIONS.values()))


@pytest.mark.parametrize(("state", "action", "expected"), WORK_ORDER_LEGAL)
def test_every_legal_work_order_transition(state, action, expected):
    assert lc.work_order_next("work order WO-1", state, action) == expected


@pytest.mark.parametrize(("state", "action", "expected"), OPERATION_LEGAL)
def test_every_legal_operation_transition(state, action, expected):
    assert lc.operation_next("operation 10", state, action) == expected


def test_every_other_work_order_pair_is_illegal():
    legal = {(state, action) for state, action, _ in WORK_ORDER_LEGAL}
    for state in lc.WORK_ORDER_STATES:
        for action in lc.WORK_ORDER_ACTIONS:
            if (state, action) not in legal:
                with pytest.raises(lc.IllegalTransition):
                    lc.work_order_next("work order WO-1", state, action)


@pytest.mark.parametrize(
    ("state", "action", "allowed"),
    [
        ("planned", "start", "release, abort"),
        ("held", "complete", "resume, abort"),
        ("completed", "resume", "close"),
        ("closed", "release", "none (final state)"),
    ],
)
def test_an_illegal_work_order_action_names_object_state_action_and_allowed(state, action, allowed):
    with pytest.raises(lc.IllegalTransition) as caught:
        lc.work_order_next("work order WO-7", state, action)
    assert str(caught.value) == (
        f"work order WO-7 is {state}: cannot {action}; allowed actions: {allowed}"
    )
    assert (caught.value.state, caught.value.action) == (state, action)


@pytest.mark.parametrize(
    ("state", "action"),
    [("pending", "start"), ("ready", "finish"), ("paused", "pause"), ("finished", "resume"),
     ("finished", "report"), ("ready", "report")],
)  # fmt: skip
def test_illegal_operation_actions(state, action):
    with pytest.raises(lc.IllegalTransition, match=f"operation 20 is {state}: cannot {action}"):
        lc.operation_next("operation 20", state, action)


def test_an_unknown_state_is_a_bug_not_a_transition_error():
    with pytest.raises(ValueError, match="unknown state"):
        lc.work_order_next("work order WO-1", "dreaming", "release")
