"""Encoders for `sequence` inputs (variable-length series of C channels per step): a recurrent network (`lstm`),
and the CNN-LSTM-Dense trunk (`cnn_lstm`) that first shortens the series with convolution and max-pool blocks.

Each reads the batch made by the sequence feature (`value`: float [N, T, C], zeros from each row's `length` on;
`length`: int64 [N], at least 1) and the fitted feature's `channels` and `max_length`. Padding never reaches the
result: recurrences run on packed sequences and pooling looks at real steps only, so a row's vector (in eval mode)
is the same whatever the other rows of its batch are.
"""

from __future__ import annotations

import bisect

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from plait.errors import PlaitError
from plait.models.encoders.base import Encoder
from plait.models.layers import mlp
from plait.registry import ENCODERS
from plait.settings.sequence import POSITION_CHANNELS, CnnLstmConfig, LstmConfig, RecurrentKeys


def real_steps(length: torch.Tensor, steps: int) -> torch.Tensor:
    """[N] lengths → bool [N, steps], True on real time steps (the feature's `mask`, recomputed after pooling)."""
    return torch.arange(steps, device=length.device) < length[:, None]


def with_time_code(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N, T, C] → [N, T, C + POSITION_CHANNELS]: a fixed sine/cosine code of each step's index (as in the
    Transformer, periods from 2π to 2π·10⁴ steps) appended as channels, zero on padding like the values."""
    steps, half = x.shape[1], POSITION_CHANNELS // 2
    frequencies = 10000.0 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.arange(steps, device=x.device, dtype=torch.float32)[:, None] * frequencies  # [T, half]
    code = torch.cat([angles.sin(), angles.cos()], dim=-1).to(x.dtype).expand(x.shape[0], -1, -1)
    return torch.cat([x, code * mask[..., None]], dim=-1)


class StepInput(nn.Module):
    """A batch's steps as the network's input channels: token ids (`tokens`) looked up in a learned embedding,
    measurements as they are; then the time code, when `positional_encoding` asks for it."""

    def __init__(self, config: RecurrentKeys, feature):
        super().__init__()
        tokens = feature.spec.tokens
        self.embed = nn.Embedding(feature.vocab_size, tokens.dim) if tokens else None
        self.positional = config.positional_encoding
        self.channels = (tokens.dim if tokens else feature.channels) + (POSITION_CHANNELS if self.positional else 0)

    def forward(self, x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        if self.embed is None and not self.positional:
            return x  # measurements as they are: no mask to build
        mask = real_steps(length, x.shape[1])
        if self.embed is not None:
            x = self.embed(x[..., 0].long()) * mask[..., None]  # padding stays zero, as for measurements
        return with_time_code(x, mask) if self.positional else x


class Recurrence(nn.Module):
    """An LSTM or GRU over padded [N, T, C] rows, summarised per row by `pooling` without looking at padding."""

    def __init__(self, config: RecurrentKeys, in_channels: int, dropout: float = 0.0):
        super().__init__()
        cell = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = cell(in_channels, config.hidden, config.layers, batch_first=True, bidirectional=config.bidirectional,
                        dropout=dropout if config.layers > 1 else 0.0)  # torch warns about dropout after a last layer
        self.pooling = config.pooling
        self.out_dim = config.hidden * (2 if config.bidirectional else 1)

    def forward(self, x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        packed = pack_padded_sequence(x, length.cpu(), batch_first=True, enforce_sorted=False)
        output, state = self.rnn(packed)
        if self.pooling == "last":
            final = state[0] if isinstance(state, tuple) else state  # [layers · directions, N, hidden], rows in order
            directions = 2 if self.rnn.bidirectional else 1
            return torch.cat(list(final[-directions:]), dim=-1)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)  # [N, T, out_dim]
        mask = real_steps(length, steps)[..., None]
        if self.pooling == "mean":
            return (output * mask).sum(1) / length[:, None].to(output.dtype)
        return output.masked_fill(~mask, float("-inf")).amax(1)


@ENCODERS.register("lstm")
class SequenceLstm(Encoder):
    """A recurrent network read straight off the series' steps."""

    Config = LstmConfig

    def __init__(self, config: LstmConfig, feature):
        super().__init__()
        self.steps = StepInput(config, feature)
        self.recurrence = Recurrence(config, self.steps.channels, config.dropout)
        self.out_dim = self.recurrence.out_dim

    def forward(self, batch):
        length = batch["length"]
        return self.recurrence(self.steps(batch["value"], length), length)


