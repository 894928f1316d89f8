"""Device choice: the best available accelerator, and a clear warning on the CPU."""
from __future__ import annotations


import pytest
import torch

from avatarify.model.device import DeviceError, available_devices, select_device
from avatarify.core.errors import AvatarifyError


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
def test_auto_falls_back_to_the_cpu():
    assert select_device("auto") == torch.device("cpu")
    assert available_devices() == ["cpu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA GPU") as raised:
        select_device("cuda:1")
    assert raised.value.requested == "cuda:1"


def test_unknown_device_is_a_clear_error():
    with pytest.raises(AvatarifyError, match="Unknown device 'tpu9'"):
        select_device("tpu9")


def test_explicit_cpu():
    assert select_device("cpu") == torch.device("cpu")
