"""Weights: lookup order, `avatarify weights download` against a real local HTTP server, `avatarify weights verify`."""
from __future__ import annotations

import hashlib
import http.server
import logging
import os
import re
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import avatarify
from avatarify.core import paths
from avatarify.model import weights
from avatarify.cli.main import main
from avatarify.core.download import DownloadError, download, file_md5, part_path
from avatarify.core.errors import CheckpointError
from avatarify.model.fomm import read_checkpoint

PAYLOAD = os.urandom(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@dataclass
class FileServer:
    """A real HTTP server on 127.0.0.1 serving files from memory, with Range support and scripted faults."""

    files: dict[str, bytes] = field(default_factory=dict)
    cuts: int = 0  # how many of the next file responses break off halfway
    ignore_range: bool = False
    range_start_shift: int = 0  # a server that answers a Range request with bytes from elsewhere
    length_header: str | None = None  # a Content-Length to declare instead of the true one
    omit_length: bool = False  # no Content-Length: the body ends when the connection does
    hide_total: bool = False  # a resumed part whose Content-Range does not state the file's size ("/*")
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    statuses: list[int] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    agents: list[str | None] = field(default_factory=list)  # the User-Agent of each request
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str], send: int | None = None) -> None:
            state.statuses.append(status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if not state.omit_length:
                self.send_header("Content-Length", state.length_header or str(len(body)))
            self.end_headers()
            sent = body[:send] if send is not None else body
            self.wfile.write(sent)
            state.bytes_sent.append(len(sent))

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            state.agents.append(self.headers.get("User-Agent"))
            data = state.files.get(self.path)
            if data is None:
                self._reply(404, b"not found", {})
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if match and not state.ignore_range:
                start = int(match.group(1)) + state.range_start_shift
                if start >= len(data):
                    self._reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
            body = data[start:]
            total = "*" if state.hide_total else len(data)
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{total}"} if start else {}
            cut = None
            if state.cuts > 0:
                # Half the body, then the connection closes, as when a link drops mid-file.
                state.cuts -= 1
                cut = len(body) // 2
            self._reply(206 if start else 200, body, headers, send=cut)

    return Handler


@pytest.fixture
def server():
    state = FileServer(files={"/vox.pth.tar": PAYLOAD})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/vox-adv-cpk.pth.tar"


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user data folder, redirected into tmp_path through platformdirs."""
    monkeypatch.setattr(paths.platformdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "userdata"))
    monkeypatch.delenv(weights.CHECKPOINT_ENV, raising=False)
    monkeypatch.delenv(weights.WEIGHTS_URL_ENV, raising=False)
    return tmp_path / "userdata" / "weights"


def error_lines(err: str) -> list[str]:
    """stderr without tqdm's progress bar output."""
    return [line for line in err.splitlines() if line.startswith("avatarify: error:")]


def download_cli(dest: Path, *urls: str, md5: str = PAYLOAD_MD5, extra: tuple[str, ...] = ()) -> int:
    url_args = [arg for url in urls for arg in ("--url", url)]
    return main(["weights", "download", "--dest", str(dest), "--md5", md5, *url_args, *extra])


# --- download -------------------------------------------------------------------------------------------


def test_download_success_writes_verified_file_and_shows_progress(server, tmp_path, capsys):
    dest = tmp_path / "w"
    assert download_cli(dest, server.url("/vox.pth.tar")) == 0
    target = dest / weights.CHECKPOINT_NAME
    assert target.read_bytes() == PAYLOAD
    assert not part_path(target).exists()
    out, err = capsys.readouterr()
    assert str(target) in out
    assert "100%" in err  # the tqdm bar ran to completion
    assert server.requests == [("/vox.pth.tar", None)]


def test_download_resumes_after_cut_with_range(server, tmp_path):
    server.cuts = 1
    dest = tmp_path / "w"
    assert download_cli(dest, server.url("/vox.pth.tar")) == 0
    assert (dest / weights.CHECKPOINT_NAME).read_bytes() == PAYLOAD
    half = len(PAYLOAD) // 2
    assert server.requests == [("/vox.pth.tar", None), ("/vox.pth.tar", f"bytes={half}-")]
    assert server.statuses == [200, 206]
    assert server.bytes_sent == [half, len(PAYLOAD) - half]


def test_connection_that_keeps_dropping_keeps_the_part_for_the_next_run(server, tmp_path):
    server.cuts = 10
    target = tmp_path / "vox.pth.tar"
    with pytest.raises(DownloadError, match="connection lost 3 times"):
        download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, max_attempts=3, progress=False)
    assert not target.exists()
    kept = part_path(target).read_bytes()
    assert len(kept) == len(PAYLOAD) - len(PAYLOAD) // 8 and PAYLOAD.startswith(kept)
    server.cuts = 0
    download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/vox.pth.tar", f"bytes={len(kept)}-")


