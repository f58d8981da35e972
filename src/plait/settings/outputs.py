"""The keys of the `category`, `number` and `binned` outputs (their task types are in `plait/tasks/`), with no torch
import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from plait.schema import INIT_DESCRIPTION, Activation, Initialisation, OutputBase, Section


class HeadKeys(Section):
    """The layers between the fused vector and an output's prediction."""

    hidden: list[PositiveInt] = Field(
        [], description="Widths of the head's own MLP layers (Linear → activation → Dropout) before its output layer, "
        "e.g. [64]; empty: the output layer reads the fused vector directly.",
    )
    activation: Activation = Field("relu", description="Activation after each of the head's `hidden` layers.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each of the head's `hidden` layers.")
    init: Initialisation = Field("default", description=INIT_DESCRIPTION)


class CategoryOutput(OutputBase, HeadKeys):
    type: Literal["category"] = "category"
    class_weights: Literal["none", "balanced"] | dict[str, float] = Field(
        "none", description="Loss weight per class: `balanced` (inverse training frequency) or a mapping label → weight. "
        "With `loss: focal` they are its per-class alpha."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the training loss (evaluation reports the plain loss).")
    loss: Literal["cross_entropy", "focal"] = Field(
        "cross_entropy", description="Training loss. `focal`: each row's cross-entropy times (1 - p)^`gamma`, p the "
        "probability given to its true class, so rows the model already gets right count less and rare, hard classes "
        "more (Lin et al. 2017); normalised like the weighted cross-entropy, so `gamma: 0` is the cross-entropy exactly. "
        "Evaluation reports the plain loss: the cross-entropy with `class_weights`, without the focal factor or label "
        "smoothing, so runs with different losses compare.",
    )
    gamma: float = Field(2.0, ge=0, description="`loss: focal`: how strongly rows with a confident right answer are down-weighted (0: not at all).")


class NumberOutput(OutputBase, HeadKeys):
    type: Literal["number"] = "number"
    loss: Literal["mse", "huber"] = Field("mse", description="Loss on the standardised target.")
    huber_delta: float = Field(1.0, gt=0, description="`huber`: where the loss turns from quadratic to linear (standardised units).")
    normalize: Literal["standard", "none"] = Field("standard", description="Standardise the target with training statistics; predictions are turned back into original units.")


class BinnedOutput(OutputBase, HeadKeys):
    type: Literal["binned"] = "binned"
    bins: int = Field(
        10, ge=2, description="Number of equal-width bins between the training minimum and maximum; values outside "
        "that range fall into the first or last bin."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the training loss (evaluation reports the plain loss).")
