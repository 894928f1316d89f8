"""Choosing the torch device the model runs on."""
from __future__ import annotations

import logging

import torch

from ..core.errors import AvatarifyError

log = logging.getLogger(__name__)

CPU_WARNING = (
    "Running the model on the CPU: expect a few frames per second. "
    "Use an NVIDIA GPU (CUDA), an Apple Silicon Mac, or a remote GPU worker (--worker) for real-time speed."
)


def select_device(preferred: str | None = None) -> torch.device:
    """The requested device, or the best available: CUDA, then Apple MPS, then CPU (with a warning)."""
    if preferred and preferred != "auto":
        try:
            device = torch.device(preferred)
        except RuntimeError as exc:
            raise AvatarifyError(f"Unknown device {preferred!r}; use auto, cpu, cuda, cuda:N or mps.") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise AvatarifyError("CUDA was requested but no CUDA GPU is available; use --device auto or cpu.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise AvatarifyError("Apple MPS was requested but is not available; use --device auto or cpu.")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cpu":
        log.warning(CPU_WARNING)
    return device
