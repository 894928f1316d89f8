"""Running the exported graphs: which execution providers this machine has, and one session per graph.

Providers are tried in this order where their runtime is installed: TensorRT, CUDA, DirectML, CoreML (all
through ONNX Runtime), OpenVINO (through the OpenVINO runtime, which reads the same ONNX files), then ONNX
Runtime's CPU provider. Nothing here falls back silently: a provider that does not start, or that leaves heavy
operations to the CPU, is reported in `GraphSession.warnings`.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import AvatarifyError

log = logging.getLogger(__name__)


class OnnxRuntimeMissing(AvatarifyError):
    """The ONNX backend was asked for, but ONNX Runtime is not installed."""


ONNX_NOT_INSTALLED = (
    "The ONNX backend needs ONNX Runtime, which this installation lacks: install it with "
    "`pip install 'avatarify[onnx]'` (or [onnx-cuda], [onnx-directml]; see the README), or use --backend torch."
)


@dataclass(frozen=True)
class Provider:
    """An execution provider avatarify knows; `fp16`: it runs the decoder in float16."""

    name: str
    label: str
    ort_name: str
    # The --device this provider stands for ("gpu": a GPU torch has no name for, e.g. DirectML's).
    device_kind: str
    fp16: bool


PROVIDERS = (
    Provider("tensorrt", "TensorRT", "TensorrtExecutionProvider", "cuda", True),
    Provider("cuda", "CUDA", "CUDAExecutionProvider", "cuda", True),
    Provider("directml", "DirectML", "DmlExecutionProvider", "gpu", True),
    Provider("coreml", "CoreML", "CoreMLExecutionProvider", "mps", True),
    Provider("openvino", "OpenVINO", "OpenVINOExecutionProvider", "cpu", False),
    Provider("cpu", "ONNX Runtime CPU", "CPUExecutionProvider", "cpu", False),
)
PROVIDER_NAMES = tuple(provider.name for provider in PROVIDERS)
# Which engine runs FOMM: torch, the exported graphs on ONNX Runtime, or auto (see model.backend).
BACKENDS = ("auto", "torch", "onnx")
CPU_PROVIDER = PROVIDERS[-1]

# Operations whose placement on the CPU costs real time; shape arithmetic that GPU providers leave to the CPU on
# purpose is not worth a warning.
HEAVY_OPS = frozenset(
    {"Conv", "ConvTranspose", "GridSample", "Resize", "Einsum", "MatMul", "Gemm", "Softmax", "AveragePool",
     "BatchNormalization", "Sigmoid", "Relu", "Exp"}
)


def runtime_installed() -> bool:
    """Whether ONNX Runtime imports here (a broken or partial install counts as missing)."""
    try:
        import_onnxruntime()
    except OnnxRuntimeMissing:
        return False
    return True


def import_onnxruntime() -> Any:
    """The onnxruntime module, or `OnnxRuntimeMissing` with what to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxRuntimeMissing(ONNX_NOT_INSTALLED) from exc
    return onnxruntime


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def available_providers() -> list[Provider]:
    """The providers whose runtime is installed, in the order they are preferred (empty without ONNX Runtime)."""
    if not runtime_installed():
        return []
    installed = set(import_onnxruntime().get_available_providers())
    return [
        provider for provider in PROVIDERS
        if provider.ort_name in installed or (provider.name == "openvino" and openvino_installed())
    ]


def find_provider(name: str) -> Provider:
    """The installed provider called `name`, or a one-line error listing the installed ones."""
    if name not in PROVIDER_NAMES:
        raise AvatarifyError(f"Unknown execution provider {name!r}; use one of {', '.join(PROVIDER_NAMES)}.")
    for provider in available_providers():
        if provider.name == name:
            return provider
    present = ", ".join(p.name for p in available_providers()) or "none (ONNX Runtime is not installed)"
    raise AvatarifyError(f"The {name} execution provider is not installed here; installed: {present}. See the README.")


def device_index(device: str) -> int:
    """The GPU number in a --device value ("cuda:1" -> 1; 0 otherwise)."""
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


