"""Which engine runs the model: torch, or the exported graphs on an ONNX execution provider.

`--backend torch|onnx` decides directly (`--provider` forces an ONNX provider). `auto` measures on first start
with a given device, provider set and checkpoint: it times each available backend on a few frames, keeps the
fastest whose output stays within `AUTO_TOLERANCE` of float32 torch, remembers the choice in the user data folder,
and says why in one line (`Engine.reason`, also each predictor's `backend_reason`).
"""
from __future__ import annotations

import copy
import datetime
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..core.errors import AvatarifyError
from ..core.files import write_atomically
from ..core.frame import MotionOptions
from ..core.paths import user_data_dir
from .fomm import DEFAULT_CONFIG, FOMM, load_model
from .measure import Measurement, measure, pick
from .onnx.cache import GraphCache, GraphSet, default_cache_root, graph_stem, weights_key
from .onnx.check import check_graphs
from .onnx.predictor import OnnxEngine, decoder_precision
from .onnx.runtime import BACKENDS, Provider, available_providers, find_provider, import_onnxruntime
from .predictor import Predictor

log = logging.getLogger(__name__)

CHOICE_FILE = "backend-choice.json"
CHOICE_VERSION = 1
AUTO_FRAMES = 4


@dataclass
class ModelSource:
    """The weights to run: a checkpoint file (its exports cached by its hash), or a model in memory (benchmarks,
    `avatarify doctor` without weights), whose exports go to a temporary folder."""

    config: Path = DEFAULT_CONFIG
    checkpoint: Path | None = None
    model: FOMM | None = None
    description: str = ""
    _temporary: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def load(self, device: torch.device | str = "cpu") -> FOMM:
        """A fresh copy of the model on `device` (engines rewrite theirs in place)."""
        if self.model is None:
            return load_model(self.config, self.checkpoint, device=device)
        fresh = copy.deepcopy(self.model)
        for network in (fresh.kp_detector, fresh.generator):
            network.to(device)
        fresh.device = torch.device(device)
        return fresh

    @property
    def key(self) -> str:
        """What names these weights: the checkpoint's hash, or "in-memory" for a model without a file."""
        return weights_key(self.checkpoint, self.config) if self.checkpoint else "in-memory"

    def cache(self, root: Path | None = None) -> GraphCache:
        if self.checkpoint is None:
            if self._temporary is None:
                self._temporary = tempfile.TemporaryDirectory(prefix="avatarify-onnx-")
            return GraphCache(Path(self._temporary.name), self.key)
        return GraphCache((root or default_cache_root()) / self.key, self.key)

    def graphs(self, precision: str, root: Path | None = None, force: bool = False) -> GraphSet:
        """The exported graphs for a decoder precision, exported and checked first where needed."""
        stems = ["keypoints", "encoder", graph_stem("animate", precision)]
        return self.cache(root).ensure(stems, lambda: self.load("cpu"), check_graphs, force=force)


class TorchEngine:
    """The torch model on one device; its predictors share it."""

    backend = "torch"

    def __init__(self, model: FOMM, precision: str = "auto") -> None:
        self.model = model
        self.precision = precision
        self.reason = ""
        self.warnings: list[str] = []

    def predictor(self, motion: MotionOptions | None = None) -> Predictor:
        predictor = Predictor(self.model, motion=motion, precision=self.precision)
        predictor.backend_reason = self.reason
        return predictor


def torch_engine(source: ModelSource, device: str, precision: str) -> TorchEngine:
    from .device import select_device

    return TorchEngine(source.load(select_device(device)), precision)


def onnx_engine(source: ModelSource, provider: Provider, device: str, precision: str,
                cache_root: Path | None = None) -> OnnxEngine:
    graphs = source.graphs(decoder_precision(provider, precision), cache_root)
    return OnnxEngine(graphs, provider, device, precision)


def candidate_providers(device: str, forced: str | None = None) -> list[Provider]:
    """The ONNX providers worth trying for a --device: all installed ones for "auto", else those of that device."""
    if forced:
        return [find_provider(forced)]
    providers = available_providers()
    if device in ("auto", ""):
        return providers
    kind = "cuda" if device.startswith("cuda") else device
    return [provider for provider in providers if provider.device_kind == kind]


@dataclass(frozen=True)
class BackendChoice:
    """What `auto` chose (provider None for torch) and why."""

    backend: str
    provider: str | None
    reason: str
    measurements: tuple[Measurement, ...] = ()


def choice_key(device: str, providers: list[Provider], source: ModelSource, precision: str) -> str:
    names = ",".join(provider.name for provider in providers)
    return f"device={device}; providers={names}; weights={source.key}; precision={precision}"


def choice_path() -> Path:
    return user_data_dir() / CHOICE_FILE


