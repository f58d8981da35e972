"""Mixed precision: the forward pass and loss under autocast, and for float16 a gradient scaler.

`fp32` changes nothing (the scaler is disabled and passes every call straight through, so a run stays bit for bit
what it was). `bf16` keeps float32's range, needs no scaling and runs on recent GPUs and CPUs. `fp16` needs the
scaler, which multiplies the loss so small gradients survive float16 and skips a step whose gradients overflowed;
its state is part of every checkpoint, so a resumed run scales as the uninterrupted one would.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device):
    """The context the forward pass and the loss run in."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Image and video convolutions' weights in channels-last memory order (NHWC / NDHWC), which GPU convolution
    kernels (cuDNN, tensor cores) run fastest on; their outputs follow. The values are unchanged."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.to(memory_format=torch.channels_last)
        elif isinstance(module, torch.nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
    return model
