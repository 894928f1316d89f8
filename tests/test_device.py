"""Device choice: the best available accelerator, and a clear warning on the CPU."""
from __future__ import annotations

import logging

import pytest
import torch

from avatarify.model.device import CPU_WARNING, select_device
from avatarify.core.errors import AvatarifyError


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
def test_auto_falls_back_to_cpu_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert select_device("auto") == torch.device("cpu")
    assert CPU_WARNING in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(AvatarifyError, match="no CUDA GPU"):
        select_device("cuda")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(AvatarifyError, match="Unknown device 'tpu9'"):
        select_device("tpu9")


def test_explicit_cpu(caplog):
    with caplog.at_level(logging.WARNING):
        assert select_device("cpu") == torch.device("cpu")
    assert "CPU" in caplog.text
