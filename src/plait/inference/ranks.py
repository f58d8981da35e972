"""Steps that the processes of one `plait predict` take together, so that an error on any of them ends them all.

Without it, a rank that fails leaves the others waiting for it at the next collective call until the process
group times out (or until the launcher notices and kills them, before they could clean up). Instead each step
gathers every rank's outcome: when one failed, every rank runs the cleanup, waits for the others to have run
it, and stops: the failing rank with its own error, the others with an error naming that rank and its message.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from plait.errors import PlaitError
from plait.distributed import World, barrier, gather

T = TypeVar("T")


class PeerFailed(PlaitError):
    """Another rank failed, and this one stopped with it."""


def together(step: Callable[[], T], world: World, cleanup: Callable[[], None] = lambda: None) -> list[T]:
    """Every rank's `step()` result, in rank order, on every rank (results must pickle). When any rank's step raises,
    every rank calls `cleanup()` and raises: its own error, or `PeerFailed` naming the first rank that failed."""
    error = None
    try:
        outcome = (step(), None)
    except Exception as raised:  # noqa: BLE001  (any error must reach the other ranks, or they wait forever)
        error = raised
        outcome = (None, str(raised) or type(raised).__name__)
    outcomes = gather(outcome, world)
    failed = [(rank, message) for rank, (_, message) in enumerate(outcomes) if message is not None]
    if not failed:
        return [result for result, _ in outcomes]
    cleanup()
    barrier(world)  # no rank exits (and so no launcher kills the rest) before every rank has cleaned up
    if error is not None:
        raise error
    rank, message = failed[0]
    raise PeerFailed(f"stopped, as rank {rank} of {world.size} failed: {message}")
