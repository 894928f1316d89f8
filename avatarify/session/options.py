"""What the command line chose for one session; everything it leaves open comes from the settings."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model.loader import ModelOptions
from ..remote.options import RemoteOptions


@dataclass(frozen=True)
class SessionOptions:
    """Choices that apply to this session only and win over the saved settings.

    `camera` and `avatar` name what to start with (a later choice in the window replaces them); `model` fields
    left at None come from the settings (device, remembered checkpoint); with `remote` the model runs on a
    worker. `landmarks` False never loads the landmark network (a headless run that does not draw them).
    """

    camera: str | None = None
    avatar: str | None = None
    engine: str | None = None
    checkpoint: Path | None = None
    config: Path | None = None
    device: str | None = None
    precision: str = "auto"
    backend: str = "auto"
    provider: str | None = None
    remote: RemoteOptions | None = None
    landmarks: bool = True
    camera_width: int | None = None
    camera_height: int | None = None
    camera_fps: float | None = None

    def model(self, engine: str, device: str, checkpoint: Path | None) -> ModelOptions:
        """The local model to load: this session's choices first, then the given settings' values."""
        return ModelOptions(
            engine=self.engine or engine,
            checkpoint=self.checkpoint or checkpoint,
            config=self.config,
            device=self.device or device or "auto",
            precision=self.precision,
            backend=self.backend,
            provider=self.provider,
        )
