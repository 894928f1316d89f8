"""Choosing the torch device the model runs on."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

CPU_WARNING = (
    "Running the model on the CPU: expect a few frames per second. "
    "Use an NVIDIA GPU (CUDA), an Apple Silicon Mac, or a remote GPU worker (--worker) for real-time speed."
)


def select_device(preferred: str | None = None) -> torch.device:
    """The requested device, or the best available: CUDA, then Apple MPS, then CPU (with a warning)."""
    if preferred and preferred != "auto":
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("Apple MPS was requested but is not available; use --device cpu or auto.")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cpu":
        log.warning(CPU_WARNING)
    return device
