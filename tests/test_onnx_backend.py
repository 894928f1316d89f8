"""The ONNX backend on ONNX Runtime's CPU provider: same pictures and same motion semantics as float32 torch,
a cache that rebuilds what is stale or damaged and never keeps a partial file, and one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarify.core.frame import MotionOptions, prepare_frame
from avatarify.core.images import read_image
from avatarify.core.video import read_frames

ort = pytest.importorskip("onnxruntime", reason="the onnx extra (ONNX Runtime) is not installed")

from avatarify.model.backend import ModelSource, load_engine  # noqa: E402
from avatarify.model.fomm import load_model  # noqa: E402
from avatarify.model.fomm.motion import inverse_2x2  # noqa: E402
from avatarify.model.onnx.cache import GraphCache  # noqa: E402
from avatarify.model.onnx.check import ExportCheckFailed, check_graphs  # noqa: E402
from avatarify.model.onnx.predictor import OnnxEngine  # noqa: E402
from avatarify.model.onnx.runtime import CPU_PROVIDER, PROVIDERS, available_providers, cpu_fallback  # noqa: E402
from avatarify.model.predictor import Predictor  # noqa: E402

# The float32 graphs must reproduce float32 torch to this mean absolute error on [0, 1] images.
MAE = 1e-3
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source(small_config, small_checkpoint) -> ModelSource:
    return ModelSource(config=small_config, checkpoint=small_checkpoint)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def graphs(source, cache_root):
    """The small model's float32 graphs, exported (and checked) once for this module."""
    return source.graphs("fp32", root=cache_root)


@pytest.fixture(scope="module")
def engine(graphs) -> OnnxEngine:
    return OnnxEngine(graphs, CPU_PROVIDER)


@pytest.fixture
def torch_fp32(small_config, small_checkpoint) -> Predictor:
    """The reference: the model exactly as published, in float32."""
    return Predictor(load_model(small_config, small_checkpoint), optimize=False)


@pytest.fixture(scope="module")
def golden_frames(golden_dir):
    data = np.load(golden_dir / "inputs.npz")
    return data["source_uint8_hwc"], list(data["driving_uint8_nhwc"])


@pytest.fixture(scope="module")
def video_frames(driving_video):
    frames = []
    for frame in read_frames(driving_video):
        frames.append(prepare_frame(frame))
        if len(frames) == 6:
            break
    return frames


