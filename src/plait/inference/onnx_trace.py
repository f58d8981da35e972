"""What the TorchScript ONNX tracer (torch 2.13) cannot follow in plait's models, said in ops it can, for the length
of one export (`traceable`). Each stand-in computes what the original computes, and the export is checked against
PyTorch afterwards, so a use they do not cover shows up as a refused export, not as wrong numbers.

- `a |= b` on a tensor (the text encoders' `attendable` mask) has no ONNX symbolic: it is registered as `Or`; the
  tracer writes the result back into the slice itself.
- `nn.MultiheadAttention` (in `TransformerEncoderLayer`) reads the key's length as a number and the traced graph
  keeps it: `self_attention` reshapes without reading any size.
- The final hidden state of an LSTM or GRU run on a packed sequence (`pooling: last`) fails in the exporter's
  peephole pass, while its output does not: `recurrence` reads the last layer's final state off the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def in_place_or(graph, tensor, other):
    return graph.op("Or", tensor, other)


def self_attention(module: nn.MultiheadAttention, query, key, value, key_padding_mask=None, need_weights=True,
                   attn_mask=None, average_attn_weights=True, is_causal=False):
    """What `nn.MultiheadAttention` computes in eval mode for a `TransformerEncoderLayer`'s self-attention; any other
    use goes to its own forward."""
    if not (module.batch_first and query is key is value and attn_mask is None and not need_weights
            and module.in_proj_weight is not None and module.bias_k is None and not module.add_zero_attn):
        return nn.MultiheadAttention.forward(module, query, key, value, key_padding_mask, need_weights, attn_mask,
                                             average_attn_weights, is_causal)
    q, k, v = (part.unflatten(-1, (module.num_heads, module.head_dim)).transpose(1, 2)
               for part in F.linear(query, module.in_proj_weight, module.in_proj_bias).chunk(3, dim=-1))
    mask = None
    if key_padding_mask is not None:  # bool: True where not to attend; float: added to the scores
        mask = key_padding_mask[:, None, None, :]
        mask = ~mask if mask.dtype == torch.bool else mask
    attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return module.out_proj(attended.transpose(1, 2).flatten(2)), None


def recurrence(module: nn.RNNBase, input, hx=None):
    """An LSTM's or GRU's forward, with the final hidden state of its last layer read off the output when the input
    is packed. The earlier layers' final states and an LSTM's cell state, which plait's encoders do not read, are
    zeros here."""
    output, state = type(module).forward(module, input, hx)
    if not isinstance(input, PackedSequence) or getattr(module, "proj_size", 0):
        return output, state
    padded, lengths = pad_packed_sequence(output, batch_first=True)  # rows back in the input's order
    hidden, rows = module.hidden_size, torch.arange(padded.shape[0])
    last = [padded[rows, lengths.long() - 1, :hidden]]  # the forward direction ends at each row's last real step
    if module.bidirectional:
        last.append(padded[:, 0, hidden:])  # the backward direction ends at the first step
    final = torch.stack(last)
    final = torch.cat([final.new_zeros((module.num_layers - 1) * len(last), *final.shape[1:]), final])
    return output, (final, torch.zeros_like(final)) if isinstance(state, tuple) else final


STAND_INS = {nn.MultiheadAttention: self_attention, nn.LSTM: recurrence, nn.GRU: recurrence}


@contextmanager
def traceable(model: nn.Module, opset: int) -> Iterator[None]:
    """`model` with the stand-ins in place of its modules' forwards, and `|=` known to the exporter, while the block
    runs."""
    torch.onnx.register_custom_op_symbolic("aten::__ior_", in_place_or, opset)
    replaced = [module for module in model.modules() if type(module) in STAND_INS]
    for module in replaced:
        module.forward = partial(STAND_INS[type(module)], module)
    try:
        yield
    finally:
        for module in replaced:
            del module.forward
