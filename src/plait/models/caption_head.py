"""The head of a `caption` output: a Transformer decoder attending to everything the encoders saw.

Its memory is one token for the fused vector followed by each input's token sequence (an image's patches or grid
cells; a single token for inputs that only give a vector), each projected to the decoder's width and tagged with a
learned embedding of where it came from.
"""

from __future__ import annotations

import torch
from torch import nn

from plait.models.search import generate
from plait.models.decoder import CaptionDecoder


class CaptionHead(nn.Module):
    attends_to_inputs = True  # the model passes it every input's token sequence, not just the fused vector

    def __init__(self, fused_dim: int, input_dims: dict[str, int], tokenizer, settings, max_length: int, generation: dict):
        super().__init__()
        self.fused = nn.Linear(fused_dim, settings.dim)
        self.inputs = nn.ModuleDict({name: nn.Linear(width, settings.dim) for name, width in input_dims.items()})
        self.source = nn.Parameter(torch.zeros(1 + len(input_dims), settings.dim))  # fused, then each input
        nn.init.normal_(self.source, std=0.02)
        self.decoder = CaptionDecoder(tokenizer.vocab_size, settings.dim, settings.heads, settings.layers, settings.ff_dim,
                                      max_length, settings.dropout, tokenizer.pad_id)
        self.bos_id, self.eos_id = tokenizer.bos_id, tokenizer.eos_id
        self.generation = generation

    def memory(self, fused: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [(self.fused(fused) + self.source[0])[:, None]]
        for index, (name, projection) in enumerate(self.inputs.items(), start=1):
            parts.append(projection(tokens[name]) + self.source[index])
        return torch.cat(parts, dim=1)

    def forward(self, fused, tokens, target) -> torch.Tensor:
        """Teacher forcing: logits [N, T, vocab] for the decoder input `target["input"]` [N, T]."""
        return self.decoder(self.memory(fused, tokens), None, target["input"])

    @torch.no_grad()
    def generate(self, fused, tokens, **options) -> list[list[int]]:
        """Token ids of each row's caption (without start and end tokens), greedy or by beam search."""
        settings = {**self.generation, **{key: value for key, value in options.items() if value is not None}}
        return generate(self.decoder, self.memory(fused, tokens), None, self.bos_id, self.eos_id, settings["max_length"],
                        settings["beam_size"], settings["length_penalty"])
