"""`avatarify doctor`: where this installation stands, as plain text a user can paste into a bug report.

Platform, Python, torch and its devices, ONNX Runtime and its providers, OpenVINO, the backend `auto` picks and
why, a timing of each available backend, the virtual camera and the cameras. Qt-free, and importing it imports
neither torch nor ONNX Runtime, so the app can show the same text (Help) and the thin client can run it.
Each section reports its own failure as a line instead of stopping the report.
"""
from __future__ import annotations

import importlib.util
import logging
import platform
import sys
from pathlib import Path
from typing import Callable, Iterator

from .. import __version__
from ..model.loader import ModelOptions

log = logging.getLogger(__name__)

DOCTOR_FRAMES = 20


def _section(title: str, lines: Callable[[], Iterator[str]]) -> list[str]:
    out = [f"{title}:"]
    try:
        out += [f"  {line}" for line in lines()]
    except Exception as exc:  # noqa: BLE001 - a report must finish whatever one part of the system does
        log.debug("doctor section %s failed", title, exc_info=True)
        out.append(f"  error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return out


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "installed"


def system_lines() -> Iterator[str]:
    yield f"avatarify {__version__}"
    yield f"{platform.system()} {platform.release()} ({platform.machine()}), {platform.platform()}"
    yield f"Python {sys.version.split()[0]} ({sys.executable})"
    import os

    yield f"{os.cpu_count()} CPU threads, processor: {platform.processor() or 'unknown'}"


def torch_lines() -> Iterator[str]:
    if importlib.util.find_spec("torch") is None:
        yield "not installed (the thin client: the model runs on a worker only; `pip install 'avatarify[model]'`)"
        return
    from ..model.device import describe_devices

    yield from describe_devices()


def runtime_lines() -> Iterator[str]:
    from ..model.onnx.runtime import available_providers, runtime_installed

    if not runtime_installed():
        yield "ONNX Runtime: not installed (`pip install 'avatarify[onnx]'`; see the README for GPU builds)"
    else:
        import onnxruntime

        yield f"ONNX Runtime {onnxruntime.__version__}: {', '.join(onnxruntime.get_available_providers())}"
    openvino = _version("openvino")
    if openvino:
        import openvino as ov

        yield f"OpenVINO {openvino}: devices {', '.join(ov.Core().available_devices)}"
    else:
        yield "OpenVINO: not installed"
    usable = available_providers()
    yield "providers avatarify uses, in order: " + (", ".join(p.name for p in usable) or "none")


def model_source(options: ModelOptions):
    """The checkpoint the options find, or vox-256 with random weights when there is none (said in `description`)."""
    from ..core.errors import CheckpointError
    from ..model.backend import ModelSource
    from ..model.fomm import DEFAULT_CONFIG
    from ..model.weights import find_checkpoint

    config = options.config or DEFAULT_CONFIG
    try:
        checkpoint = find_checkpoint(options.checkpoint)
        return ModelSource(config=config, checkpoint=checkpoint, description=f"checkpoint {checkpoint}")
    except CheckpointError:
        from ..model.measure import random_vox_model

        return ModelSource(model=random_vox_model(), description="vox-256 with random weights (no checkpoint found)")


def backend_lines(options: ModelOptions, frames: int) -> Iterator[str]:
    """What `auto` picks (remembered, and as measured now) and each backend's time per frame."""
    from ..model.backend import candidate_providers, choice_key, measure_backends, remembered_choice
    from ..model.measure import pick

    if importlib.util.find_spec("torch") is None:
        yield "no local model (torch is not installed)"
        return
    source = model_source(options)
    yield f"weights: {source.description}"
    providers = candidate_providers(options.device, options.provider)
    if source.checkpoint:
        remembered = remembered_choice(choice_key(options.device, providers, source, options.precision))
        yield f"auto (remembered): {remembered.reason}" if remembered else "auto: not measured yet on this device"
    if frames <= 0:
        return
    measurements, _ = measure_backends(source, options.device, options.precision, providers, frames)
    yield f"timing, {frames} frames each, device {options.device}:"
    for measurement in measurements:
        yield f"  {measurement.line()}"
    _, reason = pick(measurements)
    yield f"auto would pick now: {reason}"


def vcam_lines() -> Iterator[str]:
    from ..pipeline.vcam import list_virtual_cameras

    system = platform.system()
    backend = {"Linux": "v4l2loopback", "Windows": "OBS Virtual Camera or Unity Capture",
               "Darwin": "OBS Virtual Camera"}.get(system, "none (unsupported system)")
    yield f"pyvirtualcam {_version('pyvirtualcam') or 'not installed'}, backend: {backend}"
    if system == "Linux":
        loaded = Path("/sys/module/v4l2loopback").exists()
        yield f"v4l2loopback module: {'loaded' if loaded else 'not loaded (see scripts/setup-v4l2loopback.sh)'}"
    devices = list_virtual_cameras()
    yield "devices: " + (", ".join(devices) if devices else "none found")


def camera_lines() -> Iterator[str]:
    from ..pipeline.camera import list_cameras

    cameras = list_cameras()
    if not cameras:
        yield "none found"
    for camera in cameras:
        yield f"{camera.index}: {camera.name}"


def build_report(options: ModelOptions = ModelOptions(), frames: int = DOCTOR_FRAMES) -> str:
    """The whole report as text; `frames` 0 skips the timing (which exports and runs every backend)."""
    sections = [
        ("System", system_lines),
        ("torch", torch_lines),
        ("ONNX", runtime_lines),
        ("Backend", lambda: backend_lines(options, frames)),
        ("Virtual camera", vcam_lines),
        ("Cameras", camera_lines),
    ]
    lines: list[str] = []
    for title, section in sections:
        lines += _section(title, section)
    return "\n".join(lines)
