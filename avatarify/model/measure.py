"""Timing engines side by side and judging them against float32 torch: what `--backend auto` and
`avatarify doctor` measure."""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ..core.errors import AvatarifyError
from .fomm import DEFAULT_CONFIG, FOMM, load_model
from .onnx.check import check_frames
from .predictor import Predictor

log = logging.getLogger(__name__)

# Mean absolute difference of output images in [0, 1] from float32 torch that a backend may have and still be
# chosen: the bf16/fp16 decoders stay within a few thousandths; bf16 keypoints and motion are near 0.1.
AUTO_TOLERANCE = 1e-2


@dataclass(frozen=True)
class Measurement:
    """One engine's median time per frame and mean error from float32 torch (or why it could not run)."""

    label: str
    backend: str
    provider: str | None
    median_ms: float | None = None
    mae: float | None = None
    details: str = ""
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def usable(self) -> bool:
        return self.error is None and self.mae is not None and self.mae <= AUTO_TOLERANCE

    def line(self) -> str:
        """One line for a report: time, error and where it runs."""
        if self.error:
            return f"{self.label}: not available ({self.error})"
        return f"{self.label}: {self.median_ms:.1f} ms/frame, mean error {self.mae:.1e} ({self.details})"


def _describe(engine, predictor) -> tuple[str, str | None, str]:
    if engine.backend == "torch":
        return "torch", None, f"{predictor.device_name}, {predictor.fast_path}"
    notes = "; ".join(engine.warnings)
    return "onnx", engine.provider.name, predictor.device_name + (f"; {notes}" if notes else "")


def measure(builders: dict[str, Callable], reference: Predictor, count: int) -> tuple[list[Measurement], dict]:
    """Build each engine, check its output against `reference` on the check frames, then time `count` frames of
    each, interleaved so that machine noise hits all alike. Returns the measurements and the engines that ran."""
    source, driving = check_frames()
    reference.set_avatar(source)
    reference.set_neutral(driving[0])
    expected = [reference.animate_frame(frame).float().cpu() for frame in driving]
    engines, predictors, failed, errors = {}, {}, {}, {}
    for label, build in builders.items():
        backend = "torch" if label.startswith("torch") else "onnx"
        try:
            engine = build()
            predictor = engine.predictor()
            predictor.set_avatar(source)
            predictor.set_neutral(driving[0])
            errors[label] = float(np.mean([
                (predictor.animate_frame(frame).float().cpu() - ref).abs().mean().item()
                for frame, ref in zip(driving, expected)
            ]))
        except (AvatarifyError, RuntimeError) as exc:
            log.warning("%s could not run: %s", label, exc)
            failed[label] = Measurement(label, backend, label.split()[-1] if backend == "onnx" else None,
                                        error=str(exc).splitlines()[0])
            continue
        engines[label], predictors[label] = engine, predictor
    timings: dict[str, list[float]] = {label: [] for label in predictors}
    for round_index in range(count):
        frame = driving[round_index % len(driving)]
        for label, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict(frame)  # returns pixels on the CPU: includes waiting for a GPU
            timings[label].append((time.perf_counter() - start) * 1000)
    measurements = []
    for label in builders:
        if label in failed:
            measurements.append(failed[label])
            continue
        backend, provider, details = _describe(engines[label], predictors[label])
        measurements.append(Measurement(label, backend, provider, statistics.median(timings[label]), errors[label],
                                        details))
    return measurements, engines


def pick(measurements: list[Measurement]) -> tuple[Measurement, str]:
    """The fastest measurement within `AUTO_TOLERANCE` of float32 torch (torch when none is), and one line why."""
    usable = [m for m in measurements if m.usable]
    if usable:
        best = min(usable, key=lambda m: m.median_ms)
    else:
        best = next(m for m in measurements if m.backend == "torch")
    others = []
    for m in measurements:
        if m is best:
            continue
        if m.error:
            others.append(f"{m.label} unavailable")
        elif not m.usable:
            others.append(f"{m.label} {m.median_ms:.0f} ms but off by {m.mae:.1e}")
        else:
            others.append(f"{m.label} {m.median_ms:.0f} ms")
    timing = f"{best.median_ms:.0f} ms/frame" if best.median_ms is not None else "no timing"
    reason = f"{best.label}, the fastest within {AUTO_TOLERANCE:g} of float32 torch ({timing}"
    return best, reason + (f"; {', '.join(others)})" if others else ")")


@torch.no_grad()
def random_vox_model(device: torch.device | str = "cpu") -> FOMM:
    """vox-256 with seeded random weights whose BatchNorm statistics come from real face frames.

    For timing without the published weights: with untouched statistics the activations drift far from a real
    model's and the timings with them (denormal numbers are slow).
    """
    source, driving = check_frames()
    torch.manual_seed(0)
    model = load_model(DEFAULT_CONFIG, None, device=device)
    batch = torch.cat([
        torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255 for image in [source, *driving]
    ])
    for network in (model.kp_detector, model.generator):
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 1.0
    model.kp_detector.train()
    model.kp_detector(batch)
    model.kp_detector.eval()
    kp = model.kp_detector(batch)
    count = len(driving)
    kp_source = {k: v[:1].expand(count, *v.shape[1:]) for k, v in kp.items()}
    kp_driving = {k: v[1:] for k, v in kp.items()}
    model.generator.train()
    model.generator(batch[:1].expand(count, -1, -1, -1), kp_driving=kp_driving, kp_source=kp_source)
    model.generator.eval()
    return model
