"""What each component's status says: the state, the one line a user reads, and the remedies offered as buttons."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from avatarify.core.errors import AvatarifyError, CheckpointError
from avatarify.core.status import OFF, ComponentStatus, Remedy, State, failed, running, starting
from avatarify.model.device import DeviceError
from avatarify.model.loader import CPU_WARNING, ModelNotInstalledError
from avatarify.model.weights import WeightsNotFoundError
from avatarify.pipeline.vcam import VcamProblem
from avatarify.session.status import (
    FIRST_RUN, camera_failed, failed_on_frames, landmark_status, model_failed, model_running, vcam_status, worker_status,
)


def test_a_status_is_off_with_nothing_to_say_until_told_otherwise() -> None:
    assert OFF == ComponentStatus(State.OFF, "", (), "", "") and not OFF.failed
    assert starting("Opening") == ComponentStatus(State.STARTING, "Opening")
    assert running("On", detail="more") == ComponentStatus(State.RUNNING, "On", (), "more", "")
    problem = failed("Broken", Remedy.USE_CPU, Remedy.CHOOSE_CAMERA, detail="why", command="fix it")
    assert problem == ComponentStatus(State.FAILED, "Broken", (Remedy.USE_CPU, Remedy.CHOOSE_CAMERA), "why", "fix it")
    assert failed("Broken") == ComponentStatus(State.FAILED, "Broken", (), "", "")  # no remedy, no detail, no command
    assert running("On") == ComponentStatus(State.RUNNING, "On", (), "", "")
    assert problem.failed and not starting("x").failed and not running("x").failed


def test_states_and_remedies_read_as_the_window_shows_them() -> None:
    assert [state.value for state in State] == ["off", "starting", "running", "failed"]
    assert [remedy.value for remedy in Remedy] == [
        "Download weights", "Locate file…", "Choose camera", "Video file…", "Set up virtual camera", "Use the CPU",
        "Place landmark file…",
    ]


def test_a_camera_failure_offers_another_camera_or_a_video_file() -> None:
    assert camera_failed("No camera 3") == failed("No camera 3", Remedy.CHOOSE_CAMERA, Remedy.VIDEO_FILE)


def test_a_missing_device_offers_the_cpu() -> None:
    exc = DeviceError("CUDA was requested but no CUDA GPU is available; use --device auto or cpu.", "cuda")
    assert model_failed(exc) == failed(
        "The model cannot run on “cuda”: this computer has no such device.", Remedy.USE_CPU, detail=str(exc)
    )


def test_missing_weights_offer_the_download_and_explain_the_first_run() -> None:
    status = model_failed(WeightsNotFoundError("No model weights found."))
    assert status == failed("No model weights found.", Remedy.DOWNLOAD_WEIGHTS, Remedy.LOCATE_WEIGHTS, detail=FIRST_RUN)
    assert FIRST_RUN.startswith("avatarify animates photos with the First Order Motion Model. Its weights "
                                "(vox-adv-cpk.pth.tar, about 228 MB, licence CC BY-NC 4.0")


@pytest.mark.parametrize(
    "exc, expected",
    [
        (CheckpointError("The checkpoint is damaged."),
         failed("The checkpoint is damaged.", Remedy.DOWNLOAD_WEIGHTS, Remedy.LOCATE_WEIGHTS)),
        (ModelNotInstalledError("no torch"),
         failed("This installation cannot run the model itself: use a worker, or install the model.", detail="no torch")),
        (AvatarifyError("Out of memory on the GPU."), failed("Out of memory on the GPU.")),
        (RuntimeError("  shape mismatch\nsecond line\n"), failed("The model could not be loaded: RuntimeError: shape mismatch")),
        (RuntimeError(""), failed("The model could not be loaded: RuntimeError")),
        (ValueError("unsupported pixel format BGRX"),
         failed("The model could not be loaded: ValueError: unsupported pixel format BGRX")),
    ],
    ids=["damaged-checkpoint", "no-torch", "own-error", "other-error", "other-error-without-words", "words-kept-whole"],
)
def test_each_load_failure_reads_as_one_line(exc: BaseException, expected: ComponentStatus) -> None:
    assert model_failed(exc) == expected


def test_a_model_failing_on_frames_keeps_what_the_load_said() -> None:
    assert failed_on_frames(running("Model on cuda:0"), "Frames fail") == failed("Frames fail", detail="Model on cuda:0")


@pytest.mark.parametrize(
    "device, note, fallback, expected",
    [
        ("cuda:0 (RTX 4090)", "", "", running("Model on cuda:0 (RTX 4090)")),
        ("mps", "chosen automatically", "", running("Model on mps (chosen automatically)")),
        ("cpu", "", "", running("Model on cpu: slow, a few frames per second", detail=CPU_WARNING)),
        ("cpu:0 (8 threads)", "asked for", "",
         running("Model on cpu:0 (8 threads) (asked for): slow, a few frames per second", detail=CPU_WARNING)),
        ("cuda", "", "2 of 90 nodes on the CPU",
         running("Model on cuda; 2 of 90 nodes on the CPU", detail="2 of 90 nodes on the CPU")),
    ],
)
def test_a_running_model_says_where_and_never_hides_slowness(device, note, fallback, expected) -> None:
    assert model_running(device, note, fallback) == expected


def test_a_running_model_without_a_note_or_fallback_says_only_where() -> None:
    assert model_running("cuda:0") == running("Model on cuda:0")


@pytest.mark.parametrize(
    "state, problem, expected",
    [
        ("connected", None, running("Worker gpu:9000")),
        ("connecting", None, starting("Connecting to the worker at gpu:9000…")),
        ("refused: wrong key", "The worker refused the key.", failed("The worker refused the key.")),
        ("refused: wrong key", None, failed("refused: wrong key")),
        ("closed", None, OFF),
        ("lost", None, failed("The worker at gpu:9000 does not answer; the avatar is held until it is back.")),
    ],
)
def test_the_worker_connection(state: str, problem: str | None, expected: ComponentStatus) -> None:
    assert worker_status(state, "gpu:9000", problem) == expected


def test_the_virtual_camera() -> None:
    assert vcam_status(None) == OFF
    assert vcam_status(SimpleNamespace(problem=None, state="not started")) == starting(
        "Virtual camera: waiting for the first frame"
    )
    assert vcam_status(SimpleNamespace(problem=None, state="/dev/video9 640x480")) == running(
        "Virtual camera: /dev/video9 640x480"
    )
    missing = VcamProblem("No virtual camera", "Load the module.", "sudo modprobe v4l2loopback")
    assert vcam_status(SimpleNamespace(problem=missing, state="unavailable: x")) == failed(
        "No virtual camera", Remedy.SETUP_VCAM, detail="Load the module.", command="sudo modprobe v4l2loopback"
    )


@pytest.mark.parametrize(
    "state, wanted, expected",
    [
        ("ready", False, OFF),
        (None, True, OFF),
        ("ready", True, running("Face landmarks ready")),
        ("unavailable: no file", True, failed("Face landmarks unavailable: no file", Remedy.LANDMARK_FILE)),
        ("loading", True, starting("Loading the face landmark network…")),
    ],
)
def test_the_landmark_network(state: str | None, wanted: bool, expected: ComponentStatus) -> None:
    assert landmark_status(state, wanted) == expected