def test_download_resumes_part_file_left_by_earlier_run(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    assert download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False) == target
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [("/vox.pth.tar", "bytes=1000-")]
    assert server.bytes_sent == [len(PAYLOAD) - 1000]


def test_download_of_complete_part_file_only_verifies(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD)
    download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.statuses == [416]


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    server.ignore_range = True
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.statuses == [200]


def test_stale_part_file_with_wrong_bytes_is_replaced_by_a_fresh_download(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(b"x" * 1000)
    download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [("/vox.pth.tar", "bytes=1000-"), ("/vox.pth.tar", None)]


def test_wrong_checksum_is_rejected_and_nothing_is_left(server, tmp_path, capsys):
    dest = tmp_path / "w"
    assert download_cli(dest, server.url("/vox.pth.tar"), md5="0" * 32) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "checksum mismatch" in lines[0] and PAYLOAD_MD5 in lines[0] and "0" * 32 in lines[0]
    assert list(dest.iterdir()) == []  # neither the final file nor a part file


def test_server_down_gives_one_line_error_with_what_was_tried(closed_port_url, tmp_path, capsys):
    dest = tmp_path / "w"
    assert download_cli(dest, closed_port_url) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert closed_port_url in lines[0] and "refused" in lines[0]
    assert "by hand" in lines[0] and str(dest) in lines[0]
    assert not (dest / weights.CHECKPOINT_NAME).exists()


def test_mirror_fallback_after_404(server, tmp_path, caplog):
    dest = tmp_path / "w"
    missing, good = server.url("/gone.pth.tar"), server.url("/vox.pth.tar")
    assert download_cli(dest, missing, good) == 0
    assert (dest / weights.CHECKPOINT_NAME).read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/gone.pth.tar", "/vox.pth.tar"]
    assert any("HTTP 404" in record.getMessage() for record in caplog.records)  # the failed mirror is reported


def test_all_mirrors_failing_lists_each(server, closed_port_url, tmp_path, capsys):
    assert download_cli(tmp_path / "w", server.url("/gone.pth.tar"), closed_port_url) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "HTTP 404" in line and server.url("/gone.pth.tar") in line and closed_port_url in line


def test_url_environment_variable_replaces_the_mirror_list(server, user_dir, monkeypatch):
    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, server.url("/vox.pth.tar"))
    assert main(["weights", "download", "--md5", PAYLOAD_MD5]) == 0
    assert (user_dir / weights.CHECKPOINT_NAME).read_bytes() == PAYLOAD


def test_mirror_list_precedence(monkeypatch):
    monkeypatch.delenv(weights.WEIGHTS_URL_ENV, raising=False)
    assert weights.mirror_urls() == list(weights.KNOWN_MIRRORS)
    assert all(url.endswith("/vox-adv-cpk.pth.tar") for url in weights.KNOWN_MIRRORS)
    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, "http://a/x http://b/x")
    assert weights.mirror_urls() == ["http://a/x", "http://b/x"]
    assert weights.mirror_urls(["http://c/x"]) == ["http://c/x"]


def test_existing_good_file_is_kept_without_downloading(server, tmp_path):
    dest = tmp_path / "w"
    dest.mkdir()
    (dest / weights.CHECKPOINT_NAME).write_bytes(PAYLOAD)
    assert download_cli(dest, server.url("/vox.pth.tar")) == 0
    assert server.requests == []


def test_existing_other_file_is_replaced_only_with_force(server, tmp_path, capsys):
    dest = tmp_path / "w"
    dest.mkdir()
    target = dest / weights.CHECKPOINT_NAME
    target.write_bytes(b"my own file")
    assert download_cli(dest, server.url("/vox.pth.tar")) == 2
    assert "--force" in error_lines(capsys.readouterr().err)[0]
    assert target.read_bytes() == b"my own file"
    assert download_cli(dest, server.url("/vox.pth.tar"), extra=("--force",)) == 0
    assert target.read_bytes() == PAYLOAD


