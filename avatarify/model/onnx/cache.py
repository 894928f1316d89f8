"""The exported graphs on disk: one folder per checkpoint next to the user's weights, checked against torch when
written, never half-written, and rebuilt when stale or damaged.

Each graph `NAME.onnx` has a sidecar `NAME.json` saying what it was exported from (checkpoint and config hash,
export version, opset), its size and SHA-256, and the result of its export-time check. Both are written under
temporary names and renamed into place; a graph whose sidecar is missing, unreadable, from another export version
or checkpoint, or whose bytes do not match, is exported again. The user's checkpoint is only ever read.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...core.download import file_md5
from ...core.files import write_atomically
from ...core.paths import user_weights_dir
from .graphs import EXPORT_VERSION, OPSET, export_graph

log = logging.getLogger(__name__)


def default_cache_root() -> Path:
    """Where exports are cached: an `onnx` folder beside the downloaded weights."""
    return user_weights_dir() / "onnx"


def weights_key(checkpoint: Path, config: Path) -> str:
    """What names a checkpoint's exports: its md5 and its config's (the same weights under another config export
    to other graphs)."""
    return f"{file_md5(checkpoint)[:16]}-{hashlib.md5(config.read_bytes()).hexdigest()[:8]}"


def graph_stem(name: str, precision: str) -> str:
    """The file name (without .onnx) of a graph: the animate graph has one per decoder precision."""
    return f"{name}-fp16" if name == "animate" and precision == "fp16" else name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class GraphSet:
    """The graph files of one model, with their export-time check results."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    checks: dict[str, dict] = field(default_factory=dict)

    def animate(self, precision: str) -> Path:
        return self.files[graph_stem("animate", precision)]


class GraphCache:
    """The exports of one model (named by `key`) in `folder`."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.key = key

    def _identity(self, stem: str) -> dict:
        return {"format": EXPORT_VERSION, "opset": OPSET, "weights": self.key, "graph": stem}

    def cached(self, stem: str) -> dict | None:
        """The sidecar of a usable cached graph; None when it is missing, stale or damaged (to be exported again)."""
        path, sidecar = self.folder / f"{stem}.onnx", self.folder / f"{stem}.json"
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in self._identity(stem).items()):
            log.info("The cached %s graph in %s is from another export; exporting it again.", stem, self.folder)
            return None
        try:
            intact = path.stat().st_size == meta.get("size") and _sha256(path) == meta.get("sha256")
        except OSError:
            intact = False
        if not intact:
            log.warning("The cached %s graph in %s is damaged; exporting it again.", stem, self.folder)
            return None
        return meta

    def ensure(self, stems: list[str], load_model: Callable, check: Callable, force: bool = False) -> GraphSet:
        """The graphs `stems` ("keypoints", "encoder", "animate", "animate-fp16"), exported where needed.

        `load_model()` gives the torch model to export from (called only when something is exported);
        `check(model, files)` compares the graphs with it and returns each graph's results, raising when they
        differ. Graphs that fail the check are not kept.
        """
        metas = {stem: None if force else self.cached(stem) for stem in stems}
        graphs = GraphSet(self.folder)
        for stem, meta in metas.items():
            if meta is not None:
                graphs.files[stem] = self.folder / f"{stem}.onnx"
                graphs.checks[stem] = meta.get("check", {})
        missing = [stem for stem, meta in metas.items() if meta is None]
        if missing:
            self._export(graphs, missing, load_model(), check)
        return graphs

    def _export(self, graphs: GraphSet, stems: list[str], model, check: Callable) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Exports go to a private folder first: a concurrent or interrupted export never leaves a partial file
        # under a final name.
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=self.folder))
        try:
            for stem in stems:
                name, _, precision = stem.partition("-")
                export_graph(model, name, precision or "fp32", staging / f"{stem}.onnx")
                graphs.files[stem] = staging / f"{stem}.onnx"
            results = check(model, graphs.files)
            for stem in stems:
                self._publish(graphs, stem, results.get(stem, {}))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _publish(self, graphs: GraphSet, stem: str, result: dict) -> None:
        staged, final = graphs.files[stem], self.folder / f"{stem}.onnx"
        meta = {
            **self._identity(stem), "size": staged.stat().st_size, "sha256": _sha256(staged), "check": result,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.replace(staged, final)
        write_atomically(self.folder / f"{stem}.json", json.dumps(meta, indent=2).encode())
        graphs.files[stem] = final
        graphs.checks[stem] = result
