"""The keys of the fusions, `concat`, `attention` and `late` (`plait/models/fusion.py`, `plait/models/late.py`), with
no torch import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from plait.schema import INIT_DESCRIPTION, Activation, Initialisation, Section


class MlpKeys(Section):
    """How each layer of an MLP is made: Linear → (BatchNorm1d) → activation → Dropout."""

    activation: Activation = Field("relu", description="Activation after each MLP layer.")
    batch_norm: bool = Field(
        False, description="BatchNorm1d between each MLP layer's Linear and its activation (in training, a batch of one "
        "row is normalised with the running statistics).",
    )
    init: Initialisation = Field("default", description=INIT_DESCRIPTION)


class ConcatConfig(MlpKeys):
    name: Literal["concat"] = "concat"
    hidden: list[int] = Field([128], description="Widths of the MLP layers after concatenation (empty: none).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each MLP layer.")


class AttentionConfig(MlpKeys):
    name: Literal["attention"] = "attention"
    dim: int = Field(64, ge=1, description="Common size each input's vector is projected to (Linear + tanh) before weighting.")
    hidden: list[int] = Field([64], description="Widths of the MLP layers after the weighted sum (empty: none).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each MLP layer.")


class LateConfig(MlpKeys):
    name: Literal["late"] = "late"
    hidden: list[int] = Field([64], description="Widths of each input's own MLP layers before its heads (empty: none).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each MLP layer.")
    combine: Literal["mean", "learned"] = Field(
        "mean", description="How the inputs' predictions are weighted: `mean` (equally) or `learned` (a softmax over one "
        "learned weight per input and output). Either way a row's missing inputs get no weight.",
    )
    input_loss: float = Field(
        1.0, ge=0, description="Weight of the mean of the inputs' own losses (each input's predictions against the "
        "target), added to the combined prediction's loss while training. 0: train the combination only.",
    )
