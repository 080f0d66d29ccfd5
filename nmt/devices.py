"""Choosing the torch device, the same way for training, evaluation and translation."""

from __future__ import annotations

import torch

from nmt.errors import NmtError


def resolve_device(name: str, setting: str = "--device") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an unavailable accelerator is a clear
    error that names ``setting`` (the option or config key the name came from).

    Choosing CUDA also lets float32 matrix products use TF32 tensor cores (10-bit
    mantissa inputs, float32 accumulation): several times faster, and well within what
    training and search need.
    """
    device = _choose(name, setting)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    return device


def _choose(name: str, setting: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NmtError(f"{setting} {name}: not a device (cpu, cuda, cuda:N, mps, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NmtError(f"{setting} {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise NmtError(f"{setting} {name}: MPS is not available on this machine")
    return device
