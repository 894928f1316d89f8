"""LivePortrait's weights: the folder layouts accepted, where the folder is looked for, and its download from the
Hugging Face hub (through `huggingface_hub`: progress, resume, sha256 checked against the hub's LFS metadata).

No torch here: the thin client can fetch and locate weights too.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from ...core.download import CHUNK_SIZE, DownloadError
from ...core.errors import CheckpointError
from ...core.paths import user_weights_dir
from .. import weights as common

log = logging.getLogger(__name__)

# Network -> where the published `liveportrait/` folder keeps its weights; a flat folder holds the same names.
PUBLISHED_FILES = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor.pth",
    "motion_extractor": "base_models/motion_extractor.pth",
    "warping_module": "base_models/warping_module.pth",
    "spade_generator": "base_models/spade_generator.pth",
    "stitching_retargeting_module": "retargeting_models/stitching_retargeting_module.pth",
}
HUB_REPO = "KwaiVGI/LivePortrait"
HUB_FOLDER = "liveportrait"
HUB_ENDPOINT_ENV = "HF_ENDPOINT"
FOLDER_NAME = "liveportrait"
WEIGHTS_ENV = "AVATARIFY_LIVEPORTRAIT_WEIGHTS"
# Inside the destination; huggingface_hub keeps its resumable partial files here between runs.
STAGING_NAME = ".download"
FETCH_HINT = "Run `avatarify weights download --engine liveportrait`, or pass the weights folder with --checkpoint."


def default_folder() -> Path:
    """Where `avatarify weights download --engine liveportrait` puts the weights."""
    return user_weights_dir() / FOLDER_NAME


def checkpoint_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The five weight files in `folder`: the published layout (base_models/, retargeting_models/), the same
    under a `liveportrait/` subfolder, or the five files side by side. Raises `CheckpointError` naming what is
    missing."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise CheckpointError(f"LivePortrait weights folder {folder} does not exist. {FETCH_HINT}")
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder} is a file; LivePortrait's --checkpoint is the folder that holds its five weight files."
        )
    layouts = [
        {name: folder / path for name, path in PUBLISHED_FILES.items()},
        {name: folder / HUB_FOLDER / path for name, path in PUBLISHED_FILES.items()},
        {name: folder / Path(path).name for name, path in PUBLISHED_FILES.items()},
    ]
    best = max(layouts, key=lambda layout: sum(path.is_file() for path in layout.values()))
    missing = [path for path in best.values() if not path.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CheckpointError(
            f"{folder} is not a LivePortrait weights folder: {missing[0].relative_to(folder)} is missing{more}. "
            "Give the published liveportrait/ folder (base_models/, retargeting_models/) or one with the five "
            ".pth files."
        )
    return best


def is_weights_folder(path: Path) -> bool:
    """Whether `path` is a folder with all five weight files in an accepted layout."""
    try:
        checkpoint_files(path)
    except CheckpointError:
        return False
    return True


def lookup_steps(explicit: str | os.PathLike | None = None) -> list[common.LookupStep]:
    """The lookup order: --checkpoint, $AVATARIFY_LIVEPORTRAIT_WEIGHTS, the user data folder, the repo's weights/."""
    from_env = os.environ.get(WEIGHTS_ENV)
    named = [("--checkpoint", explicit), (f"${WEIGHTS_ENV}", from_env)]
    steps = [
        common.LookupStep(source, Path(path).expanduser() if path else None, required=True, exists=is_weights_folder)
        for source, path in named
    ]
    steps.append(common.LookupStep("user data folder", default_folder(), exists=is_weights_folder))
    steps.append(common.LookupStep("repository weights/", common.REPO_WEIGHTS_DIR / FOLDER_NAME,
                                   exists=is_weights_folder))
    return steps


def missing_weights_message() -> str:
    return (
        "No LivePortrait weights found. Run `avatarify weights download --engine liveportrait`, or put the "
        f"published liveportrait/ folder at {default_folder()} (or pass --checkpoint FOLDER, or set {WEIGHTS_ENV})."
    )


