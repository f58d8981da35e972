"""Encoder for `numeric` inputs: a small MLP lifting one number to a vector."""

from __future__ import annotations

from torch import nn

from plait.models.encoders.base import Encoder
from plait.registry import ENCODERS
from plait.settings.numeric import MlpConfig


@ENCODERS.register("mlp")
class NumericMlp(Encoder):
    Config = MlpConfig

    def __init__(self, config: MlpConfig, feature):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.hidden), nn.ReLU())
        self.out_dim = config.hidden

    def forward(self, batch):
        return self.net(batch["value"])
