"""68-point face landmarks (face-alignment's FAN network) for the landmark overlay and *find best frame*.

face-alignment downloads its network weights on first use. Loading therefore happens lazily,
on a background thread, and may be refused: until the weights are loaded, and for good when they
cannot be had (offline, downloading disabled), `landmarks` returns None and `state` says why.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..core.faces import Box, largest_face

log = logging.getLogger(__name__)

NETWORK = "2DFAN-4"
OFFLINE_ENV = "AVATARIFY_OFFLINE"


def downloads_allowed() -> bool:
    """False when the user switched downloads off with AVATARIFY_OFFLINE=1."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("", "0", "false", "no")


class LandmarkDetector:
    """face-alignment's 2-D FAN on faces found by the offline detector, loaded on first use.

    `state` is "not loaded", "loading", "ready" or "unavailable: <reason>".
    With `allow_download` False (or AVATARIFY_OFFLINE=1) no network access is ever attempted:
    the weights must already be in torch's hub cache.
    """

    def __init__(self, device: str = "cpu", allow_download: bool | None = None) -> None:
        self.device = device
        self.allow_download = downloads_allowed() if allow_download is None else allow_download
        self.state = "not loaded"
        self._model = None
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.state == "ready"

    @property
    def unavailable(self) -> bool:
        return self.state.startswith("unavailable")

    @staticmethod
    def weights_path() -> Path:
        """Where face-alignment keeps (or would download) the landmark network's weights."""
        import torch
        from face_alignment.api import models_urls

        return Path(torch.hub.get_dir()) / "checkpoints" / Path(models_urls[NETWORK]).name

    def load(self) -> bool:
        """Load the network now (blocking); False, with the reason in `state`, when it cannot be."""
        with self._lock:
            if self._model is not None or self.unavailable:
                return self._model is not None
            self.state = "loading"
        try:
            import face_alignment
        except ImportError as exc:
            return self._fail(f"face-alignment is not installed ({exc}); run `pip install face-alignment`")
        path = self.weights_path()
        if not path.is_file() and not self.allow_download:
            return self._fail(f"its weights {path.name} are not in {path.parent} and downloading is switched off")
        if not path.is_file():
            log.info("Downloading the face landmark network (about 95 MB) to %s", path.parent)
        try:
            # Faces come from our own detector ("folder" = boxes given), so face-alignment's
            # detector, and its separate weights download, is never used.
            model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D,
                device=self.device,
                flip_input=False,
                face_detector="folder",
                compile=False,
            )
        except Exception as exc:  # network, disk and unpickling errors all mean "not available"
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            return self._fail(
                f"the landmark network could not be loaded ({reason}); put {path.name} in {path.parent}"
            )
        with self._lock:
            self._model = model
            self.state = "ready"
        log.info("Face landmarks ready")
        return True

    @classmethod
    def install_weights(cls, source: Path) -> Path:
        """Copy a landmark weights file the user has into the place face-alignment loads it from (atomically)."""
        from ..core.files import write_atomically

        target = cls.weights_path()
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, source.read_bytes())
        return target

    def _fail(self, reason: str) -> bool:
        with self._lock:
            self.state = f"unavailable: {reason}"
        log.warning("Face landmarks %s", self.state)
        return False

    def start_loading(self) -> None:
        """Load in the background (once); callers keep polling `state` or `landmarks`."""
        with self._lock:
            if self._loader is not None or self._model is not None or self.unavailable:
                return
            self._loader = threading.Thread(target=self.load, name="landmark loader", daemon=True)
            self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait for a background load to finish; True when the network is ready."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return self.available

    def landmarks(self, image: np.ndarray, face: Box | None = None) -> np.ndarray | None:
        """68 x 2 landmark pixel positions of the largest (or given) face in an RGB image.

        None while the network is not loaded (loading starts in the background) or when no face is found.
        """
        if self._model is None:
            self.start_loading()
            return None
        face = face or largest_face(image)
        if face is None:
            return None
        box = [[float(face.x), float(face.y), float(face.x + face.w), float(face.y + face.h)]]
        found = self._model.get_landmarks_from_image(image, detected_faces=box)
        if not found:
            return None
        return np.asarray(found[0], dtype=np.float32)[:, :2]
