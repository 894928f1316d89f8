"""Turning what went wrong into each component's status: one line in the window's words, and the remedies."""
from __future__ import annotations

from ..core.errors import AvatarifyError, CheckpointError
from ..core.status import OFF, ComponentStatus, Remedy, failed, running, starting
from ..model.loader import CPU_WARNING, ModelNotInstalledError
from ..model.weights import CHECKPOINT_NAME, CHECKPOINT_SIZE, WeightsNotFoundError
from ..pipeline.vcam import VirtualCameraOutput

CAMERA_REMEDIES = (Remedy.CHOOSE_CAMERA, Remedy.VIDEO_FILE)
WEIGHTS_REMEDIES = (Remedy.DOWNLOAD_WEIGHTS, Remedy.LOCATE_WEIGHTS)
FIRST_RUN = (
    f"avatarify animates photos with the First Order Motion Model. Its weights ({CHECKPOINT_NAME}, about "
    f"{CHECKPOINT_SIZE / 1e6:.0f} MB, licence CC BY-NC 4.0: non-commercial use) are not part of the app: download "
    "them once (an interrupted download resumes), or locate a copy you have. Meanwhile the preview works and the "
    "output holds your avatar."
)


def camera_failed(message: str) -> ComponentStatus:
    return failed(message, *CAMERA_REMEDIES)


def model_failed(exc: BaseException) -> ComponentStatus:
    """Why the model could not be loaded, with what the user can do about it."""
    requested = getattr(exc, "requested", None)
    if requested is not None:  # a device that is not here: not a weights problem
        return failed(
            f"The model cannot run on “{requested}”: this computer has no such device.", Remedy.USE_CPU, detail=str(exc)
        )
    if isinstance(exc, ModelNotInstalledError):
        return failed("This installation cannot run the model itself: use a worker, or install the model.", detail=str(exc))
    if isinstance(exc, WeightsNotFoundError):
        return failed(str(exc), *WEIGHTS_REMEDIES, detail=FIRST_RUN)
    if isinstance(exc, CheckpointError):
        return failed(str(exc), *WEIGHTS_REMEDIES)
    if isinstance(exc, AvatarifyError):
        return failed(str(exc))
    lines = str(exc).strip().splitlines()
    return failed(f"The model could not be loaded: {type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "))


def failed_on_frames(loaded: ComponentStatus, problem: str) -> ComponentStatus:
    """A loaded model that fails on frames: the failure, keeping what the load said in the details."""
    return failed(problem, detail=loaded.message)


def model_running(device_name: str, note: str = "", fallback: str = "") -> ComponentStatus:
    """A running model: where it runs, a `note` about how it was chosen, and `fallback`, what does not run where
    it was asked to (parts of an ONNX graph left to the CPU): never silent."""
    text = f"Model on {device_name}" + (f" ({note})" if note else "")
    if fallback:
        return running(f"{text}; {fallback}", detail=fallback)
    if device_name.split()[0].split(":")[0] == "cpu":
        return running(f"{text}: slow, a few frames per second", detail=CPU_WARNING)
    return running(text)


def worker_status(state: str, address: str, problem: str | None) -> ComponentStatus:
    """The connection to a worker, from the remote predictor's state."""
    if state == "connected":
        return running(f"Worker {address}")
    if state == "connecting":
        return starting(f"Connecting to the worker at {address}…")
    if state.startswith("refused"):
        return failed(problem or state)
    if state == "closed":
        return OFF
    return failed(f"The worker at {address} does not answer; the avatar is held until it is back.")


def vcam_status(output: VirtualCameraOutput | None) -> ComponentStatus:
    """The virtual camera: off, waiting for its first frame, sending, or missing (with the setup step)."""
    if output is None:
        return OFF
    problem = output.problem
    if problem is not None:
        return failed(problem.headline, Remedy.SETUP_VCAM, detail=problem.detail, command=problem.setup)
    state = output.state
    if state == "not started":
        return starting("Virtual camera: waiting for the first frame")
    return running(f"Virtual camera: {state}")


def landmark_status(state: str | None, wanted: bool) -> ComponentStatus:
    """The landmark network: off until the overlay or find-best-frame wants it."""
    if not wanted or state is None:
        return OFF
    if state == "ready":
        return running("Face landmarks ready")
    if state.startswith("unavailable"):
        return failed(f"Face landmarks {state}", Remedy.LANDMARK_FILE)
    return starting("Loading the face landmark network…")