def steps_after(layer: nn.Module, steps):
    """Time steps out of `layer` for `steps` in (an int, or a tensor of them): PyTorch's output-size formula for
    Conv1d and MaxPool1d (floor mode), unchanged for everything else."""
    if not isinstance(layer, (nn.Conv1d, nn.MaxPool1d)) or layer.padding == "same":
        return steps
    kernel, stride, padding, dilation = (value[0] if isinstance(value, tuple) else value
                                         for value in (layer.kernel_size, layer.stride, layer.padding, layer.dilation))
    return (steps + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@ENCODERS.register("cnn_lstm")
class SequenceCnnLstm(Encoder):
    """Convolution blocks find local shapes (peaks, edges) and shorten the series, a recurrence reads the pooled
    series, dense layers map its summary to the output."""

    Config = CnnLstmConfig

    def __init__(self, config: CnnLstmConfig, feature):
        super().__init__()
        self.steps = StepInput(config, feature)
        channels = self.steps.channels
        self.blocks = nn.ModuleList()
        for index in range(config.blocks):
            width = config.filters * 2 ** index
            self.blocks.append(nn.Sequential(nn.Conv1d(channels, width, config.kernel_size, padding="same"),
                                             nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(config.pool)))
            channels = width
        self.channels_after_cnn = channels
        # the shortest input the blocks pool down to one step (the size only grows with the input; `same` convolutions
        # keep it, so pool ** blocks always suffices); a shorter batch is zero-padded up to it
        inputs = range(1, config.pool ** config.blocks + 1)
        self.min_length = inputs[bisect.bisect_left(inputs, 1, key=self.size_after_cnn)]
        if feature.max_length < self.min_length:
            raise PlaitError(
                f"inputs.{feature.spec.name}.encoder: the longest training sequence has {feature.max_length} steps, but "
                f"{config.blocks} max pools of {config.pool} need at least {self.min_length}; lower `blocks` or `pool`"
            )
        self.recurrence = Recurrence(config, channels)
        self.dense, self.out_dim = mlp(self.recurrence.out_dim, config.dense, config.dropout)

    def size_after_cnn(self, length: int) -> int:
        """Time steps left after the convolution blocks for an input of `length` steps (0 or less: too short)."""
        for layer in self.blocks.modules():
            length = steps_after(layer, length)
        return length

    def convolve(self, x: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, C, T] and lengths → [N, channels_after_cnn, size_after_cnn(T)] and each row's pooled length (at least 1).

        Padding is zeroed before every convolution, as the convolution's own zero padding would be for the row alone,
        and again before every pool; after ReLU real values are >= 0, so a zero never wins a window over a real step."""
        for block in self.blocks:
            convolution, pool = block[:-1], block[-1]
            mask = real_steps(length, x.shape[-1])[:, None]
            x = pool(convolution(x * mask) * mask)
            length = steps_after(pool, length).clamp(min=1)
        return x, length

    def forward(self, batch):
        length = batch["length"]
        x = self.steps(batch["value"], length)
        if x.shape[1] < self.min_length:
            x = nn.functional.pad(x, (0, 0, 0, self.min_length - x.shape[1]))
        x, length = self.convolve(x.transpose(1, 2), length)
        return self.dense(self.recurrence(x.transpose(1, 2), length))
