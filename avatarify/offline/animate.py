"""Offline animation: an avatar photo driven by a video, written to an mp4 (the FOMM demo, done right)."""
from __future__ import annotations

import logging
from pathlib import Path
from statistics import median

import numpy as np
from tqdm import tqdm

from ..core.faces import SquareCrop, center_crop, crop_around_face, cut_square, face_crop, largest_face
from ..core.frame import FRAME_SIZE, AvatarPredictor
from ..core.video import Mp4Writer, VideoInfo, read_frames

log = logging.getLogger(__name__)

# Faces are looked for in this many frames spread over the video; one fixed crop for the whole
# clip keeps the background still, which per-frame crops would make shake.
CROP_SAMPLES = 10


def prepare_avatar(image: np.ndarray) -> np.ndarray:
    """The avatar cropped square around its face (centre square, with a warning, when none is found)."""
    cropped, found = face_crop(image, FRAME_SIZE)
    if not found:
        log.warning("No face found in the avatar; using its centre square. A frontal portrait works best.")
    return cropped


def driving_crop(info: VideoInfo) -> SquareCrop:
    """One square crop around the face, from detections in frames sampled across the video."""
    step = max(1, info.frame_count // CROP_SAMPLES)
    crops = []
    for frame in read_frames(info.path, step):
        face = largest_face(frame)
        if face is not None:
            crops.append(crop_around_face(face))
    if not crops:
        log.warning("No face found in the driving video; using its centre square.")
        return center_crop((info.height, info.width))
    return SquareCrop(
        cx=median(c.cx for c in crops), cy=median(c.cy for c in crops), side=median(c.side for c in crops)
    )


def animate_video(
    predictor: AvatarPredictor,
    avatar: np.ndarray,
    info: VideoInfo,
    output: Path,
    crop_driving: bool = True,
    side_by_side: bool = False,
    progress: bool = True,
) -> Path:
    """Animate `avatar` with every frame of the video in `info`; the mp4 keeps its fps, frame count and audio."""
    predictor.set_avatar(prepare_avatar(avatar))
    crop = driving_crop(info) if crop_driving else center_crop((info.height, info.width))
    with Mp4Writer(output, info.fps, audio_from=info.path if info.has_audio else None) as writer:
        frames = tqdm(read_frames(info.path), total=info.frame_count, unit="frame", disable=not progress)
        for frame in frames:
            driving = cut_square(frame, crop, FRAME_SIZE)
            result = predictor.predict(driving)
            writer.write(np.concatenate([driving, result], axis=1) if side_by_side else result)
        return writer.commit()
