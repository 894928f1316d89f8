"""Jitter of the smart crop against raw face detections on the real driving videos.

For every video in ../shared/media/driving (or the files given), the crop is computed for each
frame two ways: the raw crop around that frame's Haar detection, and the pipeline's smart crop
(detection every few frames + One-Euro filter), with frame times at the video's fps.
Printed per video, in pixels of the video:
  step   - median |frame-to-frame change| of crop centre x, y and side (jitter between frames)
  std    - standard deviation of centre x, y and side over the video (includes real head motion)
  follow - median distance of the smart crop's centre from the raw detection's (it stays on the face)
The "still" rows hold one frame of each video still and add camera-like noise (sigma 2 levels),
so every change of the crop there is jitter.
Usage: python bench/crop_jitter.py [VIDEO ...]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from avatarify.core.faces import crop_around_face, largest_face
from avatarify.pipeline.crop import SmartCrop
from avatarify.core.video import probe_video, read_frames

DRIVING_DIR = Path(__file__).resolve().parents[2] / "shared" / "media" / "driving"
STILL_FRAMES = 60
NOISE_SIGMA = 2.0


def crops(frames: list[np.ndarray], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(raw, smart) crops as N x 3 arrays of (cx, cy, side); raw rows without a face repeat the last one."""
    smart = SmartCrop()
    raw_rows, smart_rows = [], []
    last = None
    for index, frame in enumerate(frames):
        face = largest_face(frame)
        if face is not None:
            last = crop_around_face(face)
        if last is not None:
            raw_rows.append((last.cx, last.cy, last.side))
        crop = smart.update(frame, index / fps)
        smart_rows.append((crop.cx, crop.cy, crop.side))
    return np.array(raw_rows), np.array(smart_rows)


def figures(rows: np.ndarray) -> tuple[list[float], list[float]]:
    steps = np.abs(np.diff(rows, axis=0))
    return [float(np.median(steps[:, i])) for i in range(3)], [float(np.std(rows[:, i])) for i in range(3)]


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:5.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    videos = parser.parse_args().videos or sorted(DRIVING_DIR.glob("*.mp4"))
    rng = np.random.default_rng(0)
    print(f"{'video':14} {'kind':6} {'raw step cx cy side':>22} {'smart step cx cy side':>24} "
          f"{'raw std cx cy side':>22} {'smart std cx cy side':>24} {'follow':>7}")
    ratios = {"moving": [], "still": []}
    for path in videos:
        frames, fps = list(read_frames(path)), probe_video(path).fps
        still = [
            np.clip(frames[0] + rng.normal(0, NOISE_SIGMA, frames[0].shape), 0, 255).astype(np.uint8)
            for _ in range(STILL_FRAMES)
        ]
        for kind, clip in (("moving", frames), ("still", still)):
            raw, smart = crops(clip, fps)
            if len(raw) < 2:
                print(f"{path.name:14} {kind:6} no face found")
                continue
            smart = smart[-len(raw):]
            raw_step, raw_std = figures(raw)
            smart_step, smart_std = figures(smart)
            follow = float(np.median(np.hypot(*(smart[:, :2] - raw[:, :2]).T)))
            print(f"{path.name:14} {kind:6} {fmt(raw_step):>22} {fmt(smart_step):>24} "
                  f"{fmt(raw_std):>22} {fmt(smart_std):>24} {follow:7.2f}")
            if kind == "still":
                ratios[kind].append(sum(smart_std) / max(sum(raw_std), 1e-6))
            else:
                ratios[kind].append(sum(smart_step) / max(sum(raw_step), 1e-6))
    if ratios["moving"]:
        print(f"median smart/raw frame-to-frame step (moving videos): {statistics.median(ratios['moving']):.2f}")
    if ratios["still"]:
        print(f"median smart/raw std (still face + noise): {statistics.median(ratios['still']):.2f}")


if __name__ == "__main__":
    main()
