"""The remote side's small parts on their own: a client's pending requests, its figures, a worker's avatar store."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from avatarify.core.frame import FRAME_SIZE, content_key
from avatarify.remote.avatars import AVATAR_CACHE_SIZE, AvatarStore
from avatarify.remote.protocol import Message, ProtocolError
from avatarify.remote.requests import Request, Requests
from avatarify.remote.stats import StatsWindow

RESULT = np.zeros((4, 4, 3), np.uint8)


def pending(*sent: tuple[int, float]) -> Requests:
    """Requests with these (id, sent at) pending."""
    requests = Requests()
    for request_id, sent_at in sent:
        requests.add(request_id, Request(sent_at, [b"frame %d" % request_id], "avatar"))
    return requests


# Pending requests


def test_a_new_request_is_not_replayed_and_a_fresh_client_has_no_result():
    assert Request(1.0, [b"x"], "key").replayed is False
    requests = Requests()
    assert len(requests) == 0 and requests.newest is None and requests.newest_id == 0


def test_requests_are_kept_by_id_until_dropped():
    requests = pending((5, 1.0), (3, 2.0), (9, 3.0))
    assert len(requests) == 3 and requests.oldest() == 3
    assert requests.get(5).parts == [b"frame 5"] and requests.get(4) is None
    assert requests.drop(3) is True and requests.drop(3) is False
    assert len(requests) == 2 and requests.oldest() == 5


def test_a_result_is_wanted_only_for_a_pending_request_newer_than_the_last_result():
    requests = pending((1, 0.0), (2, 0.0), (3, 0.0))
    assert requests.is_fresh(1) and requests.waiting_for(1)
    assert not requests.is_fresh(4) and not requests.waiting_for(4)  # never sent
    requests.accept(2, RESULT)
    assert not requests.is_fresh(2) and not requests.waiting_for(2)  # answered
    assert requests.is_fresh(3) and requests.waiting_for(3)
    requests.add(2, Request(0.0, [], "avatar"))  # pending again, but no newer than the result shown
    assert not requests.is_fresh(2) and not requests.waiting_for(2)


def test_accepting_a_result_ends_every_older_request():
    requests = pending((1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0))
    frame = np.ones((4, 4, 3), np.uint8)
    request = requests.accept(3, frame)
    assert request.parts == [b"frame 3"]
    assert len(requests) == 1 and requests.oldest() == 4
    assert requests.newest is frame and requests.newest_id == 3


def test_requests_older_than_the_age_expire():
    requests = pending((1, 10.0), (2, 12.0), (3, 13.0))
    assert requests.expire(now=15.0, age=3.0) is True
    assert len(requests) == 2 and requests.get(1) is None  # 5 s old; the one exactly 3 s old stays
    assert requests.expire(now=15.0, age=3.0) is False and len(requests) == 2


def test_clearing_forgets_the_pending_and_the_result_but_not_how_new_it_was():
    requests = pending((1, 0.0), (2, 0.0), (3, 0.0))
    requests.accept(2, RESULT)
    requests.clear()
    assert len(requests) == 0 and requests.newest is None
    # Results never go back in time, not even across a reset.
    requests.add(2, Request(0.0, [], "avatar"))
    assert requests.newest_id == 2 and not requests.is_fresh(2)


# Figures


def test_no_frames_yet_means_no_figures():
    stats = StatsWindow().summary("connecting")
    assert stats.state == "connecting"
    assert (stats.round_trip_ms, stats.worker_ms, stats.overhead_ms, stats.bytes_per_frame) == (None,) * 4
    assert (stats.frames, stats.dropped_frames, stats.unavailable_frames, stats.avatar_uploads) == (0, 0, 0, 0)


def test_figures_are_medians_and_the_overhead_is_the_round_trip_less_the_model():
    window = StatsWindow()
    for round_trip, worker, size in ((40.0, 30.0, 1000), (50.0, 25.0, 3000), (90.0, 35.0, 2000)):
        window.add_frame(round_trip, worker, size)
    window.dropped, window.unavailable, window.uploads = 4, 5, 6
    stats = window.summary("connected")
    assert (stats.round_trip_ms, stats.worker_ms, stats.overhead_ms, stats.bytes_per_frame) == (50.0, 30.0, 25.0, 2000)
    assert (stats.frames, stats.dropped_frames, stats.unavailable_frames, stats.avatar_uploads) == (3, 4, 5, 6)
    assert stats.state == "connected"


def test_figures_cover_the_last_100_frames_and_counts_all():
    window = StatsWindow()
    for round_trip in [10.0] * 51 + [30.0] * 50:
        window.add_frame(round_trip, 0.0, 100)
    stats = window.summary("connected")
    # The oldest 10 ms frame is gone: 50 of each, whose median lies half-way.
    assert stats.round_trip_ms == 20.0 and stats.overhead_ms == 20.0 and stats.frames == 101


# The avatar store


def avatar(value: int) -> tuple[np.ndarray, Message]:
    """A FRAME_SIZE avatar image and the `avatar` message uploading it."""
    image = np.full((FRAME_SIZE, FRAME_SIZE, 3), value, np.uint8)
    message = Message("avatar", value, {"hash": content_key(image), "enc": "raw"}, image.tobytes())
    return image, message


def test_an_uploaded_avatar_is_kept_by_its_hash(caplog):
    store = AvatarStore()
    assert store.size == AVATAR_CACHE_SIZE == 64 and store.uploads == 0 and len(store) == 0
    image, message = avatar(7)
    key = message.header["hash"]
    with caplog.at_level(logging.INFO, logger="avatarify.remote.avatars"):
        assert store.receive(message) == key
    assert np.array_equal(store.get(key), image) and store.uploads == 1 and len(store) == 1
    assert [r.getMessage() for r in caplog.records] == [f"Received avatar {key[:12]} ({image.nbytes} bytes)"]


def test_a_query_names_an_avatar_without_storing_one():
    store = AvatarStore()
    _image, message = avatar(7)
    key = message.header["hash"]
    assert store.receive(Message("avatar", 1, {"hash": key})) == key
    assert store.get(key) is None and store.uploads == 0 and len(store) == 0


def test_an_avatar_that_does_not_match_its_hash_is_refused():
    store = AvatarStore()
    image, _message = avatar(7)
    _other, forged = avatar(8)
    forged = Message("avatar", 2, {"hash": content_key(image), "enc": "raw"}, forged.payload)
    with pytest.raises(ProtocolError, match="^avatar image does not match its hash$") as error:
        store.receive(forged)
    assert error.value.kind == "avatar hash"
    assert len(store) == 0 and store.uploads == 0


def test_the_least_recently_used_avatar_is_forgotten():
    store = AvatarStore(size=2)
    keys = []
    for value in (1, 2):
        _image, message = avatar(value)
        keys.append(store.receive(message))
    assert store.get(keys[0]) is not None  # used: now the second is the least recent
    _image, message = avatar(3)
    keys.append(store.receive(message))
    assert len(store) == 2 and store.uploads == 3
    assert store.get(keys[1]) is None and store.get(keys[0]) is not None and store.get(keys[2]) is not None


def test_uploading_a_kept_avatar_again_makes_it_the_most_recent():
    store = AvatarStore(size=2)
    messages = [avatar(value)[1] for value in (1, 2, 3)]
    first, second = store.receive(messages[0]), store.receive(messages[1])
    store.receive(messages[0])
    third = store.receive(messages[2])
    assert store.get(second) is None and store.get(first) is not None and store.get(third) is not None
    assert store.uploads == 4
