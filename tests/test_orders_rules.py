"""The order state machine (domain/orders.py), pure: every illegal transition is refused,
every legal path ends in a terminal state, and applying events in one batch equals applying
them one by one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexuscart.domain import orders as o

ACTIONS = sorted(o.ACTORS)
ACTOR_NAMES = ["system", "buyer", "seller", "admin"]


@pytest.mark.parametrize(
    ("state", "action", "actor"), list(itertools.product(o.STATES, ACTIONS, ACTOR_NAMES))
)
def test_every_transition_outside_the_table_is_refused(state: str, action: str, actor: str) -> None:
    legal = (state, action) in o.TRANSITIONS and actor in o.ACTORS[action]
    if legal:
        assert o.step(state, action, actor) == o.TRANSITIONS[(state, action)]
    else:
        with pytest.raises(o.IllegalTransition):
            o.step(state, action, actor)


def test_terminal_states_have_no_way_out_and_every_other_state_has_one() -> None:
    for state in o.STATES:
        outgoing = [a for (s, a) in o.TRANSITIONS if s == state]
        assert (not outgoing) == (state in o.TERMINAL), state


def test_only_sellers_and_admins_fulfil_and_only_buyers_and_admins_cancel() -> None:
    for action in ("fulfil", "ship", "deliver"):
        assert o.ACTORS[action] == {"seller", "admin"}
    assert o.ACTORS["cancel"] == {"buyer", "admin"}
    # after shipment nobody cancels
    for state in (o.SHIPPED, o.DELIVERED):
        for actor in ACTOR_NAMES:
            with pytest.raises(o.IllegalTransition):
                o.step(state, "cancel", actor)


@given(st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(ACTOR_NAMES)), max_size=30))
def test_any_sequence_of_requests_stays_inside_the_table(
    requests: list[tuple[str, str]],
) -> None:
    state = o.PENDING_PAYMENT
    for action, actor in requests:
        try:
            nxt = o.step(state, action, actor)
        except o.IllegalTransition:
            assert (state, action) not in o.TRANSITIONS or actor not in o.ACTORS[action]
            continue
        assert o.TRANSITIONS[(state, action)] == nxt
        state = nxt
    assert state in o.STATES


@st.composite
def legal_paths(draw: st.DrawFn) -> list[str]:
    """A path of legal actions from PENDING_PAYMENT, walked until a terminal state."""
    state, path = o.PENDING_PAYMENT, []
    while state not in o.TERMINAL:
        choices = sorted(a for (s, a) in o.TRANSITIONS if s == state)
        action = draw(st.sampled_from(choices))
        path.append(action)
        state = o.TRANSITIONS[(state, action)]
    return path


@given(legal_paths())
def test_every_legal_path_ends_in_a_terminal_state_within_five_steps(path: list[str]) -> None:
    state = o.PENDING_PAYMENT
    for action in path:
        actor = sorted(o.ACTORS[action])[0]
        state = o.step(state, action, actor)
    assert state in o.TERMINAL
    assert len(path) <= 4  # pending -> paid -> fulfilling -> shipped -> delivered


SYSTEM_ACTIONS = [a for a in ACTIONS if "system" in o.ACTORS[a]]


@given(
    st.sampled_from(o.STATES),
    st.lists(st.tuples(st.sampled_from(SYSTEM_ACTIONS), st.just("r")), max_size=12),
    st.data(),
)
def test_a_batch_of_system_events_equals_its_events_one_by_one(
    start: str, actions: list[tuple[str, str]], data: st.DataObject
) -> None:
    whole, whole_steps = o.fold(start, actions)
    cut = data.draw(st.integers(0, len(actions)))
    mid, first = o.fold(start, actions[:cut])
    end, second = o.fold(mid, actions[cut:])
    assert (end, first + second) == (whole, whole_steps)
    state = start
    for a in actions:
        state, _ = o.fold(state, [a])
    assert state == whole


@given(st.sampled_from(SYSTEM_ACTIONS), st.integers(1, 4))
def test_a_redelivered_system_event_moves_the_order_once(action: str, times: int) -> None:
    end, steps = o.fold(o.PENDING_PAYMENT, [(action, "r")] * times)
    assert len(steps) == 1
    assert end == o.TRANSITIONS[(o.PENDING_PAYMENT, action)]
