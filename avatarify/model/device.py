"""Choosing the torch device the model runs on, and listing the ones this computer has."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from ..core.errors import AvatarifyError


class DeviceError(AvatarifyError):
    """The device asked for does not exist here; `requested` names it, so a window can say it in its own words."""

    def __init__(self, message: str, requested: str) -> None:
        super().__init__(message)
        self.requested = requested


def describe_devices() -> Iterator[str]:
    """torch's version and the devices it can use, as lines for a report."""
    yield f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            yield f"cuda:{index}: {torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda})"
    else:
        yield f"CUDA: not available ({'CPU-only build' if torch.version.cuda is None else 'no usable GPU'})"
    yield f"Apple MPS: {'available' if torch.backends.mps.is_available() else 'not available'}"


def available_devices() -> list[str]:
    """The devices the model can run on here, best first: each CUDA GPU, Apple MPS, then the CPU."""
    devices = [f"cuda:{index}" if index else "cuda" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return [*devices, "cpu"]


def select_device(preferred: str | None = None) -> torch.device:
    """The requested device, or the best available: CUDA, then Apple MPS, then CPU."""
    if not preferred or preferred == "auto":
        return torch.device(available_devices()[0])
    try:
        device = torch.device(preferred)
    except RuntimeError as exc:
        raise DeviceError(f"Unknown device {preferred!r}; use auto, cpu, cuda, cuda:N or mps.", preferred) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available; use --device auto or cpu.", preferred)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(f"There is no CUDA GPU number {device.index}; use --device cuda or cpu.", preferred)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("Apple MPS was requested but is not available; use --device auto or cpu.", preferred)
    return device