def test_download_rejects_malformed_md5_option(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        download_cli(tmp_path, "http://127.0.0.1:9/x", md5="abc")
    assert exit_info.value.code == 2


def test_download_error_is_a_user_error(closed_port_url, tmp_path):
    with pytest.raises(DownloadError, match="connection refused"):
        download([closed_port_url], tmp_path / "f", progress=False)


def test_file_md5_matches_hashlib(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert file_md5(path) == PAYLOAD_MD5


def test_download_says_who_asks(server, tmp_path):
    download([server.url("/vox.pth.tar")], tmp_path / "vox.pth.tar", progress=False)
    assert server.agents == [f"avatarify/{avatarify.__version__}"]


def test_download_needs_a_url(tmp_path):
    with pytest.raises(ValueError, match="^no URL to download from$"):
        download([], tmp_path / "f", progress=False)


def test_a_destination_folder_that_cannot_be_made_says_why(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(DownloadError, match=rf"^Cannot create {tmp_path}/file/sub: Not a directory\.$"):
        download(["http://127.0.0.1:9/x"], tmp_path / "file" / "sub" / "vox.pth.tar", progress=False)


def test_disk_space_is_counted_without_what_a_part_file_already_holds(server, tmp_path, monkeypatch):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=len(PAYLOAD) - 1000))
    assert download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, size=len(PAYLOAD), progress=False) == target
    part_path(target).write_bytes(PAYLOAD[:999])  # one byte more to fetch than there is room for
    with pytest.raises(DownloadError, match=rf"^Not enough disk space in {tmp_path}: the download needs 0 MB, 0 MB "
                                            r"are free\.$"):
        download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, size=len(PAYLOAD), progress=False)
    part_path(target).write_bytes(bytes(1_500_000))
    # The free space of the destination's disk, in MB as people count them (10^6 bytes), rounded.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: {tmp_path: usage._replace(free=2_500_002)}[Path(path)])
    with pytest.raises(DownloadError, match=r"needs 11 MB, 3 MB are free\.$"):
        download([server.url("/vox.pth.tar")], target, size=12_000_005, progress=False)
    assert server.requests == [("/vox.pth.tar", "bytes=1000-")]


def test_a_part_file_holding_the_whole_known_size_is_only_verified(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD)
    assert download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, size=len(PAYLOAD), progress=False) == target
    assert server.requests == [] and target.read_bytes() == PAYLOAD


def test_a_part_file_longer_than_the_file_starts_over(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD + b"stale")
    download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [("/vox.pth.tar", f"bytes={len(PAYLOAD) + 5}-"), ("/vox.pth.tar", None)]
    assert server.statuses == [416, 200]


def test_every_mirror_tried_is_named_with_its_reason(server, closed_port_url, tmp_path):
    gone = server.url("/gone.pth.tar")
    with pytest.raises(DownloadError) as caught:
        download([gone, closed_port_url], tmp_path / "vox.pth.tar", progress=False)
    assert str(caught.value) == (
        f"Could not download vox.pth.tar; tried {gone} (HTTP 404 Not Found); {closed_port_url} (connection refused)."
    )


def test_a_checksum_is_accepted_in_capitals_and_a_wrong_one_gets_one_fresh_start(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5.upper(), progress=False)
    assert target.read_bytes() == PAYLOAD
    part_path(target).write_bytes(PAYLOAD[:1000])
    with pytest.raises(DownloadError) as caught:
        download([server.url("/vox.pth.tar")], target, "0" * 32, progress=False)
    assert str(caught.value).endswith(
        f"(checksum mismatch: md5 {PAYLOAD_MD5}, expected {'0' * 32}; file discarded)."
    )
    # The resumed file, then one fresh download; both discarded.
    assert server.requests[1:] == [("/vox.pth.tar", "bytes=1000-"), ("/vox.pth.tar", None)]
    assert not part_path(target).exists()


def test_a_connection_lost_without_progress_fails_the_mirror_at_once(server, tmp_path):
    server.cuts = 10
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:-1])  # one byte to go: half of it is nothing
    with pytest.raises(DownloadError, match=r"\(connection lost: got 299999 of 300000 bytes\)\.$"):
        download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, max_attempts=5, progress=False)
    assert len(server.requests) == 1


