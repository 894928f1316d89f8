"""Model weights: where they live, how they are found, downloaded and checked."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..core.paths import user_weights_dir
from ..core.download import DEFAULT_MAX_SIZE, PART_SUFFIX, DownloadError, TransferLimits, download, file_md5
from ..core.errors import CheckpointError, InputError
from ..core.files import name_limit

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "vox-adv-cpk.pth.tar"
CHECKPOINT_MD5 = "8a45a24037871c045fbb8a6a8aa95ebc"
CHECKPOINT_SIZE = 228_000_000  # approximate, for messages
# More than a mirror may declare or send for the published checkpoint: one that does is not serving it.
CHECKPOINT_MAX_SIZE = 250_000_000
CHECKPOINT_ENV = "AVATARIFY_CHECKPOINT"
# The other published VoxCeleb checkpoint; same architecture, accepted when found.
ALTERNATIVE_NAMES = ("vox-cpk.pth.tar",)
REPO_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
# Public copies of vox-adv-cpk.pth.tar, tried in order; AVATARIFY_WEIGHTS_URL or `--url` replace the list.
KNOWN_MIRRORS = (
    "https://openavatarify.s3-avatarify.com/weights/vox-adv-cpk.pth.tar",
    "https://openavatarify.s3.amazonaws.com/weights/vox-adv-cpk.pth.tar",
)
WEIGHTS_URL_ENV = "AVATARIFY_WEIGHTS_URL"


def candidate_paths() -> list[Path]:
    """Every place looked at, in order, after an explicit path and the environment variable."""
    names = (CHECKPOINT_NAME, *ALTERNATIVE_NAMES)
    return [folder / name for folder in (user_weights_dir(), REPO_WEIGHTS_DIR) for name in names]


class WeightsNotFoundError(CheckpointError):
    """No checkpoint was found where the lookup looks (the first-run case: offer the download)."""


def missing_weights_message() -> str:
    return (
        f"No model weights found. Run `avatarify weights download`, or put {CHECKPOINT_NAME} in "
        f"{user_weights_dir()} (or pass --checkpoint PATH, or set {CHECKPOINT_ENV})."
    )


@dataclass(frozen=True)
class LookupStep:
    """One place the checkpoint lookup looks at; `path` is None for a flag or variable that is not set."""

    source: str
    path: Path | None
    # A path the user named must exist; the lookup does not silently fall through to another file.
    required: bool = False
    # What counts as found there: a file for FOMM's checkpoint, a complete weights folder for LivePortrait.
    exists: Callable[[Path], bool] = Path.is_file

    @property
    def found(self) -> bool:
        return self.path is not None and self.exists(self.path)


def lookup_steps(explicit: str | os.PathLike | None = None) -> list[LookupStep]:
    """The checkpoint lookup order: explicit path, $AVATARIFY_CHECKPOINT, the user data folder, the repo's weights/."""
    from_env = os.environ.get(CHECKPOINT_ENV)
    steps = [
        LookupStep("--checkpoint", Path(explicit).expanduser() if explicit else None, required=True),
        LookupStep(f"${CHECKPOINT_ENV}", Path(from_env).expanduser() if from_env else None, required=True),
    ]
    user_dir = user_weights_dir()
    steps += [
        LookupStep("user data folder" if path.parent == user_dir else "repository weights/", path)
        for path in candidate_paths()
    ]
    return steps


def find_checkpoint(explicit: str | os.PathLike | None = None) -> Path:
    """The checkpoint to use: explicit path, then $AVATARIFY_CHECKPOINT, the user data folder, the repo's weights/."""
    for step in lookup_steps(explicit):
        if step.found:
            return step.path
        if step.path is not None and step.required:
            if step.source == "--checkpoint":
                raise CheckpointError(f"Checkpoint {step.path} does not exist. {missing_weights_message()}")
            raise CheckpointError(f"{CHECKPOINT_ENV} points to {step.path}, which does not exist.")
    raise WeightsNotFoundError(missing_weights_message())


