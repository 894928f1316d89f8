"""Reading weight files safely, and saying exactly how a state dict differs from the network built for it.

Shared by every engine. Files are unpickled with torch's weights-only loader, so nothing in them runs. When that
loader refuses a file, the reason is read from the file itself (`pickles.code_in_checkpoint`), never from the
wording of torch's message: code is refused as such; anything else that fails is corruption.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from ..core.errors import CheckpointError
from .pickles import code_in_checkpoint

def read_model_params(path: str | Path, sections: set[str], engine: str) -> dict[str, Any]:
    """The `model_params` section of a model YAML, which must hold each of `sections` (a dict each for LivePortrait,
    present for FOMM); `CheckpointError` names what is missing."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CheckpointError(f"Cannot read model config {path}: {exc.strerror or exc}.") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"Model config {path} is not valid YAML.") from exc
    params = config.get("model_params") if isinstance(config, dict) else None
    if not isinstance(params, dict) or not all(isinstance(params.get(name), dict) for name in sections):
        raise CheckpointError(
            f"Model config {path} has no {engine} model_params section (it needs {', '.join(sorted(sections))})."
        )
    return params


def read_weights(path: str | Path, hint: str) -> object:
    """A torch weights file loaded without running code; `hint` says what to do when it is unusable.

    Raises `CheckpointError` with one line: missing, empty, unreadable, carrying code (refused, never run) or
    corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist. {hint}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty. {hint}")
    try:
        with warnings.catch_warnings():
            # torch warns of any pickle protocol above 2, which is what torch.save itself writes: noise for the user.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"Cannot read {path}: {exc.strerror}.") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged file can surface as almost any exception from the unpickler
        code = code_in_checkpoint(path)
        if code:
            shown = ", ".join(code[:3]) + (f" and {len(code) - 3} more" if len(code) > 3 else "")
            raise CheckpointError(
                f"Refused to load {path}: it contains code ({shown}), not plain weights; it was not run. {hint}"
            ) from exc
        raise CheckpointError(f"{path} is corrupt, truncated or not a weights file. {hint}") from exc


def state_dict_mismatch(module: torch.nn.Module, state_dict: Mapping[str, object]) -> list[str]:
    """Human-readable differences between a module's state dict and a loaded one (empty when they fit).

    Shape differences come first: they tell best which configuration the file was made for.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    problems = [
        f"{k} is {list(given[k])} in the checkpoint but {list(shape)} in the config"
        for k, shape in expected.items()
        if k in given and given[k] != shape
    ]
    problems += [f"missing {k}" for k in expected if k not in given]
    problems += [f"unexpected {k}" for k in given if k not in expected]
    return problems


def load_state_strictly(module: torch.nn.Module, state_dict: Mapping[str, object], source: str, part: str) -> None:
    """Load `state_dict` into `module` with every key and shape matching, or name the first differences.

    `source` names the file (for the message), `part` the network inside it.
    """
    problems = state_dict_mismatch(module, state_dict)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise CheckpointError(f"{source} does not fit the model config ({part}: {shown}). Pass the matching --config.")
    module.load_state_dict({k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}, strict=True)