def mae(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def test_closed_form_inverse_matches_torch_inverse():
    matrices = torch.randn(64, 10, 2, 2, dtype=torch.float64) + 2 * torch.eye(2, dtype=torch.float64)
    assert torch.allclose(inverse_2x2(matrices), torch.inverse(matrices), atol=1e-10)


def test_export_check_results_are_recorded(graphs):
    assert set(graphs.files) == {"keypoints", "encoder", "animate"}
    assert graphs.checks["animate"]["mae"] < MAE and graphs.checks["keypoints"]["max"] < 1e-3
    sidecar = json.loads(graphs.files["animate"].with_suffix(".json").read_text())
    assert sidecar["opset"] >= 17 and sidecar["check"] == graphs.checks["animate"]


def test_golden_set_matches_torch_fp32(engine, torch_fp32, golden_frames):
    source, driving = golden_frames
    onnx = engine.predictor()
    for predictor in (onnx, torch_fp32):
        predictor.set_avatar(source)
        predictor.set_neutral(driving[0])
    errors = [mae(onnx.animate_frame(frame), torch_fp32.animate_frame(frame)) for frame in driving]
    assert max(errors) < MAE, errors
    kp, kp_ref = onnx.detect_keypoints(driving[1]), torch_fp32.detect_keypoints(driving[1])
    assert torch.allclose(kp["jacobian"], kp_ref["jacobian"], atol=1e-4)


def test_real_frames_match_torch_fp32(engine, torch_fp32, video_frames, avatar_path):
    onnx = engine.predictor()
    for predictor in (onnx, torch_fp32):
        predictor.set_avatar(read_image(avatar_path))
    errors = [mae(onnx.animate_frame(frame), torch_fp32.animate_frame(frame)) for frame in video_frames]
    assert max(errors) < MAE, errors
    # The frames really move the avatar: the comparison is not between two still pictures.
    assert mae(torch_fp32.animate_frame(video_frames[-1]), torch_fp32.animate_frame(video_frames[0])) > 1e-3


def test_motion_modes_calibration_and_switching_behave_the_same(engine, torch_fp32, video_frames, avatars_dir):
    """The same sequence of user actions through both backends gives the same pictures at every step."""
    first, second = (read_image(avatars_dir / name) for name in ("mona.jpg", "obama.jpg"))
    f = video_frames
    steps = [
        ("avatar", first), ("frame", f[0]), ("frame", f[4]),
        ("motion", MotionOptions(relative=False)), ("frame", f[4]),
        ("motion", MotionOptions(adapt_movement_scale=False)), ("frame", f[5]),
        ("motion", MotionOptions(motion_strength=0.5)), ("frame", f[5]),
        ("motion", MotionOptions()), ("calibrate", None), ("frame", f[3]), ("frame", f[5]),
        ("neutral", f[1]), ("frame", f[5]),
        ("avatar", second), ("frame", f[2]), ("avatar", first), ("frame", f[2]),
    ]
    onnx = engine.predictor()
    outputs = {"onnx": [], "torch": []}
    for name, predictor in (("onnx", onnx), ("torch", torch_fp32)):
        for action, value in steps:
            if action == "avatar":
                predictor.set_avatar(value)
            elif action == "motion":
                predictor.motion = value
            elif action == "calibrate":
                predictor.calibrate()
            elif action == "neutral":
                predictor.set_neutral(value)
            else:
                outputs[name].append(predictor.animate_frame(value))
    for step, (ours, theirs) in enumerate(zip(outputs["onnx"], outputs["torch"])):
        assert mae(ours, theirs) < MAE, step
    torch_out = outputs["torch"]
    # Each action changed the picture (so agreeing at every step means the semantics agree).
    assert mae(torch_out[1], torch_out[2]) > 1e-3  # absolute vs relative motion
    assert mae(torch_out[6], torch_out[7]) > 1e-3  # another neutral pose
    assert mae(torch_out[8], torch_out[9]) > 1e-3  # another avatar
    assert mae(onnx.animate_frame(f[0]), outputs["onnx"][0]) > 1e-3  # the neutral pose moved with set_neutral
    assert onnx.cached_avatars == 2 and np.array_equal(onnx.avatar, prepare_frame(first))


def test_predictions_are_rgb_uint8_and_no_provider_warning_on_cpu(engine, video_frames):
    predictor = engine.predictor()
    predictor.set_avatar(np.zeros((300, 500), np.uint8))
    out = predictor.predict(video_frames[1])
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert predictor.warnings == [] and predictor.status_note == ""
    assert predictor.device_name == "cpu (ONNX Runtime CPU)"


def test_cpu_fallback_is_read_from_the_profile(graphs, tmp_path):
    """A profile whose heavy nodes ran on the CPU names them when another provider was asked for."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = ort.InferenceSession(str(graphs.files["keypoints"]), options, providers=["CPUExecutionProvider"])
    session.run(None, {"image": np.zeros((1, 3, 256, 256), np.float32)})
    profile = Path(session.end_profiling())
    cuda = next(provider for provider in PROVIDERS if provider.name == "cuda")
    fallen = cpu_fallback(profile, cuda)
    assert any(entry.endswith(" Conv") for entry in fallen) and all(" Shape" not in entry for entry in fallen)
    assert cpu_fallback(profile, CPU_PROVIDER) == []


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def test_damaged_and_stale_graphs_are_exported_again(graphs, source, tmp_path):
    folder = _copy(graphs.folder, tmp_path)
    cache = GraphCache(folder, source.key)
    untouched = (folder / "animate.onnx").stat().st_mtime_ns
    damaged = folder / "keypoints.onnx"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # an interrupted copy
    sidecar = folder / "encoder.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "format": meta["format"] - 1}))  # made by an older avatarify
    assert cache.cached("keypoints") is None and cache.cached("encoder") is None
    rebuilt = cache.ensure(["keypoints", "encoder", "animate"], lambda: source.load(), check_graphs)
    assert cache.cached("keypoints") is not None and cache.cached("encoder") is not None
    assert (folder / "animate.onnx").stat().st_mtime_ns == untouched, "a current graph was exported again"
    assert not list(folder.glob(".export-*"))
    OnnxEngine(rebuilt, CPU_PROVIDER)  # the rebuilt files load and run


def test_a_failed_export_leaves_the_cache_as_it_was(graphs, source, tmp_path):
    folder = _copy(graphs.folder, tmp_path)
    (folder / "encoder.onnx").write_bytes(b"not a graph")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def failing_check(model, files):
        assert all(path.is_file() for path in files.values())
        raise ExportCheckFailed("the graphs differ")

    with pytest.raises(ExportCheckFailed):
        GraphCache(folder, source.key).ensure(["keypoints", "encoder", "animate"], source.load, failing_check)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


@pytest.mark.slow
def test_auto_measures_once_and_remembers(source, cache_root, graphs, monkeypatch, tmp_path):
    from avatarify.model.backend import auto_choice

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    # The measurement itself, on this machine's providers (by default only GPU providers are measured).
    choice, engine = auto_choice(source, "cpu", "auto", cache_root, providers=available_providers())
    choices = json.loads((tmp_path / "avatarify" / "backend-choice.json").read_text())["choices"]
    (entry,) = choices.values()
    timings = [t for t in entry["timings"] if t["error"] is None and t["mae"] <= 1e-2]
    fastest = min(timings, key=lambda t: t["median_ms"])
    assert (entry["backend"], entry["provider"]) == (fastest["backend"], fastest["provider"])
    assert {t["label"] for t in entry["timings"]} >= {"torch (cpu)", "onnx cpu"}
    assert choice.reason == entry["reason"] and "fastest within" in choice.reason
    again, built = auto_choice(source, "cpu", "auto", cache_root, providers=available_providers())
    assert again.reason == choice.reason and built is None  # remembered: nothing measured or built again
    assert json.loads((tmp_path / "avatarify" / "backend-choice.json").read_text())["choices"] == choices


def test_auto_on_a_cpu_only_machine_runs_torch_at_once(source, cache_root, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if any(provider.device_kind != "cpu" for provider in available_providers()):
        pytest.skip("a GPU provider is installed here")
    engine = load_engine(source, "auto", cache_root=cache_root)
    assert engine.backend == "torch" and engine.predictor().backend_reason == engine.reason
    assert "without a GPU provider" in engine.reason
    assert not (tmp_path / "avatarify" / "backend-choice.json").exists()  # nothing measured


def test_backend_and_provider_errors_are_one_line(source, cache_root):
    from avatarify.core.errors import AvatarifyError

    with pytest.raises(AvatarifyError, match="does not go with --backend torch"):
        load_engine(source, "torch", provider="cpu")
    missing = next(p.name for p in PROVIDERS if p not in available_providers())
    with pytest.raises(AvatarifyError, match=f"The {missing} execution provider is not installed here; installed: "):
        load_engine(source, "onnx", provider=missing, cache_root=cache_root)
    with pytest.raises(AvatarifyError, match="bf16 is for the torch backend"):
        load_engine(source, "onnx", provider="cpu", precision="bf16", cache_root=cache_root)


def test_forced_provider_runs_onnx(source, cache_root, graphs):
    engine = load_engine(source, "auto", provider="cpu", cache_root=cache_root)
    assert engine.backend == "onnx" and "chosen with --backend/--provider" in engine.reason


MISSING_RUNTIME = """
import sys
sys.modules["onnxruntime"] = None  # what an installation without the onnx extra looks like to Python
from avatarify.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_missing_runtime_gives_one_line(small_config, small_checkpoint, tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    args = ["--checkpoint", str(small_checkpoint), "--config", str(small_config)]
    result = subprocess.run([sys.executable, "-c", MISSING_RUNTIME, "export-onnx", *args],
                            capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith(("INFO", "WARNING"))]
    assert errors == [
        "avatarify: error: The ONNX backend needs ONNX Runtime, which this installation lacks: install it with "
        "`pip install 'avatarify[onnx]'` (or [onnx-cuda], [onnx-directml]; see the README), or use --backend torch."
    ]
    assert not (tmp_path / "avatarify" / "weights" / "onnx").exists()


@pytest.mark.slow
def test_missing_runtime_makes_auto_use_torch_and_say_why(small_config, small_checkpoint, tmp_path):
    code = MISSING_RUNTIME.replace(
        "from avatarify.cli.main import main\nsys.exit(main(sys.argv[1:]))",
        "from avatarify.model.loader import ModelOptions, create_predictor\n"
        f"p = create_predictor(ModelOptions(checkpoint={str(small_checkpoint)!r}, config={str(small_config)!r}))\n"
        "print(type(p).__name__, '|', p.backend_reason)",
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "XDG_DATA_HOME": str(tmp_path)}, check=True)
    assert result.stdout.strip() == "Predictor | torch: ONNX Runtime is not installed"


def test_export_onnx_prints_files_and_checks(small_config, small_checkpoint, cache_root, graphs, capsys):
    from avatarify.cli.main import main

    code = main(["export-onnx", "--checkpoint", str(small_checkpoint), "--config", str(small_config),
                 "--precision", "fp32", "--dest", str(cache_root)])
    out = capsys.readouterr().out
    assert code == 0
    assert str(graphs.folder) in out
    for name in ("keypoints.onnx", "encoder.onnx", "animate.onnx"):
        assert name in out
    assert "check vs torch fp32: mean error" in out


def test_doctor_report_without_timing(small_config, small_checkpoint):
    from avatarify.session.doctor import build_report
    from avatarify.model.loader import ModelOptions

    report = build_report(ModelOptions(checkpoint=small_checkpoint, config=small_config), frames=0)
    for heading in ("System:", "torch:", "ONNX:", "Backend:", "Virtual camera:", "Cameras:"):
        assert f"\n{heading}" in f"\n{report}"
    assert f"ONNX Runtime {ort.__version__}" in report and "providers avatarify uses, in order:" in report
    assert f"weights: checkpoint {small_checkpoint}" in report
    assert "error:" not in report


def test_doctor_module_imports_neither_torch_nor_qt():
    code = "import sys, avatarify.session.doctor; print(sorted(m for m in ('torch', 'onnxruntime', 'PyQt5') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "[]"


def _provider_installed(name: str) -> bool:
    return any(provider.name == name for provider in available_providers())


@pytest.mark.skipif(not _provider_installed("cuda"), reason="needs ONNX Runtime's CUDA provider and an NVIDIA GPU")
def test_cuda_provider_fp16_stays_close_to_torch_fp32(source, cache_root, torch_fp32, golden_frames):
    engine = load_engine(source, "onnx", provider="cuda", cache_root=cache_root)
    assert engine.precision == "fp16" and not engine.warnings
    onnx = engine.predictor()
    frames_source, driving = golden_frames
    for predictor in (onnx, torch_fp32):
        predictor.set_avatar(frames_source)
        predictor.set_neutral(driving[0])
    assert max(mae(onnx.animate_frame(frame), torch_fp32.animate_frame(frame)) for frame in driving) < 1e-2
