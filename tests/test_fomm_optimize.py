"""Inference rewrites compute the same function as the layers they replace."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avatarify.model.fomm import DEFAULT_CONFIG, build_networks, read_model_params
from avatarify.model.fomm.blocks import UpBlock2d
from avatarify.model.fomm.optimize import (
    FusedUpBlock2d,
    UpsampleConv2d,
    enable_fast_paths,
    fold_batchnorm,
    optimize_for_inference,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [(5, 7), (16, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_conv_equals_conv_of_nearest_upsample(size, channels_last):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, kernel_size=3, padding=1)
    x = torch.randn(2, 6, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = conv(F.interpolate(x, scale_factor=2))
        actual = UpsampleConv2d(conv)(x)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_fold_batchnorm_matches_conv_then_batchnorm():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, kernel_size=3, padding=1)
    norm = nn.BatchNorm2d(5).eval()
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        expected = norm(conv(x))
        fold_batchnorm(conv, norm)
        torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_fused_up_block_matches_up_block():
    torch.manual_seed(2)
    block = UpBlock2d(8, 4).eval()
    block.norm.running_mean.normal_()
    block.norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        expected = block(x)
        torch.testing.assert_close(FusedUpBlock2d(block)(x), expected, atol=1e-5, rtol=1e-5)


def test_rewrite_removes_batchnorm_and_is_idempotent():
    kp_detector, generator = (net.eval() for net in build_networks(read_model_params(DEFAULT_CONFIG)))
    optimize_for_inference(kp_detector, generator)
    remaining = [m for net in (kp_detector, generator) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    # Only the pre-activation norms of the residual blocks stay: they sit before a ReLU, not after a conv.
    assert len(remaining) == len(generator.bottleneck)
    assert all(isinstance(block, FusedUpBlock2d) for block in generator.up_blocks)
    # The wide layers at the bottom of the hourglasses keep the plain upsample + conv.
    assert isinstance(generator.dense_motion_network.hourglass.decoder.up_blocks[0], UpBlock2d)
    optimize_for_inference(kp_detector, generator)  # a second call must not fold twice
    assert len([m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]) == len(remaining)


def test_explicit_precisions_and_bad_value():
    kp_detector, generator = (net.eval() for net in build_networks(read_model_params(DEFAULT_CONFIG)))
    assert enable_fast_paths(kp_detector, generator, "fp32").startswith("fp32 decoder")
    assert generator.decoder_dtype == torch.float32
    assert enable_fast_paths(kp_detector, generator, "bf16").startswith("bf16 decoder")
    assert generator.decoder_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        enable_fast_paths(kp_detector, generator, "int4")


def test_merged_heads_and_small_map_conv_match_the_originals():
    torch.manual_seed(3)
    from avatarify.model.fomm.optimize import MergedHeads, SmallMapConv2d

    mask, occlusion = nn.Conv2d(12, 5, 7, padding=3), nn.Conv2d(12, 1, 7, padding=3)
    features = torch.randn(1, 12, 16, 16)
    with torch.no_grad():
        merged_mask, merged_occlusion = MergedHeads(mask, occlusion)(features)
        torch.testing.assert_close(merged_mask, mask(features), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(merged_occlusion, occlusion(features), atol=1e-5, rtol=1e-5)
        conv = nn.Conv2d(64, 16, 3, padding=1)
        for size in (4, 8, 12):  # 12x12 is above the matrix-product threshold: the plain conv runs
            x = torch.randn(1, 64, size, size)
            torch.testing.assert_close(SmallMapConv2d(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(16, 16), (32, 24)])
def test_winograd_conv_equals_direct_conv(size):
    from avatarify.model.fomm.optimize import WinogradConv2d

    torch.manual_seed(4)
    conv = nn.Conv2d(128, 32, 3, padding=1).eval()
    x = torch.randn(1, 128, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(WinogradConv2d(conv)(x), conv(x), atol=1e-4, rtol=1e-4)
        # bfloat16: the transforms add rounding, but stay at the level of the direct bf16 conv
        fast = WinogradConv2d(copy.deepcopy(conv)).to(torch.bfloat16)
        error = (fast(x.to(torch.bfloat16)).float() - conv(x)).abs().mean()
        assert error < 2e-2 * conv(x).abs().mean()


def test_winograd_conv_falls_back_where_it_does_not_pay():
    from avatarify.model.fomm.optimize import WinogradConv2d

    conv = nn.Conv2d(128, 8, 3, padding=1).eval()
    winograd = WinogradConv2d(conv)
    calls = []
    conv.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        for shape in [(1, 128, 15, 16), (2, 128, 16, 16), (1, 128, 8, 8)]:  # odd size, batch, small map
            x = torch.randn(*shape)
            torch.testing.assert_close(winograd(x), conv(x))
    assert len(calls) == 6  # the direct conv ran for the wrapper each time, plus the reference calls
    with pytest.raises(ValueError):
        WinogradConv2d(nn.Conv2d(4, 4, 5, padding=2))
