"""The virtual camera output, driven through the real pyvirtualcam.Camera API with a registered test backend."""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import pyvirtualcam

from avatarify.pipeline.vcam import (
    VirtualCameraOutput,
    backends_here,
    even_size,
    fit_frame,
    no_virtual_camera,
    no_virtual_camera_message,
)
from fakes import BACKEND, backends_for

def test_frames_reach_the_virtual_camera_as_rgb():
    frame = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    with VirtualCameraOutput(device="rgb-check", backend=BACKEND, fps=20) as output:
        assert output.send(frame)
        assert output.send(frame[::-1])
        assert output.state == "rgb-check 320x240@20"
    (backend,) = backends_for("rgb-check")
    assert backend.fourcc == str(pyvirtualcam.PixelFormat.RGB.value)
    assert (backend.width, backend.height, backend.fps) == (320, 240, 20)
    np.testing.assert_array_equal(backend.frames[0], frame)
    np.testing.assert_array_equal(backend.frames[1], frame[::-1])
    assert backend.closed


def test_camera_reopens_when_the_frame_size_changes():
    with VirtualCameraOutput(device="resize", backend=BACKEND) as output:
        output.send(np.zeros((100, 100, 3), np.uint8), fps=15)
        output.send(np.zeros((120, 160, 3), np.uint8), fps=15)
    first, second = backends_for("resize")
    assert (first.width, first.height, first.fps) == (100, 100, 15)
    assert first.closed
    assert (second.width, second.height) == (160, 120)


def test_fixed_size_pads_square_output_to_the_aspect_and_rounds_odd_sizes():
    square = np.full((64, 64, 3), 200, np.uint8)
    with VirtualCameraOutput(device="padded", size=(161, 91), backend=BACKEND) as output:
        output.send(square)
    (backend,) = backends_for("padded")
    assert (backend.width, backend.height) == (160, 90)
    sent = backend.frames[0]
    assert sent[:, :30].max() == 0 and sent[:, -30:].max() == 0  # black bars left and right
    assert sent[:, 40:120].min() == 200


def test_missing_virtual_camera_is_reported_not_raised():
    output = VirtualCameraOutput(device="missing", backend=BACKEND)
    assert not output.send(np.zeros((64, 64, 3), np.uint8))
    assert output.state.startswith("unavailable: ")
    # One line for the window; the library's own words stay in the details.
    assert "\n" not in output.error and "device missing does not exist" not in output.error
    assert "device missing does not exist" in output.problem.detail
    assert not output.send(np.zeros((64, 64, 3), np.uint8))  # not retried on every frame
    output.close()


def test_no_virtual_camera_messages_per_os():
    linux = no_virtual_camera_message("no device", system="Linux")
    assert "v4l2loopback" in linux and "exclusive_caps=1" in linux and "card_label" in linux
    assert "\n" not in linux
    windows = no_virtual_camera_message(system="Windows")
    assert "OBS Studio 26" in windows and "Unity Capture" in windows
    mac = no_virtual_camera_message(system="Darwin")
    assert "OBS Studio 30" in mac and "once" in mac


@pytest.mark.parametrize("system", ["Linux", "Windows", "Darwin"])
def test_a_missing_camera_has_a_one_line_headline_details_and_a_setup_step(system):
    problem = no_virtual_camera("backend said no", system=system)
    assert problem.headline.endswith(".") and "\n" not in problem.headline and len(problem.headline) < 100
    assert "backend said no" in problem.detail and "backend said no" not in problem.headline
    assert problem.setup == ("scripts/setup-v4l2loopback.sh" if system == "Linux" else problem.setup)
    assert "OBS" in problem.setup or system == "Linux"


def test_only_this_platforms_backends_are_offered():
    assert [value for value, _ in backends_here("Linux")] == ["", "v4l2loopback"]
    assert [value for value, _ in backends_here("Windows")] == ["", "obs", "unitycapture"]
    assert [value for value, _ in backends_here("Darwin")] == ["", "obs"]

@pytest.mark.skipif(platform.system() != "Linux", reason="the module check reads Linux /sys")
def test_linux_message_mentions_secure_boot_when_the_module_is_not_loaded():
    if Path("/sys/module/v4l2loopback").exists():
        pytest.skip("v4l2loopback is loaded here")
    message = no_virtual_camera_message(system="Linux")
    assert "Secure Boot" in message and "mokutil" in message and "setup-v4l2loopback.sh" in message


def test_fit_frame_and_even_size():
    assert even_size((641, 481)) == (640, 480)
    image = np.full((10, 20, 3), 9, np.uint8)
    fitted = fit_frame(image, (40, 40))
    assert fitted.shape == (40, 40, 3)
    assert fitted[:10].max() == 0 and fitted[-10:].max() == 0 and fitted[10:30].min() == 9
