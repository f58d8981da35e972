"""The caption decoder: a causal Transformer decoder over caption tokens that cross-attends to a memory.

Callers project their memory (image patches, fused vectors, ...) to the decoder's width first; this module only
knows tokens, positions and attention.
"""

from __future__ import annotations

import torch
from torch import nn


class CaptionDecoder(nn.Module):
    """Pre-norm Transformer decoder with learned positions and an output projection tied to the token embedding.

    The embedding starts at std dim**-0.5 and is multiplied by sqrt(dim) on the way in: the decoder's input starts at
    unit scale, and so do the logits of the tied output projection (a unit-scale vector against rows of norm ~1).
    """

    def __init__(self, vocab_size: int, dim: int, heads: int, layers: int, ff_dim: int, max_length: int, dropout: float,
                 pad_id: int):
        super().__init__()
        self.dim, self.max_length = dim, max_length
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position = nn.Embedding(max_length, dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerDecoderLayer(dim, heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(dim)  # pre-norm layers leave their output unnormalised
        self.output = nn.Linear(dim, vocab_size, bias=False)
        self.output.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)
        nn.init.normal_(self.position.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()  # the init above overwrote nn.Embedding's zero padding row

    def forward(self, memory: torch.Tensor, memory_padding: torch.Tensor | None, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [N, T, vocab] of the token after each position of `tokens` [N, T], given `memory` [N, L, dim].

        `memory_padding` [N, L] is True where a memory position is to be ignored. Padding in `tokens` needs no mask:
        it only ever follows the real tokens, and causal attention keeps them from seeing it (a row of nothing but
        padding still attends to itself, so it gives finite logits rather than NaN).
        """
        length = tokens.size(1)
        if length > self.max_length:
            raise ValueError(f"{length} tokens, but the caption decoder has positions for {self.max_length} (its max_length)")
        if memory_padding is not None and bool(memory_padding.all(dim=1).any()):
            raise ValueError("a row's memory is all padding: the caption decoder would have nothing to attend to")
        positions = torch.arange(length, device=tokens.device)
        x = self.dropout(self.embed(tokens) * self.dim ** 0.5 + self.position(positions))
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1)  # True: may not attend
        x = self.blocks(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=memory_padding)
        return self.output(self.norm(x))
