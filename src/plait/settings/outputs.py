"""The keys of the `category`, `number` and `binned` outputs (their task types are in `plait/tasks/`), with no torch
import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from plait.schema import OutputBase


class CategoryOutput(OutputBase):
    type: Literal["category"] = "category"
    class_weights: Literal["none", "balanced"] | dict[str, float] = Field(
        "none", description="Loss weight per class: `balanced` (inverse training frequency) or a mapping label → weight."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy.")


class NumberOutput(OutputBase):
    type: Literal["number"] = "number"
    loss: Literal["mse", "huber"] = Field("mse", description="Loss on the standardised target.")
    huber_delta: float = Field(1.0, gt=0, description="`huber`: where the loss turns from quadratic to linear (standardised units).")
    normalize: Literal["standard", "none"] = Field("standard", description="Standardise the target with training statistics; predictions are turned back into original units.")


class BinnedOutput(OutputBase):
    type: Literal["binned"] = "binned"
    bins: int = Field(
        10, ge=2, description="Number of equal-width bins between the training minimum and maximum; values outside "
        "that range fall into the first or last bin."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy.")
