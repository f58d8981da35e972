"""The shuffled-inputs floor: each row scored with another row's (another group's) inputs, targets in place."""

from __future__ import annotations

import pytest
import torch

from plait.data.dataset import EncodedSplit
from plait.evaluation.shuffled import other_rows, with_shuffled_inputs


@pytest.mark.parametrize("groups", [
    ["a", "a", "b", "c", "c", "c", "d"],
    ["x", "y", "x", "z", "y", "x", "w", "v"],
    [str(row) for row in range(5)],
])
def test_every_row_gets_a_row_of_another_group_and_every_row_is_used_once(groups):
    partner = other_rows(groups)
    assert sorted(partner) == list(range(len(groups)))  # a permutation: every input still seen once
    assert all(groups[row] != groups[partner[row]] for row in range(len(groups)))


def test_the_inputs_move_and_the_targets_stay():
    values = torch.arange(6.0)[:, None]
    split = EncodedSplit("test", rows=list(range(6)),
                         inputs={"image": {"value": values, "present": torch.ones(6, dtype=torch.bool)}},
                         targets={"caption": {"value": values.clone()}})
    groups = ["a", "a", "b", "b", "c", "c"]
    shuffled = with_shuffled_inputs(split, groups)
    moved = shuffled.inputs["image"]["value"][:, 0].tolist()
    assert all(groups[int(value)] != groups[row] for row, value in enumerate(moved))
    assert torch.equal(shuffled.targets["caption"]["value"], values) and shuffled.rows == split.rows
    assert torch.equal(split.inputs["image"]["value"], values)  # the split itself is left as it was
