"""The Ray serving's bookkeeping without Ray: options, one request per client from the inbox, figures, the status
report in words and the command's one-line refusals. The real deployment is tested in test_serve.py."""
from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zmq

from avatarify.core.errors import AvatarifyError
from avatarify.remote.inbox import RequestInbox
from avatarify.remote.keys import create_keys, load_client_keys, load_server_keys
from avatarify.remote.monitor import StatusError, describe, query_status
from avatarify.remote.protocol import Message, decode_message, encode_message
from avatarify.remote.serve.figures import ServingFigures
from avatarify.cli.main import main
from avatarify.remote.serve.options import RAY_NOT_INSTALLED, RayOptions, parse_autoscale


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


@pytest.mark.parametrize(
    "options",
    [
        {"autoscale": (0, 1)},  # scaled to zero while idle
        {"autoscale": (2, 2)},
        {"max_batch": 1},
        {"max_batch": 256},
        {"batch_wait_ms": 0.0},
        {"batch_wait_ms": 0.5},
        {"batch_wait_ms": 1000.0},
        {"replica_cpus": 0.0, "replica_gpus": 0.0},
        {"replica_cpus": 0.5, "replica_gpus": 0.25},  # replicas sharing a CPU and a GPU
    ],
)
def test_ray_options_at_their_limits_are_accepted(options):
    assert {name: getattr(RayOptions(**options), name) for name in options} == options


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_batch": 257}, "--max-batch 257: give 1 to 256."),
        ({"batch_wait_ms": 1000.5}, "--batch-wait 1000.5: give 0 to 1000 ms."),
        ({"autoscale": (0, 0)}, "--autoscale 0..0: give MIN..MAX with MIN <= MAX and MAX at least 1."),
        ({"replica_cpus": -0.5}, "--replica-cpus and --replica-gpus cannot be negative."),
        ({"replica_gpus": -0.5}, "--replica-cpus and --replica-gpus cannot be negative."),
    ],
)
def test_ray_options_just_beyond_their_limits_are_refused(options, message):
    with pytest.raises(AvatarifyError) as refused:
        RayOptions(**options)
    assert str(refused.value) == message


def test_without_ray_serve_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["worker", "--ray"]) == 2
    assert capsys.readouterr().err == f"avatarify: error: {RAY_NOT_INSTALLED}\n"


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


def answer(replica: str, pid: int, batch: int, queue: int, **stage_ms: float) -> dict:
    """The figures a replica sends with a frame."""
    return {"replica": replica, "pid": pid, "batch": batch, "queue": queue, "stage_ms": stage_ms}


def test_the_report_holds_every_figure_per_replica_and_overall():
    now = [100.0]
    figures = ServingFigures(clock=lambda: now[0])
    for session, figures_sent, round_trip in [
        (b"s1", answer("r1", 7, 1, 2, decode=1.0, keypoints=10.0, generator=50.0, encode=2.0), 80.0),
        (b"s2", answer("r1", 7, 2, 1, decode=2.0, keypoints=12.0, generator=60.0, encode=2.0), 90.0),
        (b"s2", answer("r1", 7, 2, 0, generator=55.1234), 70.0),
        (b"s3", answer("r2", 8, 1, 5), 100.0),  # an answer without stage times
    ]:
        now[0] += 0.5
        figures.add(session, figures_sent, round_trip_ms=round_trip)
    figures.forget(b"s1")
    figures.forget(b"gone")  # a session that never had a frame
    assert figures.report() == {
        "replica_states": {},
        "fps": 2.7,  # 4 answers in the 1.5 s since the first one
        "frames": 4,
        "batch_sizes": {"1": 2, "2": 2},
        "stage_ms": {"decode": 1.5, "keypoints": 11.0, "generator": 55.12, "encode": 2.0, "round_trip": 85.0},
        "replicas": {
            "r1": {"state": "RUNNING", "pid": 7, "node": None, "sessions": 1, "frames": 3, "queue": 0,
                   "batch_sizes": {"1": 1, "2": 2}, "generator_ms": 55.12},
            "r2": {"state": "RUNNING", "pid": 8, "node": None, "sessions": 1, "frames": 1, "queue": 5,
                   "batch_sizes": {"1": 1}, "generator_ms": None},
        },
    }  # fmt: skip
    figures.forget(b"s3")
    known = [{"id": "r2", "state": "RUNNING", "pid": 8, "node": "10.0.0.8"}, {"id": "r3", "state": "STARTING"}]
    report = figures.report(known)
    assert report["replica_states"] == {"RUNNING": 1, "STARTING": 1}
    assert report["replicas"] == {
        "r2": {"state": "RUNNING", "pid": 8, "node": "10.0.0.8", "sessions": 0, "frames": 1, "queue": 5,
               "batch_sizes": {"1": 1}, "generator_ms": None},
        "r3": {"state": "STARTING", "pid": None, "node": None, "sessions": 0, "frames": 0, "queue": 0,
               "batch_sizes": {}, "generator_ms": None},
    }  # fmt: skip
    assert figures.summary() == (
        "Ray Serve: 2.7 frames/s; frames by batch size 1:2 2:2; median ms decode 1.5, keypoints 11.0, generator 55.12, "
        "encode 2.0, round_trip 85.0; replicas: r1 1 sessions queue 0, r2 0 sessions queue 5"
    )


