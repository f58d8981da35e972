"""`init:` on encoders, fusions and heads: the pipelines plait replaces start some layers by hand (the attention
regression's LSTMs and Dense layers), so a port can start them the same way."""

from __future__ import annotations

import torch
from torch import nn

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase)
DRAW = {"xavier_uniform": nn.init.xavier_uniform_, "orthogonal": nn.init.orthogonal_,
        "kaiming_normal": lambda weight: nn.init.kaiming_normal_(weight, nonlinearity="relu")}


@torch.no_grad()
def initialise(module: nn.Module, scheme: str) -> None:
    """Draw the weights of every Linear, convolution and recurrent layer in `module` by `scheme` and zero their
    biases; a recurrent layer's hidden-to-hidden weights are orthogonal whatever the scheme (as Keras starts an
    LSTM). `default` leaves PyTorch's initialisation as it is; other layers (embeddings, norms) are left alone."""
    if scheme == "default":
        return
    for layer in module.modules():
        if not isinstance(layer, WEIGHTED):
            continue
        for name, parameter in layer.named_parameters(recurse=False):
            if name.startswith("bias"):
                parameter.zero_()
            elif isinstance(layer, nn.RNNBase) and name.startswith("weight_hh"):
                for gate in parameter.chunk(parameter.shape[0] // layer.hidden_size):  # one square block per gate
                    nn.init.orthogonal_(gate)
            else:
                DRAW[scheme](parameter)