def find_weights_folder(explicit: str | os.PathLike | None = None) -> Path:
    """The weights folder to use, by the lookup order; a folder the user named must be complete."""
    for step in lookup_steps(explicit):
        if step.found:
            return step.path
        if step.path is not None and step.required:
            checkpoint_files(step.path)  # raises, saying what is wrong with it
    raise CheckpointError(missing_weights_message())


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hub_error(what: str, exc: BaseException, endpoint: str | None) -> DownloadError:
    lines = str(exc).strip().splitlines()
    reason = (lines[0] if lines else type(exc).__name__)[:200]
    return DownloadError(
        f"Could not {what} from {endpoint or 'the Hugging Face hub'} ({reason}). Run the command again to resume, "
        f"or download the files of {HUB_REPO} folder {HUB_FOLDER}/ by hand and pass that folder with --checkpoint."
    )


def hub_checksums(endpoint: str | None, revision: str) -> dict[str, str]:
    """The sha256 of each published file (repository path -> hex digest), from the hub's LFS metadata."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise DownloadError("Downloading LivePortrait needs huggingface_hub: pip install 'avatarify[model]'.") from exc
    wanted = [f"{HUB_FOLDER}/{path}" for path in PUBLISHED_FILES.values()]
    try:
        infos = HfApi(endpoint=endpoint).get_paths_info(HUB_REPO, wanted, revision=revision)
    except Exception as exc:  # noqa: BLE001 - the hub client raises many kinds (HTTP, connection, offline mode)
        raise _hub_error("read the file list", exc, endpoint) from exc
    sums = {info.path: info.lfs.sha256 for info in infos if getattr(info, "lfs", None) is not None}
    for path in wanted:
        if path not in sums:
            raise DownloadError(f"{HUB_REPO} at {revision} has no {path} with a checksum; check --revision.")
    return sums


def _fetch(repo_path: str, staging: Path, endpoint: str | None, revision: str, sha256: str) -> Path:
    """One file downloaded into the staging folder (resuming a partial one) and checked."""
    from huggingface_hub import hf_hub_download

    try:
        staged = Path(hf_hub_download(HUB_REPO, repo_path, revision=revision, local_dir=staging, endpoint=endpoint))
    except Exception as exc:  # noqa: BLE001 - see hub_checksums
        raise _hub_error(f"download {repo_path}", exc, endpoint) from exc
    actual = file_sha256(staged)
    if actual != sha256:
        staged.unlink()
        raise DownloadError(f"{repo_path}: checksum mismatch, sha256 {actual}, expected {sha256}; file discarded. "
                            "Run the command again.")
    return staged


def _keep_existing(target: Path, sha256: str, force: bool) -> bool:
    """Whether `target` already is the right file; a different one stays only without `force` (an error)."""
    if not target.is_file():
        return False
    actual = file_sha256(target)
    if actual == sha256:
        log.info("%s is already in place and its checksum is right.", target)
        return True
    if not force:
        raise CheckpointError(
            f"{target} already exists with sha256 {actual}, not {sha256}; pass --force to replace it, "
            "or --dest to download elsewhere."
        )
    return False


def download_weights(
    dest: str | os.PathLike | None = None, endpoint: str | None = None, revision: str = "main", force: bool = False
) -> Path:
    """Fetch the five published files into `dest` (default: the user data folder) in the published layout.

    Each file is checked against the hub's sha256 before it is moved into place; an interrupted download resumes
    on the next call. Files already in place with the right checksum are kept.
    """
    dest = Path(dest or default_folder()).expanduser()
    endpoint = endpoint or os.environ.get(HUB_ENDPOINT_ENV) or None
    sums = hub_checksums(endpoint, revision)
    staging = dest / STAGING_NAME
    for path in PUBLISHED_FILES.values():
        repo_path, target = f"{HUB_FOLDER}/{path}", dest / path
        if _keep_existing(target, sums[repo_path], force):
            continue
        staged = _fetch(repo_path, staging, endpoint, revision, sums[repo_path])
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
        except OSError as exc:
            raise DownloadError(f"Cannot move {staged} to {target}: {exc.strerror or exc}.") from exc
    shutil.rmtree(staging, ignore_errors=True)
    return dest