def test_the_frame_rate_needs_two_answers_apart_in_time():
    now = [10.0]
    figures = ServingFigures(clock=lambda: now[0])
    figures.add(b"s", answer("r1", 7, 1, 0), round_trip_ms=5.0)
    assert figures.fps() == 0.0
    figures.add(b"s", answer("r1", 7, 1, 0), round_trip_ms=5.0)
    assert figures.fps() == 0.0  # two answers at the same instant
    now[0] += 0.5
    figures.add(b"s", answer("r1", 7, 1, 0), round_trip_ms=5.0)
    assert figures.fps() == 6.0
    now[0] += 0.2
    assert figures.fps() == 4.3  # 3 answers in 0.7 s, to one decimal
    fresh = ServingFigures(clock=lambda: now[0])
    fresh.add(b"s", answer("r1", 7, 1, 0), round_trip_ms=5.0)
    now[0] += 0.25
    fresh.add(b"s", answer("r1", 7, 1, 0), round_trip_ms=5.0)
    assert fresh.fps() == 8.0


def test_medians_and_the_frame_rate_follow_the_recent_answers():
    now = [0.0]
    figures = ServingFigures(clock=lambda: now[0])
    for round_trip in [10.0] * 300 + [20.0] * 300:  # the worker slowed down
        now[0] += 0.1 if round_trip == 10.0 else 0.2
        figures.add(b"s", answer("r1", 7, 1, 0, generator=round_trip), round_trip_ms=round_trip)
    report = figures.report()
    assert report["stage_ms"] == {"generator": 20.0, "round_trip": 20.0}
    assert report["replicas"]["r1"]["generator_ms"] == 20.0
    assert report["fps"] == 5.0 and report["frames"] == 600


def test_a_replica_not_heard_from_for_a_minute_is_left_out():
    now = [100.0]
    figures = ServingFigures(clock=lambda: now[0])
    figures.add(b"s", answer("r1", 7, 1, 0), round_trip_ms=5.0)
    now[0] += 60.0
    assert list(figures.report()["replicas"]) == ["r1"]
    now[0] += 0.5
    assert figures.report()["replicas"] == {}


def test_a_report_in_words_survives_odd_values():
    report = {
        "endpoint": "tcp://127.0.0.1:5557", "clients": 2, "max_clients": 256, "waiting": 0, "uptime_s": 3.0,
        "problem": None, "counters": {"frames": 10},
        "backend": {"backend": "ray", "address": "embedded Ray", "deployment": "avatarify/Animator", "in_flight": 1,
                    "replica_states": {"RUNNING": 2}, "fps": 5.0, "batch_sizes": {"10": 1, "2": 3, "x": 1},
                    "stage_ms": {"generator": 50.0}, "replicas": {"r1": {"state": "RUNNING", "pid": 7}, "r0": "odd"}},
    }  # fmt: skip
    text = "\n".join(describe(report))
    assert "2 running" in text and "frames by batch size 2:3 x:1 10:1" in text and "replica    r1 (RUNNING, process 7" in text
    assert "PROBLEM" not in text
    assert "PROBLEM    no Ray" in "\n".join(describe({"problem": "no Ray", "backend": {"backend": "local"}}))


COUNTERS = {"frames": 1200, "dropped_frames": 3, "avatar_uploads": 2, "rejected_messages": 1}


def test_a_local_worker_in_words():
    report = {"endpoint": "tcp://0.0.0.0:5557", "clients": 1, "max_clients": 16, "waiting": 2, "uptime_s": 61.5,
              "problem": None, "counters": COUNTERS,
              "backend": {"backend": "local", "device": "cuda:0", "sessions": 1, "model_ms": 23.5}}  # fmt: skip
    assert describe(report) == [
        "front end  tcp://0.0.0.0:5557: 1/16 clients, 2 requests waiting, up 61.5 s",
        "           1200 frames, 3 stale frames skipped, 2 avatars received, 1 bad messages",
        "model      local on cuda:0: 1 sessions, 23.5 ms a frame",
    ]