def test_a_destination_that_cannot_be_replaced_says_why(server, tmp_path):
    target = tmp_path / "vox.pth.tar"
    (target / "inside").mkdir(parents=True)  # a folder where the file should go
    with pytest.raises(DownloadError, match=rf"^Cannot move {part_path(target)} to {target}: Is a directory\.$"):
        download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)


def test_a_mirror_resuming_from_the_wrong_place_is_left_for_the_next(server, tmp_path):
    server.range_start_shift = -10
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    with pytest.raises(DownloadError, match=r"\(asked for bytes from 1000, server sent from 990\)\.$"):
        download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert part_path(target).read_bytes() == PAYLOAD[:1000]  # kept for a better mirror


@pytest.mark.parametrize(
    "declared, reason",
    [("12abc", "declares a length of '12abc'"), ("-5", "declares a length of '-5'"),
     ("9" * 41, f"declares a length of '{'9' * 40}'"),
     ("9" * 40, f"declares {'9' * 40} bytes, more than the {4 << 30} accepted")],  # fmt: skip
)
def test_a_mirror_declaring_a_length_that_cannot_be_is_refused(declared, reason, server, tmp_path):
    server.length_header = declared
    with pytest.raises(DownloadError) as caught:
        download([server.url("/vox.pth.tar")], tmp_path / "vox.pth.tar", progress=False)
    assert str(caught.value).endswith(f"({reason}).")


def test_a_mirror_that_fails_leaves_the_part_file_for_the_next(server, tmp_path, caplog):
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    download([server.url("/gone.pth.tar"), server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [("/gone.pth.tar", "bytes=1000-"), ("/vox.pth.tar", "bytes=1000-")]
    assert not any("starting over" in message for message in caplog.messages)


def test_starting_over_is_logged_with_the_reason(server, tmp_path, caplog):
    target = tmp_path / "vox.pth.tar"
    url = server.url("/vox.pth.tar")
    part_path(target).write_bytes(PAYLOAD + b"stale")
    with caplog.at_level(logging.INFO):
        download([url], target, PAYLOAD_MD5, progress=False)
    assert f"{url}: partial file {part_path(target)} does not match the server's file; starting over" in caplog.messages
    server.ignore_range = True
    part_path(target).write_bytes(PAYLOAD[:1000])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        download([url], target, PAYLOAD_MD5, progress=False)
    assert f"{url}: server does not resume downloads; starting over" in caplog.messages


def test_a_mirror_that_does_not_say_the_size_still_delivers(server, tmp_path):
    server.omit_length = True
    target = tmp_path / "vox.pth.tar"
    assert download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False) == target
    assert target.read_bytes() == PAYLOAD


def test_a_mirror_declaring_another_size_than_the_known_one_is_refused(server, tmp_path):
    server.length_header = str(len(PAYLOAD) - 1)
    with pytest.raises(DownloadError) as caught:
        download([server.url("/vox.pth.tar")], tmp_path / "vox.pth.tar", size=len(PAYLOAD), progress=False)
    assert str(caught.value).endswith(f"(declares {len(PAYLOAD) - 1} bytes; the file has {len(PAYLOAD)}).")


def test_starting_over_needs_room_for_the_whole_file(server, tmp_path, monkeypatch):
    server.ignore_range = True
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=len(PAYLOAD) - 1))
    with pytest.raises(DownloadError) as caught:
        download([server.url("/vox.pth.tar")], target, progress=False)
    assert str(caught.value).endswith(f"(declares {len(PAYLOAD)} bytes, more than the free disk space).")


def test_a_mirror_address_urllib_cannot_use_is_that_mirror_s_failure(server, tmp_path):
    with pytest.raises(DownloadError) as caught:
        download(["gopher://127.0.0.1/vox.pth.tar"], tmp_path / "vox.pth.tar", progress=False)
    assert str(caught.value) == (
        "Could not download vox.pth.tar; tried gopher://127.0.0.1/vox.pth.tar (unknown url type: gopher)."
    )


def test_a_resume_that_does_not_state_the_file_size_still_completes(server, tmp_path):
    server.hide_total = True
    target = tmp_path / "vox.pth.tar"
    part_path(target).write_bytes(PAYLOAD[:1000])
    assert download([server.url("/vox.pth.tar")], target, PAYLOAD_MD5, progress=False) == target
    assert target.read_bytes() == PAYLOAD and server.statuses == [206]