def ort_provider_options(provider: Provider, device_id: int, cache_dir: Path, fp16: bool) -> dict[str, Any]:
    """ONNX Runtime options for `provider`; TensorRT keeps its built engines in `cache_dir`."""
    if provider.name == "tensorrt":
        return {
            "device_id": device_id, "trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir), "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache_dir),
        }
    if provider.name in ("cuda", "directml"):
        return {"device_id": device_id}
    if provider.name == "coreml":
        # ML programs keep each tensor's declared type: float32 keypoints and motion stay float32.
        return {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"}
    return {}


def cpu_fallback(profile: Path, provider: Provider) -> list[str]:
    """Heavy operations an ONNX Runtime profile shows on the CPU although `provider` was chosen, with counts."""
    if provider is CPU_PROVIDER:
        return []
    events = json.loads(profile.read_text())
    on_cpu = Counter(
        event["args"].get("op_name", "?")
        for event in events
        if event.get("cat") == "Node"
        and event.get("args", {}).get("provider") == CPU_PROVIDER.ort_name
        and event["args"].get("op_name") in HEAVY_OPS
    )
    return [f"{count} {op}" for op, count in sorted(on_cpu.items())]


class GraphSession:
    """One graph on one provider: `run(feeds)` -> the outputs as numpy arrays, in the graph's order.

    Feeds are numpy arrays, or values made by `to_device` (kept on the GPU between frames where the provider
    has one). `warnings` says where the graph does not run as asked. Sessions are safe to share between threads.
    """

    def __init__(self, path: Path, provider: Provider, device_id: int, cache_dir: Path, fp16: bool = False) -> None:
        self.provider = provider
        self.name = path.stem
        self.warnings: list[str] = []
        self._device = "cuda" if provider.name in ("tensorrt", "cuda") else "cpu"
        self._device_id = device_id
        self._ort = import_onnxruntime()
        self._profile_dir: tempfile.TemporaryDirectory | None = None
        options = self._ort.SessionOptions()
        options.log_severity_level = 3  # ONNX Runtime's own warnings go to stderr; what matters is reported here
        # Idle threads that spin take the CPU from the camera, the window and other engines on small machines.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if provider is not CPU_PROVIDER:
            # Profiling the first run is how node placement becomes visible; stopped after that run.
            self._profile_dir = tempfile.TemporaryDirectory(prefix="avatarify-ort-")
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(self._profile_dir.name) / "run")
        if provider.name == "directml":
            options.enable_mem_pattern = False  # DirectML requires these two
            options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        chain = [(provider.ort_name, ort_provider_options(provider, device_id, cache_dir, fp16))]
        if provider.name == "tensorrt":
            chain.append(("CUDAExecutionProvider", {"device_id": device_id}))
        if provider is not CPU_PROVIDER:
            chain.append((CPU_PROVIDER.ort_name, {}))
        try:
            self.session = self._ort.InferenceSession(
                str(path), options, providers=[name for name, _ in chain], provider_options=[opts for _, opts in chain]
            )
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types from C++
            raise AvatarifyError(f"ONNX Runtime cannot load {path.name} with {provider.label}: {_first_line(exc)}") from exc
        running = self.session.get_providers()[0]
        if running != provider.ort_name:
            instead = running.replace("ExecutionProvider", "")
            self.warnings.append(f"{provider.label} did not start: the {self.name} graph runs on {instead}")
        self.output_names = [output.name for output in self.session.get_outputs()]

    def to_device(self, array: np.ndarray) -> Any:
        """`array` where this session reads it fastest: GPU memory for CUDA providers, else as it is."""
        if self._device == "cpu":
            return array
        return self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._device, self._device_id)

    def run(self, feeds: dict[str, Any]) -> list[np.ndarray]:
        if self._device == "cpu":
            arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in feeds.items()}
            outputs = self.session.run(self.output_names, arrays)
        else:
            # Inputs already on the GPU stay there; the rest is copied in, the outputs are copied out.
            binding = self.session.io_binding()
            for name, value in feeds.items():
                if isinstance(value, self._ort.OrtValue):
                    binding.bind_ortvalue_input(name, value)
                else:
                    binding.bind_cpu_input(name, np.ascontiguousarray(value, dtype=np.float32))
            for name in self.output_names:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            outputs = binding.copy_outputs_to_cpu()
        if self._profile_dir is not None:
            self._check_placement()
        return outputs

    def _check_placement(self) -> None:
        profile_dir, self._profile_dir = self._profile_dir, None
        try:
            fallen = cpu_fallback(Path(self.session.end_profiling()), self.provider)
        finally:
            profile_dir.cleanup()
        if fallen:
            note = f"{self.provider.label} cannot run {', '.join(fallen)} of the {self.name} graph: they run on the CPU"
            log.warning("%s", note)
            self.warnings.append(note)


class OpenVinoSession:
    """One graph compiled by the OpenVINO runtime (Intel CPUs and GPUs), with `GraphSession`'s interface.

    Keypoints and motion need float32: OpenVINO's default on CPUs with bf16 is bf16 everywhere, which moves the
    output far from the model's (mean error about 0.1), so float32 is asked for explicitly.
    """

    def __init__(self, path: Path, device: str = "CPU") -> None:
        import openvino

        self.provider = next(p for p in PROVIDERS if p.name == "openvino")
        self.device = device
        self.warnings: list[str] = []
        core = openvino.Core()
        try:
            self._compiled = core.compile_model(str(path), device, {"INFERENCE_PRECISION_HINT": "f32"})
        except RuntimeError as exc:
            raise AvatarifyError(f"OpenVINO cannot compile {path.name} for {device}: {_first_line(exc)}") from exc
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: calls from several threads take turns
        self.output_names = [output.get_any_name() for output in self._compiled.outputs]

    @staticmethod
    def to_device(array: np.ndarray) -> np.ndarray:
        return array

    def run(self, feeds: dict[str, Any]) -> list[np.ndarray]:
        with self._lock:
            results = self._request.infer({name: np.ascontiguousarray(value) for name, value in feeds.items()})
            # The request reuses its output buffers on the next call.
            return [np.array(results[output]) for output in self._compiled.outputs]


def openvino_device() -> str:
    """OpenVINO's GPU (an Intel integrated or discrete GPU) when it has one, else its CPU."""
    import openvino

    return "GPU" if any(device.startswith("GPU") for device in openvino.Core().available_devices) else "CPU"


def open_session(
    path: Path, provider: Provider, device_id: int, cache_dir: Path, fp16: bool = False
) -> GraphSession | OpenVinoSession:
    """A session for `path` on `provider` (OpenVINO through its own runtime unless ONNX Runtime has it built in)."""
    if provider.name == "openvino" and provider.ort_name not in import_onnxruntime().get_available_providers():
        return OpenVinoSession(path, openvino_device())
    return GraphSession(path, provider, device_id, cache_dir, fp16)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
