"""A modality of your own, added from outside plait in one line: `add_modality(FeatureType, [Encoder, ...])`.

The feature type (a `plait.data.features.base.FeatureType` with `Settings`, an `InputBase` whose `type` is the
modality's name and whose `default_encoder` names one of the encoders) turns a cell into tensors; each encoder (a
`plait.models.encoders.base.Encoder` with `Config`, an `EncoderBase` naming the modality in `modalities`) turns a
batch of them into vectors. Everything else (caching, bad-sample policy, missing values, fusion, heads, training,
evaluation, ablation, the report's previews, prediction) comes with the contract.
"""

from __future__ import annotations

from plait.config import add_input_settings
from plait.registry import ENCODERS, FEATURES
from plait.settings import name_of


def add_modality(feature: type, encoders: list[type]) -> None:
    """Register `feature` and `encoders` by the names their settings give, and let configs use them."""
    kind, names = name_of(feature.Settings), [name_of(encoder.Config) for encoder in encoders]
    if feature.Settings.default_encoder not in names:
        raise ValueError(f"{kind}: default_encoder {feature.Settings.default_encoder!r} is not among its encoders")
    taken = [kind] * (kind in FEATURES) + [name for name in names if name in ENCODERS]
    if taken:  # checked before anything is registered, so a refused modality leaves nothing behind
        raise ValueError(f"already registered: {', '.join(taken)}")
    FEATURES.register(kind)(feature)
    for name, encoder in zip(names, encoders):
        ENCODERS.register(name)(encoder)
    add_input_settings(feature.Settings, [encoder.Config for encoder in encoders])