def test_the_log_tells_each_step(server, tmp_path, caplog):
    target, url, gone = tmp_path / "vox.pth.tar", server.url("/vox.pth.tar"), server.url("/gone.pth.tar")
    server.cuts = 1
    with caplog.at_level(logging.INFO, logger="avatarify.core.download"):
        download([gone, url], target, PAYLOAD_MD5, progress=False)
        target.unlink()
        with pytest.raises(DownloadError):
            download([url], target, "0" * 32, progress=False)
    half = len(PAYLOAD) // 2
    assert caplog.messages == [
        f"{gone}: HTTP 404 Not Found",
        f"{url}: connection lost at {half} bytes (got {half} of {len(PAYLOAD)} bytes); resuming",
        f"Saved {target}",
        f"{url}: md5 {PAYLOAD_MD5}, expected {'0' * 32}; discarded",  # no part file before: no second try
        f"{url}: checksum mismatch: md5 {PAYLOAD_MD5}, expected {'0' * 32}; file discarded",
    ]


def test_by_default_a_download_shows_progress_and_resumes_five_times(server, tmp_path, capsys):
    server.cuts = 10
    target = tmp_path / "vox.pth.tar"
    with pytest.raises(DownloadError, match=r"\(connection lost 5 times\)\.$"):
        download([server.url("/vox.pth.tar")], target)
    assert len(server.requests) == 5 and "vox.pth.tar:" in capsys.readouterr().err  # the progress bar


# --- lookup order ---------------------------------------------------------------------------------------


@pytest.fixture
def places(tmp_path, user_dir, monkeypatch):
    """A checkpoint file in each place the lookup knows: explicit, environment, user folder, repo weights/."""
    repo_dir = tmp_path / "repo_weights"
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", repo_dir)
    found = {
        "explicit": tmp_path / "explicit.pth.tar",
        "env": tmp_path / "env.pth.tar",
        "user": user_dir / weights.CHECKPOINT_NAME,
        "repo": repo_dir / weights.CHECKPOINT_NAME,
    }
    for path in found.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    monkeypatch.setenv(weights.CHECKPOINT_ENV, str(found["env"]))
    return found


def test_user_weights_dir_follows_platformdirs(user_dir):
    assert paths.user_weights_dir() == user_dir


def test_lookup_order_explicit_env_user_repo(places, monkeypatch):
    assert weights.find_checkpoint(places["explicit"]) == places["explicit"]
    assert weights.find_checkpoint() == places["env"]
    monkeypatch.delenv(weights.CHECKPOINT_ENV)
    assert weights.find_checkpoint() == places["user"]
    places["user"].unlink()
    assert weights.find_checkpoint() == places["repo"]
    places["repo"].unlink()
    with pytest.raises(CheckpointError, match="avatarify weights download") as exc_info:
        weights.find_checkpoint()
    assert str(places["user"].parent) in str(exc_info.value)


