"""Offline animation: an avatar photo driven by a video, written to an mp4 or a folder of PNG frames."""
from __future__ import annotations

import logging
from pathlib import Path
from statistics import median

import cv2
import numpy as np
from tqdm import tqdm

from ..core.faces import SquareCrop, center_crop, crop_around_face, cut_square, face_crop, largest_face
from ..core.frame import FRAME_SIZE, AvatarPredictor, prepare_frame
from ..core.png_frames import PngFramesWriter
from ..core.video import Mp4Writer, VideoInfo, read_frames

log = logging.getLogger(__name__)

# Faces are looked for in this many frames spread over the video; one fixed crop for the whole
# clip keeps the background still, which per-frame crops would make shake.
CROP_SAMPLES = 10


def prepare_avatar(image: np.ndarray, crop: bool = True) -> np.ndarray:
    """The avatar cropped square around its face (centre square, with a warning, when none is found); without
    `crop`, its centre square as it is."""
    if not crop:
        return prepare_frame(image)
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


def side_by_side_frame(driving: np.ndarray, result: np.ndarray) -> np.ndarray:
    """driving | result, the driving crop scaled to the result's size (512 for LivePortrait)."""
    size = result.shape[0]
    if driving.shape[0] != size:
        driving = cv2.resize(driving, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.concatenate([driving, result], axis=1)


def animate_video(
    predictor: AvatarPredictor,
    avatar: np.ndarray,
    info: VideoInfo,
    output: Path,
    crop: bool = True,
    side_by_side: bool = False,
    progress: bool = True,
    as_frames: bool = False,
) -> Path:
    """Animate `avatar` with every frame of the video in `info`, into an mp4 that keeps the video's fps, frame
    count and audio, or (`as_frames`) a folder of PNG frames. Without `crop`, the avatar's and the video's centre
    squares are used as they are."""
    predictor.set_avatar(prepare_avatar(avatar, crop))
    square = driving_crop(info) if crop else center_crop((info.height, info.width))
    writer = (
        PngFramesWriter(output) if as_frames
        else Mp4Writer(output, info.fps, audio_from=info.path if info.has_audio else None)
    )
    with writer:
        frames = tqdm(read_frames(info.path), total=info.frame_count, unit="frame", disable=not progress)
        for frame in frames:
            driving = cut_square(frame, square, FRAME_SIZE)
            result = predictor.predict(driving)
            writer.write(side_by_side_frame(driving, result) if side_by_side else result)
        return writer.commit()
