"""Reading weight files safely, and saying exactly how a state dict differs from the network built for it.

Shared by every engine. Files are unpickled with torch's weights-only loader, so nothing in them runs. When that
loader refuses a file, the reason is read from the file itself, never from the wording of torch's message: a
pickle that names any global beyond the few that plain tensors need would import or call code to load, and is
refused as such; anything else that fails is corruption.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import torch

from ..core.errors import CheckpointError

# What torch.save writes for plain tensors and state dicts; any other global is code that loading would run.
DATA_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.Size",
        "torch.device",
    }
    | {f"torch.{kind}Storage" for kind in ("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char",
                                           "Byte", "Bool", "Untyped")}
)
STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
                        "STRING"})
# Legacy (pre-zip) files hold a few pickles one after another: magic number, protocol, system info, the data.
LEGACY_PICKLES = 4


def _pickle_streams(path: Path) -> Iterator[io.BufferedIOBase]:
    """The pickle byte streams of a torch file: `data.pkl` of a zip archive, or a legacy file itself.

    Anything else (a cut-off archive, text) yields nothing: its bytes read as opcodes would be noise.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith("data.pkl"):
                    yield io.BytesIO(archive.read(name))
        return
    with open(path, "rb") as stream:
        if stream.read(1) == pickle.PROTO:
            stream.seek(0)
            yield stream


def _globals_in(stream: io.BufferedIOBase) -> Iterator[str]:
    """Every global a pickle stream names, read from its opcodes without unpickling anything.

    A global whose name cannot be followed through the memo is reported as "?": unknown counts as code.
    """
    memo: dict[int, object] = {}
    recent: list[object] = []
    for op, arg, _ in pickletools.genops(stream):
        if op.name in STRING_OPS:
            recent.append(arg)
        elif op.name in {"GLOBAL", "INST"}:
            yield str(arg).replace(" ", ".", 1)
        elif op.name == "STACK_GLOBAL":
            module, name = (recent[-2:] if len(recent) >= 2 else ["?", "?"])
            yield f"{module}.{name}" if isinstance(module, str) and isinstance(name, str) else "?"
        elif op.name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif op.name in {"PUT", "BINPUT", "LONG_BINPUT"}:
            memo[int(arg)] = recent[-1] if recent else None
        elif op.name in {"GET", "BINGET", "LONG_BINGET"}:
            recent.append(memo.get(int(arg)))
        elif op.name in {"REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "OBJ"}:
            recent.append(None)


def code_globals(path: str | Path) -> list[str]:
    """The globals a torch file's pickle names beyond those plain tensors need: what loading it would run.

    Empty for plain weights; also empty for a file too damaged to read (then it is corrupt, not code).
    """
    found: list[str] = []
    try:
        for stream in _pickle_streams(Path(path)):
            for _ in range(LEGACY_PICKLES):
                try:
                    found += [name for name in _globals_in(stream) if name not in DATA_GLOBALS]
                except (ValueError, EOFError, IndexError, KeyError):
                    break  # the end of the pickles (tensor bytes follow) or a damaged one
    except (OSError, zipfile.BadZipFile, RuntimeError):
        pass
    return sorted(set(found))


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
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"Cannot read {path}: {exc.strerror}.") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged file can surface as almost any exception from the unpickler
        code = code_globals(path)
        if code:
            raise CheckpointError(
                f"Refused to load {path}: it carries code ({', '.join(code[:3])}), not plain weights. {hint}"
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