def test_a_ray_worker_in_words():
    replica = {"state": "RUNNING", "pid": 7, "node": "10.0.0.7", "sessions": 2, "frames": 900, "queue": 1,
               "batch_sizes": {"2": 300, "1": 300}, "generator_ms": 41.5}  # fmt: skip
    # Listed by Serve, not heard from yet.
    starting = {"state": "STARTING", "pid": None, "node": None, "sessions": 0, "frames": 0, "queue": 0,
                "batch_sizes": {}, "generator_ms": None}  # fmt: skip
    backend = {"backend": "ray", "address": "Ray at auto", "deployment": "avatarify/Animator", "in_flight": 3,
               "replica_states": {"RUNNING": 1, "STARTING": 1}, "fps": 24.5, "batch_sizes": {"1": 300, "2": 600},
               "stage_ms": {"decode": 1.5, "generator": 41.5},
               "replicas": {"r2": replica, "r1": starting}}  # fmt: skip
    lines = describe({"counters": COUNTERS, "problem": "replica r1 is starting", "backend": backend})
    assert lines[2:] == [
        "PROBLEM    replica r1 is starting",
        "ray        Ray at auto, deployment avatarify/Animator: 1 running, 1 starting; 3 frames in flight",
        "           24.5 frames/s; frames by batch size 1:300 2:600",
        "           median ms: decode 1.5, generator 41.5",
        "replica    r1 (STARTING, process None on None): 0 sessions, 0 frames, queue 0, "
        "frames by batch size none yet, generator None ms a batch",
        "replica    r2 (RUNNING, process 7 on 10.0.0.7): 2 sessions, 900 frames, queue 1, "
        "frames by batch size 1:300 2:300, generator 41.5 ms a batch",
    ]
    # Before any replica answered: no states, no figures.
    assert describe({"backend": {"backend": "ray", "address": "embedded Ray"}})[2:] == [
        "ray        embedded Ray, deployment None: no replicas; None frames in flight",
        "           None frames/s; frames by batch size none yet",
    ]


@contextmanager
def fake_worker(reply: list[bytes] | None) -> Iterator[str]:
    """A worker socket on a free loopback port that answers one message with `reply` (None: never answers)."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve() -> None:
        if router.poll(5000) and reply is not None:
            identity, *parts = router.recv_multipart()
            if decode_message(parts).type == "status":  # as a worker checks it
                router.send_multipart([identity, *reply])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        thread.join()
        router.close(linger=0)


def report_message(payload: bytes) -> list[bytes]:
    return encode_message("report", 1, payload, enc="json")


def test_the_status_query_returns_the_workers_report(capsys):
    report = {"endpoint": "tcp://127.0.0.1:5557", "backend": {"backend": "local"}, "counters": {"frames": 5}}
    with fake_worker(report_message(json.dumps(report).encode())) as address:
        assert query_status(address) == report
    with fake_worker(report_message(json.dumps(report).encode())) as address:
        assert main(["worker", "status", "--address", address]) == 0
    assert capsys.readouterr().out.startswith("front end  tcp://127.0.0.1:5557: None/None clients")


@pytest.mark.parametrize(
    "reply, message",
    [
        (None, "No answer from the worker at {address} within 0.05 s: is it running there, and does it need keys "
               "(--keys DIR with a client pair it accepts)?"),
        (encode_message("pong", 1), "The worker at {address} does not report its status (it answered pong)."),
        (encode_message("result", 1, b"{}", enc="jpeg", model_ms=1.0),
         "The worker at {address} does not report its status (it answered result)."),
        ([b'{"v": 1, "type": "report", "id": 1}'],
         "The worker at {address} answered something unreadable: protocol version 1, expected 2"),
        (report_message(b"[1, 2]"), "The worker at {address} sent an unreadable report: not a JSON object."),
        (report_message(b'{"a": '), "The worker at {address} sent an unreadable report: not JSON"),
        (report_message(b'{"a": [[[[[[1]]]]]]}'),
         "The worker at {address} sent an unreadable report: JSON nested 7 levels deep, limit 6"),
    ],
)
def test_a_status_query_without_a_report_is_one_line(reply, message):
    with fake_worker(reply) as address:
        with pytest.raises(StatusError) as refused:
            query_status(address, timeout=0.05)
    assert str(refused.value).startswith(message.format(address=address))


def test_a_status_query_to_a_bad_address_says_how_to_give_it():
    with pytest.raises(StatusError) as refused:
        query_status("gpu-host:5557")
    assert str(refused.value).startswith("Cannot ask the worker at gpu-host:5557: Invalid argument")
    assert str(refused.value).endswith(". Give it as tcp://HOST:PORT.")


def test_the_status_query_uses_the_client_keys(tmp_path):
    create_keys(tmp_path)
    router = zmq.Context.instance().socket(zmq.ROUTER)
    load_server_keys(tmp_path).apply(router)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        def serve() -> None:
            if router.poll(5000):
                identity, _ = router.recv_multipart()
                router.send_multipart([identity, *report_message(b'{"clients": 0}')])

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert query_status(f"tcp://127.0.0.1:{port}", load_client_keys(tmp_path)) == {"clients": 0}
        thread.join()
    finally:
        router.close(linger=0)


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