def mirror_urls(override: Sequence[str] | None = None) -> list[str]:
    """Where to download the weights from: the given URLs, else $AVATARIFY_WEIGHTS_URL (space separated), else the known mirrors."""
    if override:
        return list(override)
    from_env = os.environ.get(WEIGHTS_URL_ENV, "").split()
    return from_env or list(KNOWN_MIRRORS)


def manual_placement_hint(dest: Path, md5: str) -> str:
    """What to do when no mirror delivers the file."""
    return (
        f"Download {dest.name} (md5 {md5}) by hand and put it in {dest.parent}, "
        f"or point {CHECKPOINT_ENV} at it; see the README, section 'Model weights'."
    )


def checked_file_name(name: str, folder: Path) -> str:
    """`name` if it names a file directly inside `folder`; InputError (one line) for a path, `..`, a NUL or an empty
    or too long name, which could otherwise write anywhere."""
    text = str(name)
    # A plain name is its own last part: no separator, drive or root (on any system), and not "." or "..".
    if text in ("", ".", "..") or "\0" in text or Path(text).name != text:
        raise InputError(f"--name {text[:80]!r}: give a plain file name such as {CHECKPOINT_NAME}, without folders.")
    # The unfinished download is kept beside it, under a longer name.
    longest = name_limit(folder if folder.is_dir() else Path(".")) - len(PART_SUFFIX)
    if len(os.fsencode(text)) > longest:
        raise InputError(f"--name {text[:40]!r}...: a file name of at most {longest} bytes, please.")
    return text


def download_weights(
    dest_dir: Path | None = None,
    urls: Sequence[str] | None = None,
    md5: str = CHECKPOINT_MD5,
    name: str = CHECKPOINT_NAME,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download the weights into `dest_dir` (default: the user data folder), verified and written atomically.

    A file already in place with the right checksum is kept as is; one with another checksum is only
    replaced with `force`. `name` must be a plain file name: nothing is ever written outside `dest_dir`. A mirror
    may bring at most CHECKPOINT_MAX_SIZE bytes of the published checkpoint (DEFAULT_MAX_SIZE of another file).
    """
    folder = Path(dest_dir or user_weights_dir()).expanduser()
    dest = folder / checked_file_name(name, folder)
    if dest.is_file():
        try:
            actual = file_md5(dest)
        except OSError as exc:
            raise CheckpointError(f"Cannot read the existing {dest}: {exc.strerror}; move it away or use --dest.") from exc
        if actual == md5.lower():
            log.info("%s is already in place and its checksum is right.", dest)
            return dest
        if not force:
            raise CheckpointError(
                f"{dest} already exists with md5 {actual}, not {md5}; pass --force to replace it, "
                f"or --dest to download elsewhere."
            )
    published = md5.lower() == CHECKPOINT_MD5
    limits = TransferLimits(max_size=CHECKPOINT_MAX_SIZE if published else DEFAULT_MAX_SIZE)
    try:
        return download(mirror_urls(urls), dest, md5, limits=limits, progress=progress)
    except DownloadError as exc:
        raise DownloadError(f"{exc} {manual_placement_hint(dest, md5)}") from exc


@dataclass(frozen=True)
class CheckpointReport:
    """What `verify_checkpoint` found out about a checkpoint that loads and fits its config."""

    path: Path
    md5: str
    config: Path

    @property
    def is_published(self) -> bool:
        """Whether this is byte for byte the published vox-adv-cpk.pth.tar."""
        return self.md5 == CHECKPOINT_MD5


def verify_checkpoint(
    path: str | os.PathLike, config: str | os.PathLike | None = None, md5: str | None = None
) -> CheckpointReport:
    """Check that a file loads safely as a FOMM checkpoint fitting `config` (default vox-256), and its md5 if given.

    Raises `CheckpointError` with a one-line reason otherwise.
    """
    from .fomm import DEFAULT_CONFIG, load_model

    path = Path(path)
    config = Path(config) if config else DEFAULT_CONFIG
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        actual = file_md5(path)
    except OSError as exc:
        raise CheckpointError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if md5 and actual != md5.lower():
        raise CheckpointError(f"{path} has md5 {actual}, expected {md5.lower()}; download it again.")
    load_model(config, path)
    return CheckpointReport(path=path, md5=actual, config=config)