def test_named_paths_that_do_not_exist_are_errors_not_fallbacks(places, monkeypatch, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        weights.find_checkpoint(tmp_path / "nope.pth.tar")
    monkeypatch.setenv(weights.CHECKPOINT_ENV, str(tmp_path / "nope.pth.tar"))
    with pytest.raises(CheckpointError, match=weights.CHECKPOINT_ENV):
        weights.find_checkpoint()


def test_lookup_prefers_vox_adv_and_accepts_vox_cpk(user_dir):
    user_dir.mkdir(parents=True)
    other = user_dir / "vox-cpk.pth.tar"
    other.write_bytes(b"weights")
    assert weights.find_checkpoint() == other
    (user_dir / weights.CHECKPOINT_NAME).write_bytes(b"weights")
    assert weights.find_checkpoint() == user_dir / weights.CHECKPOINT_NAME


def test_where_prints_order_and_choice(places, monkeypatch, capsys):
    monkeypatch.delenv(weights.CHECKPOINT_ENV)
    assert main(["weights", "where"]) == 0
    out = capsys.readouterr().out
    assert out.index(str(places["user"])) < out.index(str(places["repo"]))
    assert f"{places['user']} [found]" in out
    assert "$AVATARIFY_CHECKPOINT: not set" in out
    assert out.strip().splitlines()[-1] == f"Using {places['user']}"


def test_where_without_weights_says_how_to_get_them(user_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", tmp_path / "empty")
    assert main(["weights", "where"]) == 1
    out = capsys.readouterr().out
    assert f"{user_dir / weights.CHECKPOINT_NAME} [missing]" in out
    assert "avatarify weights download" in out.strip().splitlines()[-1]


# --- verify and safe loading ----------------------------------------------------------------------------


class CodeCarrier:
    """Unpickling this creates the file at `marker`: stands for any pickle that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(params=["zip", "legacy"])
def code_checkpoint(request, tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth.tar"
    torch.save(
        {"generator": {"w": torch.zeros(1)}, "kp_detector": CodeCarrier(marker)},
        path,
        _use_new_zipfile_serialization=request.param == "zip",
    )
    return path, marker


def test_code_carrier_really_runs_code_when_loaded_unsafely(code_checkpoint):
    path, marker = code_checkpoint
    torch.load(path, weights_only=False)
    assert marker.exists()  # so the refusal tests below guard against something real


def test_pickle_with_code_is_refused_by_read_checkpoint(code_checkpoint):
    path, marker = code_checkpoint
    with pytest.raises(CheckpointError, match="contains code"):
        read_checkpoint(path)
    assert not marker.exists()


def test_pickle_with_code_is_refused_by_verify(code_checkpoint, capsys):
    path, marker = code_checkpoint
    assert main(["weights", "verify", str(path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "contains code" in line
    assert not marker.exists()


def test_verify_accepts_checkpoint_fitting_its_config(small_checkpoint, small_config, capsys):
    assert main(["weights", "verify", str(small_checkpoint), "--config", str(small_config)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert f"not the published {weights.CHECKPOINT_NAME}" in out
    assert file_md5(small_checkpoint) in out


def test_verify_checks_a_given_md5(small_checkpoint, small_config, capsys):
    good = file_md5(small_checkpoint)
    assert main(["weights", "verify", str(small_checkpoint), "--config", str(small_config), "--md5", good]) == 0
    assert main(["weights", "verify", str(small_checkpoint), "--config", str(small_config), "--md5", "0" * 32]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert good in line and "0" * 32 in line


def test_verify_reports_published_file(small_checkpoint, small_config):
    report = weights.verify_checkpoint(small_checkpoint, small_config)
    assert not report.is_published
    assert weights.CheckpointReport(report.path, weights.CHECKPOINT_MD5, report.config).is_published


def test_verify_rejects_checkpoint_of_another_config(small_checkpoint, capsys):
    assert main(["weights", "verify", str(small_checkpoint)]) == 2  # default vox-256 config
    (line,) = error_lines(capsys.readouterr().err)
    assert "does not fit the model config" in line and "in the checkpoint but" in line


def _truncated(tmp_path: Path, small_checkpoint: Path) -> Path:
    data = small_checkpoint.read_bytes()
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    return path


def _zero_bytes(tmp_path: Path, small_checkpoint: Path) -> Path:
    path = tmp_path / "empty.pth.tar"
    path.write_bytes(b"")
    return path


def _list_pickle(tmp_path: Path, small_checkpoint: Path) -> Path:
    path = tmp_path / "list.pth.tar"
    torch.save([torch.zeros(3), 1, 2], path)
    return path


def _text_file(tmp_path: Path, small_checkpoint: Path) -> Path:
    path = tmp_path / "page.pth.tar"
    path.write_text("<html>Access denied</html>")
    return path


@pytest.mark.parametrize(
    ("make_file", "reason"),
    [
        (_truncated, "truncated"),
        (_zero_bytes, "empty"),
        (_list_pickle, "not a FOMM checkpoint"),
        (_text_file, "corrupt"),
    ],
)
def test_verify_rejects_bad_files_with_a_clear_reason(make_file, reason, tmp_path, small_checkpoint, small_config, capsys):
    path = make_file(tmp_path, small_checkpoint)
    assert main(["weights", "verify", str(path), "--config", str(small_config)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert reason in line and str(path) in line
    with pytest.raises(CheckpointError, match=reason):
        read_checkpoint(path)


def test_verify_missing_file(tmp_path, capsys):
    assert main(["weights", "verify", str(tmp_path / "nope.pth.tar")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "does not exist" in line
