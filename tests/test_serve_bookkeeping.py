"""The Ray serving's bookkeeping without Ray: options, one request per client from the inbox, figures, the status
report in words and the command's one-line refusals. The real deployment is tested in test_serve.py."""
from __future__ import annotations


import pytest

from avatarify.core.errors import AvatarifyError
from avatarify.remote.inbox import RequestInbox
from avatarify.remote.monitor import describe
from avatarify.remote.protocol import Message
from avatarify.remote.serve.figures import ServingFigures
from avatarify.cli.main import main
from avatarify.remote.serve.options import RayOptions, parse_autoscale


def predict(request_id: int, calibrate: bool = False) -> Message:
    return Message("predict", request_id, {"calibrate": calibrate})


def test_ray_options_are_checked_in_one_line():
    assert parse_autoscale("1..4") == (1, 4)
    for text in ("4", "a..b", "1-4", "..3"):
        with pytest.raises(ValueError, match="MIN..MAX"):
            parse_autoscale(text)
    for options, message in (
        ({"address": "head"}, "HOST:PORT"),
        ({"address": "10.0.0.5:6379; rm -rf /"}, "HOST:PORT"),
        ({"replicas": 0}, "at least 1"),
        ({"autoscale": (3, 2)}, "MIN <= MAX"),
        ({"autoscale": (0, 0)}, "MAX at least 1"),
        ({"max_batch": 0}, "1 to 256"),
        ({"batch_wait_ms": 5000}, "0 to 1000"),
        ({"replica_gpus": -1.0}, "negative"),
    ):
        with pytest.raises(AvatarifyError, match=message):
            RayOptions(**options)
    assert RayOptions().where == "embedded Ray" and RayOptions(address="auto").where == "Ray at auto"


def test_the_inbox_hands_out_one_request_per_free_client_and_marks_stale_calibrations():
    inbox = RequestInbox()
    inbox.put(b"a", Message("avatar", 1, {}))
    inbox.put(b"a", predict(2, calibrate=True))
    inbox.put(b"a", predict(3))
    inbox.put(b"b", predict(4))
    taken, forgotten = inbox.take_ready(busy={b"b"})
    assert [(identity, message.id, stale) for identity, message, stale in taken] == [(b"a", 1, False)]
    taken, _ = inbox.take_ready(busy=set())
    # The calibration frame has a newer frame behind it: stale (it still sets the neutral pose).
    assert [(identity, message.id, stale) for identity, message, stale in taken] == [(b"a", 2, True), (b"b", 4, False)]
    inbox.forget(b"a")
    taken, forgotten = inbox.take_ready(busy=set())
    assert taken == [] and forgotten == [b"a"] and inbox.waiting() == 0


def test_figures_per_replica_and_overall():
    now = [100.0]
    figures = ServingFigures(clock=lambda: now[0])
    assert figures.summary() is None
    for i, (session, replica, batch) in enumerate([(b"s1", "r1", 1), (b"s2", "r1", 2), (b"s3", "r2", 2), (b"s1", "r2", 1)]):
        now[0] += 0.5
        stages = {"decode": 1.0, "keypoints": 10.0 + i, "generator": 50.0, "encode": 1.0}
        figures.add(session, {"replica": replica, "pid": 7 if replica == "r1" else 8, "batch": batch,
                              "stage_ms": stages, "queue": 3}, round_trip_ms=80.0)  # fmt: skip
    report = figures.report([{"id": "r1", "state": "RUNNING", "pid": 7, "node": "10.0.0.7"},
                             {"id": "r3", "state": "STARTING", "pid": 9, "node": "10.0.0.8"}])  # fmt: skip
    assert report["batch_sizes"] == {"1": 2, "2": 2} and report["frames"] == 4
    assert report["stage_ms"]["keypoints"] == 11.5 and report["stage_ms"]["round_trip"] == 80.0
    # Serve's list names the replicas; sessions count where their last frame was served (s1 moved to r2).
    assert report["replica_states"] == {"RUNNING": 1, "STARTING": 1}
    assert report["replicas"]["r1"]["sessions"] == 1 and report["replicas"]["r1"]["frames"] == 2
    assert report["replicas"]["r3"]["frames"] == 0 and "r2" not in report["replicas"]
    assert "r2" in figures.report()["replicas"]
    assert report["fps"] == pytest.approx(4 / 1.5, abs=0.1)
    line = figures.summary()
    assert line.startswith("Ray Serve: ") and "frames by batch size 1:2 2:2" in line and figures.summary() is None


def test_a_report_in_words_survives_odd_values():
    report = {
        "endpoint": "tcp://127.0.0.1:5557", "clients": 2, "max_clients": 256, "waiting": 0, "uptime_s": 3.0,
        "problem": None, "counters": {"frames": 10},
        "backend": {"backend": "ray", "address": "embedded Ray", "deployment": "avatarify/Animator", "in_flight": 1,
                    "replica_states": {"RUNNING": 2}, "fps": 5.0, "batch_sizes": {"10": 1, "2": 3, "x": 1},
                    "stage_ms": {"generator": 50.0}, "replicas": {"r1": {"state": "RUNNING", "pid": 7}, "r2": "odd"}},
    }  # fmt: skip
    text = "\n".join(describe(report))
    assert "2 running" in text and "frames by batch size 2:3 x:1 10:1" in text and "replica    r1 (RUNNING, process 7" in text
    assert "PROBLEM" not in text
    assert "PROBLEM    no Ray" in "\n".join(describe({"problem": "no Ray", "backend": {"backend": "local"}}))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--replicas", "2"], "--replicas needs --ray"),
        (["--ray", "--engine", "liveportrait"], "FOMM engine only"),
        (["--ray", "--ray-address", "nowhere"], "HOST:PORT"),
        (["--ray", "--backend", "onnx"], "--ray runs the torch backend"),
        (["--ray", "--provider", "cpu"], "--ray runs the torch backend"),
        # On an embedded Ray the files are looked up before Ray starts, not by replicas that keep failing.
        (["--ray", "--checkpoint", "/nonexistent/vox-adv-cpk.pth.tar"], "/nonexistent/vox-adv-cpk.pth.tar does not exist"),
        (["--ray", "--config", "/nonexistent/vox-256.yaml"], "Cannot read model config /nonexistent/vox-256.yaml"),
    ],
)
def test_the_command_refuses_bad_ray_options_in_one_line(arguments, message, capsys):
    assert main(["worker", *arguments]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