def remembered_choice(key: str, path: Path | None = None) -> BackendChoice | None:
    """The choice `auto` made before for `key`, or None (never measured, or the file is unreadable)."""
    try:
        data = json.loads((path or choice_path()).read_text())
        entry = data["choices"][key] if data.get("version") == CHOICE_VERSION else None
        return BackendChoice(entry["backend"], entry["provider"], entry["reason"]) if entry else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remember_choice(key: str, choice: BackendChoice, path: Path | None = None) -> None:
    """Add `choice` to the choices file (written whole, atomically; an unreadable file is replaced)."""
    path = path or choice_path()
    try:
        data = json.loads(path.read_text())
        choices = data["choices"] if data.get("version") == CHOICE_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        choices = {}
    choices[key] = {
        "backend": choice.backend, "provider": choice.provider, "reason": choice.reason,
        "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "timings": [m.as_dict() for m in choice.measurements],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps({"version": CHOICE_VERSION, "choices": choices}, indent=2).encode())


def measure_backends(source: ModelSource, device: str, precision: str, providers: list[Provider],
                     frames: int, cache_root: Path | None = None) -> tuple[list[Measurement], dict]:
    """Time torch and every provider in `providers` on `frames` frames each, with their error from float32 torch.

    Returns the measurements and the engines that started (by measurement label), for the caller to keep one.
    """
    from .device import select_device

    torch_device = select_device(device)
    builders: dict[str, Callable[[], object]] = {
        f"torch ({torch_device})": lambda: torch_engine(source, device, precision)
    }
    for provider in providers:
        builders[f"onnx {provider.name}"] = (
            lambda provider=provider: onnx_engine(source, provider, device, precision, cache_root)
        )
    reference = Predictor(source.load(torch_device), precision="fp32", optimize=False)
    return measure(builders, reference, frames)


def auto_choice(source: ModelSource, device: str, precision: str, cache_root: Path | None = None,
                providers: list[Provider] | None = None) -> tuple[BackendChoice, TorchEngine | OnnxEngine | None]:
    """The backend `auto` runs, remembered or measured now; with the measured engine when one was built.

    `providers` are those measured against torch; by default the accelerators among the installed ones: on a CPU
    the project's own torch path beats ONNX Runtime and OpenVINO on the same graph (about 2x on a quiet machine),
    so a CPU-only computer starts at once.
    """
    if providers is None:
        providers = [provider for provider in candidate_providers(device) if provider.device_kind != "cpu"]
    if not providers:
        if not available_providers():
            why = "ONNX Runtime is not installed"
        else:
            why = "the fastest path without a GPU provider (--backend onnx runs the exported graphs anyway)"
        return BackendChoice("torch", None, f"torch: {why}"), None
    key = choice_key(device, providers, source, precision)
    remembered = remembered_choice(key) if source.checkpoint else None
    if remembered is not None:
        return remembered, None
    log.info("Measuring the backends on %s (first start with this device and checkpoint) ...", device)
    measurements, engines = measure_backends(source, device, precision, providers, AUTO_FRAMES, cache_root)
    best, reason = pick(measurements)
    choice = BackendChoice(best.backend, best.provider, reason, tuple(measurements))
    if source.checkpoint:
        remember_choice(key, choice)
    return choice, engines.get(best.label)


def load_engine(source: ModelSource, backend: str = "auto", provider: str | None = None, device: str = "auto",
                precision: str = "auto", cache_root: Path | None = None) -> TorchEngine | OnnxEngine:
    """The engine the options name, with `reason` saying why it runs; its `predictor(motion)` makes predictors."""
    if backend not in BACKENDS:
        raise AvatarifyError(f"Unknown backend {backend!r}; use {', '.join(BACKENDS)}.")
    if provider and backend == "torch":
        raise AvatarifyError("--provider chooses an ONNX execution provider; it does not go with --backend torch.")
    if backend == "auto" and not provider:
        choice, engine = auto_choice(source, device, precision, cache_root)
        if engine is None:
            engine = _engine_for(source, choice.backend, choice.provider, device, precision, cache_root)
        engine.reason = choice.reason
    else:
        engine = _engine_for(source, "onnx" if provider else backend, provider, device, precision, cache_root)
        engine.reason = f"{engine.backend} on {_where(engine)}: chosen with --backend/--provider"
    log.info("Backend: %s", engine.reason)
    return engine


def _engine_for(source: ModelSource, backend: str, provider: str | None, device: str, precision: str,
                cache_root: Path | None) -> TorchEngine | OnnxEngine:
    if backend == "torch":
        return torch_engine(source, device, precision)
    import_onnxruntime()  # one line, not a traceback, when ONNX Runtime is missing
    chosen = find_provider(provider) if provider else (candidate_providers(device) or [None])[0]
    if chosen is None:
        raise AvatarifyError(f"No ONNX execution provider for --device {device}; installed: "
                             f"{', '.join(p.name for p in available_providers())}.")
    return onnx_engine(source, chosen, device, precision, cache_root)


def _where(engine: TorchEngine | OnnxEngine) -> str:
    return engine.device_name if isinstance(engine, OnnxEngine) else str(engine.model.device)

