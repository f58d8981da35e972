"""Encoders for `text` inputs: a bag of embeddings, a small transformer trained from scratch, or a pretrained
Hugging Face model from a local folder.

Each reads the batch made by the text feature's `stack` (`ids`, `attention_mask`, `present`) and the fitted
feature's `vocab_size`, `pad_id`, `kind` and `spec.max_length`. A row without tokens (a missing cell) comes out
as a zero vector, never NaN; the model puts its learned 'missing' embedding there.
"""

from __future__ import annotations

import torch
from torch import nn

from plait.errors import PlaitError
from plait.models.encoders.base import Encoder
from plait.models.encoders.hf import load_hf
from plait.registry import ENCODERS
from plait.settings.text import BagConfig, HfConfig, TransformerConfig


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens: [N, L, D] and [N, L] → [N, D]; rows without tokens give zeros."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def attendable(mask: torch.Tensor) -> torch.Tensor:
    """Rows without tokens attend to their first (pad) position: a query with no key to attend to is NaN in
    some attention kernels. Pooling still uses the real mask, so that position never reaches the output."""
    mask = mask.bool().clone()
    mask[:, 0] |= ~mask.any(1)
    return mask


def token_embedding(feature, dim: int) -> nn.Embedding:
    """A learned vector for each token of the fitted text feature's vocabulary; the pad token's stays zero."""
    return nn.Embedding(feature.vocab_size, dim, padding_idx=feature.pad_id)


@ENCODERS.register("bag")
class TextBag(Encoder):
    """Mean of learned token embeddings: fast, order-blind, a strong baseline for short texts."""

    Config = BagConfig

    def __init__(self, config: BagConfig, feature):
        super().__init__()
        self.embedding = token_embedding(feature, config.dim)
        self.out_dim = config.dim

    def forward(self, batch):
        return masked_mean(self.embedding(batch["ids"]), batch["attention_mask"])


@ENCODERS.register("transformer")
class TextTransformer(Encoder):
    """A small transformer encoder trained from scratch, with learned positions, mean-pooled over real tokens."""

    Config = TransformerConfig

    def __init__(self, config: TransformerConfig, feature):
        super().__init__()
        self.embedding = token_embedding(feature, config.dim)
        self.positions = nn.Embedding(feature.spec.max_length, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, config.ff, config.dropout, batch_first=True)
        # one code path in training and evaluation: the nested-tensor fast path would apply in eval only
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out_dim = config.dim

    def forward(self, batch):
        ids, mask = batch["ids"], batch["attention_mask"]
        positions = torch.arange(ids.shape[1], device=ids.device)
        hidden = self.dropout(self.embedding(ids) + self.positions(positions))
        hidden = self.layers(hidden, src_key_padding_mask=~attendable(mask))
        return masked_mean(hidden, mask)


@ENCODERS.register("hf")
class TextHf(Encoder):
    """A pretrained Hugging Face encoder (BERT, MiniLM, RoBERTa, ...) from a local folder."""

    Config = HfConfig

    def __init__(self, config: HfConfig, feature):
        super().__init__()
        from transformers import AutoModel

        if feature.kind != "hf":
            raise PlaitError(
                f"inputs.{feature.spec.name}.tokenizer: encoder `hf` needs the model's own tokenizer "
                f"(`hf` or `auto`), not `{feature.kind}`"
            )
        self.model = load_hf(config.path, AutoModel, None, {})
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and feature.spec.max_length > limit:
            raise PlaitError(f"inputs.{feature.spec.name}.max_length: {feature.spec.max_length} is more than the model's {limit} positions")
        self.pooling = config.pooling
        if self.pooling == "pooler" and getattr(self.model, "pooler", None) is None:
            raise PlaitError(f"inputs.{feature.spec.name}.encoder.pooling: the model in {config.path} has no pooled output "
                             "(no `pooler`); use `cls` or `mean`")
        self.out_dim = self.model.config.hidden_size

    def forward(self, batch):
        mask = batch["attention_mask"]
        output = self.model(input_ids=batch["ids"], attention_mask=attendable(mask).long())
        hidden = output.last_hidden_state
        if self.pooling == "mean":
            return masked_mean(hidden, mask)
        first = output.pooler_output if self.pooling == "pooler" else hidden[:, 0]
        return first * mask.any(1, keepdim=True).to(hidden.dtype)  # a missing row: zeros
