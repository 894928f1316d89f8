"""Inference-time rewrites of the FOMM networks that keep their outputs (to float rounding) but run faster.

Applied in place to a loaded model; the rewritten networks no longer carry BatchNorm layers, so
their state dicts no longer match the checkpoint layout.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from .dense_motion import DenseMotionNetwork
from .generator import OcclusionAwareGenerator

log = logging.getLogger(__name__)


# The fused kernel has 16/9 as many weights. Wide layers sit at the bottom of the hourglasses, on
# maps of a few pixels, where reading the weights costs more than the arithmetic: fuse only narrow ones.
MAX_FUSED_UPSAMPLE_WEIGHTS = 512 * 256 * 9


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm that directly follows `conv` into the conv's weight and bias."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)


class UpsampleConv2d(nn.Module):
    """Nearest x2 upsampling followed by a 3x3 conv (padding 1), computed at the input resolution.

    Each of the four output phases of conv(upsample(x)) sees only a 2x2 neighbourhood of x, with
    the 3x3 taps that land on the same input pixel summed: 16 instead of 36 multiply-adds per
    input pixel and channel pair, and no upsampled intermediate. All four phases run as one conv
    with a 2x2 kernel and padding 1; phase (a, b) is its output shifted by (a, b).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        weight = conv.weight.detach()
        # Rows (and columns) of the 3x3 kernel that fall on input offsets {-1, 0} (phase 0) or {0, +1} (phase 1).
        merge = weight.new_tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]])  # phase x 2 x 3
        phases = [torch.einsum("ai,bj,oxij->oxab", merge[a], merge[b], weight) for a in (0, 1) for b in (0, 1)]
        self.weight = nn.Parameter(torch.cat(phases, dim=0), requires_grad=False)  # (4*Cout) x Cin x 2 x 2
        bias = conv.bias.detach().repeat(4) if conv.bias is not None else None
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.out_channels
        y = F.conv2d(x, self.weight, self.bias, padding=1)  # n x 4c x (h+1) x (w+1)
        out = y.new_empty(n, h, 2, w, 2, c)  # channels-last memory of the (n, c, 2h, 2w) result
        for a in (0, 1):
            for b in (0, 1):
                phase = y[:, (2 * a + b) * c : (2 * a + b + 1) * c, a : a + h, b : b + w]
                out[:, :, a, :, b, :] = phase.permute(0, 2, 3, 1)
        return out.view(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


class FusedUpBlock2d(nn.Module):
    """UpBlock2d with its BatchNorm folded and the upsampling fused into the conv."""

    def __init__(self, block: UpBlock2d) -> None:
        super().__init__()
        fold_batchnorm(block.conv, block.norm)
        self.conv = UpsampleConv2d(block.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class MergedHeads(nn.Module):
    """The dense motion network's mask and occlusion convs as one conv over their shared input.

    A conv with one or a few output channels uses the CPU's vector units poorly; one conv with
    both heads' channels costs about half of the two.
    """

    def __init__(self, mask: nn.Conv2d, occlusion: nn.Conv2d) -> None:
        super().__init__()
        self.split = mask.out_channels
        self.conv = nn.Conv2d(mask.in_channels, mask.out_channels + occlusion.out_channels, mask.kernel_size,
                              padding=mask.padding)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([mask.weight, occlusion.weight]))
            self.conv.bias.copy_(torch.cat([mask.bias, occlusion.bias]))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.conv(features)
        return logits[:, : self.split], logits[:, self.split :]


class SmallMapConv2d(nn.Module):
    """A wide conv evaluated as one matrix product (im2col) when its input map is tiny.

    On maps of a few pixels a direct convolution parallelises poorly; for the 2048-channel layer at
    the bottom of the dense motion hourglass (8x8 pixels) the product is about 2.5 times faster.
    The weights are kept once, as the matrix the product needs.
    """

    MAX_PIXELS = 64

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.kernel_size = conv.kernel_size
        self.padding = conv.padding
        self.weight = nn.Parameter(conv.weight.detach().reshape(conv.out_channels, -1).contiguous(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if n != 1 or h * w > self.MAX_PIXELS:
            return F.conv2d(x, self.weight.view(len(self.bias), c, *self.kernel_size), self.bias, padding=self.padding)
        columns = F.unfold(x, self.kernel_size, padding=self.padding)[0]
        return torch.addmm(self.bias[:, None], self.weight, columns).view(1, -1, h, w)


class WinogradConv2d(nn.Module):
    """A 3x3 conv (stride 1, padding 1) by Winograd's minimal filtering F(2x2, 3x3).

    Each 2x2 output tile costs 16 multiplies per channel pair instead of 36: the input tiles and
    the kernel are transformed so that the conv becomes 16 independent matrix products, and only
    additions remain around them. All transforms run on channels-last data, where each step is an
    addition of contiguous channel vectors. Used for the generator's residual bottleneck, the bulk
    of the per-frame work; other shapes (odd sizes, batches) take the direct conv.
    """

    # G, the kernel transform of F(2x2, 3x3); the input (B^T) and output (A^T) transforms are
    # written out as additions in forward.
    KERNEL_TRANSFORM = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.groups != 1:
            raise ValueError("WinogradConv2d takes 3x3 convs with stride 1 and padding 1")
        self.conv = conv
        g = conv.weight.new_tensor(self.KERNEL_TRANSFORM)
        transformed = torch.einsum("ik,ockl,jl->ijco", g, conv.weight.detach(), g)  # 4 x 4 x Cin x Cout
        self.register_buffer("kernel", transformed.reshape(16, conv.in_channels, conv.out_channels).contiguous())

    # Measured on this kind of CPU: narrower inputs and smaller maps are faster with the direct conv,
    # whose cost is then dominated by memory traffic rather than multiplies.
    MIN_CHANNELS = 128
    MIN_PIXELS = 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if n != 1 or h % 2 or w % 2 or x.dtype != self.kernel.dtype or c < self.MIN_CHANNELS or h * w < self.MIN_PIXELS:
            return self.conv(x)
        th, tw = h // 2, w // 2
        padded = F.pad(x.permute(0, 2, 3, 1)[0], (0, 0, 1, 1, 1, 1))  # (h+2) x (w+2) x c
        rows = [padded[k : k + h : 2] for k in range(4)]  # th x (w+2) x c: row k of every 4x4 tile
        rows = (rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[1] - rows[3])
        tiles = x.new_empty(4, 4, th, tw, c)
        for i, row in enumerate(rows):
            cols = [row[:, k : k + w : 2] for k in range(4)]
            torch.sub(cols[0], cols[2], out=tiles[i, 0])
            torch.add(cols[1], cols[2], out=tiles[i, 1])
            torch.sub(cols[2], cols[1], out=tiles[i, 2])
            torch.sub(cols[1], cols[3], out=tiles[i, 3])
        products = torch.bmm(tiles.view(16, th * tw, c), self.kernel).view(4, 4, th, tw, -1)
        out = x.new_empty(1, th, 2, tw, 2, products.shape[-1])  # channels-last memory of the result
        for i, rows_sum in enumerate(
            (products[0] + products[1] + products[2], products[1] - products[2] - products[3])
        ):
            torch.add(rows_sum[0] + rows_sum[1], rows_sum[2], out=out[0, :, i, :, 0])
            torch.sub(rows_sum[1] - rows_sum[2], rows_sum[3], out=out[0, :, i, :, 1])
        out = out.view(1, h, w, -1)
        if self.conv.bias is not None:
            out += self.conv.bias
        return out.permute(0, 3, 1, 2)


# Input width from which a conv gets the matrix-product path on tiny maps (measured: narrower ones
# are as fast or faster as direct convolutions).
MIN_SMALL_MAP_CHANNELS = 2048


def _rewrite(module: nn.Module, winograd: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, UpBlock2d) and child.conv.weight.numel() <= MAX_FUSED_UPSAMPLE_WEIGHTS:
            setattr(module, name, FusedUpBlock2d(child))
            continue
        if isinstance(child, (UpBlock2d, DownBlock2d, SameBlock2d)):
            fold_batchnorm(child.conv, child.norm)
            child.norm = nn.Identity()
            if child.conv.in_channels >= MIN_SMALL_MAP_CHANNELS:
                child.conv = SmallMapConv2d(child.conv)
            elif winograd and child.conv.kernel_size == (3, 3):
                child.conv = WinogradConv2d(child.conv)
        elif isinstance(child, ResBlock2d):
            fold_batchnorm(child.conv1, child.norm2)
            child.norm2 = nn.Identity()
            if winograd:
                child.conv1, child.conv2 = WinogradConv2d(child.conv1), WinogradConv2d(child.conv2)
        elif isinstance(child, DenseMotionNetwork) and child.occlusion is not None:
            child.merged_heads = MergedHeads(child.mask, child.occlusion)
        _rewrite(child, winograd)


@torch.no_grad()
def optimize_for_inference(*networks: nn.Module, channels_last: bool = True, winograd: bool = True) -> None:
    """Fold BatchNorms into convolutions, fuse upsampling into the decoder convs, use Winograd or matrix-product
    convolutions where they are faster, merge the motion heads, and use channels-last memory.

    Idempotent: networks already rewritten are left as they are. `winograd` is for CPUs: GPU
    libraries choose fast convolution algorithms themselves.
    """
    for network in networks:
        if getattr(network, "inference_optimized", False):
            continue
        if network.training:
            raise ValueError("optimize_for_inference needs networks in eval mode")
        _rewrite(network, winograd)
        if channels_last:
            network.to(memory_format=torch.channels_last)
        network.inference_optimized = True


def reduced_precision_dtype(device: torch.device) -> torch.dtype | None:
    """The low-precision type that is fast on this device: bfloat16 on CPUs with native bf16, float16 on CUDA."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        # Without native bf16 instructions oneDNN emulates bf16, which is slower than float32.
        # Private probes, absent from older torch releases: without them, stay in float32.
        probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        if any(probe() for probe in probes if probe is not None):
            return torch.bfloat16
    return None


def decoder_runs_in(generator: OcclusionAwareGenerator, dtype: torch.dtype) -> bool:
    """Switch the decoder to `dtype` if this device has kernels for it; otherwise leave it in float32."""
    device = generator.final.weight.device
    generator.set_decoder_dtype(dtype)
    try:
        with torch.no_grad():
            generator.decode(torch.zeros(1, generator.feature_channels, 8, 8, device=device))
        return True
    except RuntimeError:
        log.warning("%s is not supported for the decoder on %s; using float32.", dtype, device, exc_info=True)
        generator.set_decoder_dtype(torch.float32)
        return False


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_NAMES = {dtype: name for name, dtype in PRECISIONS.items()}


def enable_fast_paths(kp_detector: nn.Module, generator: OcclusionAwareGenerator, precision: str = "auto") -> str:
    """Rewrite the networks for inference and pick the decoder precision; returns a short description.

    `precision` is "auto" (the fastest type this device runs natively), "fp32", "bf16" or "fp16".
    """
    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}; got {precision!r}")
    device = generator.final.weight.device
    optimize_for_inference(kp_detector, generator, winograd=device.type == "cpu")
    dtype = (reduced_precision_dtype(device) or torch.float32) if precision == "auto" else PRECISIONS[precision]
    if dtype != torch.float32:
        decoder_runs_in(generator, dtype)
    else:
        generator.set_decoder_dtype(torch.float32)
    name = PRECISION_NAMES[generator.decoder_dtype]
    winograd = ", Winograd convolutions" if device.type == "cpu" else ""
    return f"{name} decoder{winograd}, folded BatchNorm, fused upsampling, channels-last"
