"""What a checkpoint's pickle would import, found by reading its opcodes, never by running them.

When torch's weights-only loader refuses a file, its message depends on the torch version and on how the pickle
reaches for code (a blocked module such as `os`, any other function or class, a protocol-4 opcode it does not
implement). The question that matters, "does this file call code?", is answered here from the pickle itself:
every global it names (GLOBAL, INST, STACK_GLOBAL) that torch does not allow is code.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickletools
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# A legacy (pre-zip) torch file is a magic number, a protocol version, system information, the object and its
# storage keys: five pickles, then raw tensor bytes.
LEGACY_PICKLES = 5
_STRING_OPS = frozenset(
    {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def code_in_checkpoint(path: str | Path) -> list[str]:
    """The functions and classes a torch checkpoint's pickle names that torch's weights-only loading refuses,
    sorted; empty when it names none (or cannot be read far enough to tell)."""
    allowed = _torch_allowed_globals()
    return sorted(name for name in _checkpoint_globals(Path(path)) if not allowed(name))


def pickle_globals(stream: BinaryIO, max_pickles: int = 1) -> set[str]:
    """"module.name" of every global the pickle(s) at the start of `stream` import; stops quietly at bad data."""
    found: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickletools warns of escapes in random bytes: damage, already handled here
        for _ in range(max_pickles):
            try:
                _scan(stream, found)
            except Exception:  # noqa: BLE001 - damaged or unusual data: what was found so far is the answer
                break
    return found


def _scan(stream: BinaryIO, found: set[str]) -> None:
    strings: list[str] = []  # strings pushed so far, in order (STACK_GLOBAL takes the last two)
    memo: dict[int, object] = {}
    last: object = None
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attribute = str(arg).partition(" ")
            found.add(_modern(module, attribute))
        elif name == "STACK_GLOBAL":
            module, attribute = (strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?")
            found.add(_modern(module, attribute))
        if name in _STRING_OPS:
            last = arg.decode("latin-1") if isinstance(arg, bytes) else arg
            strings.append(last)
        elif name in _GET_OPS:
            last = memo.get(arg)
            if isinstance(last, str):
                strings.append(last)
        elif name in _PUT_OPS:
            memo[arg] = last
        elif name == "MEMOIZE":
            memo[len(memo)] = last
        if name == "STOP":
            return


def _modern(module: str, name: str) -> str:
    """A Python 2 global's Python 3 name, as both pickle and torch translate it."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _checkpoint_globals(path: Path) -> set[str]:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
                return pickle_globals(io.BytesIO(archive.read(names[0]))) if names else set()
        with open(path, "rb") as stream:
            return pickle_globals(stream, LEGACY_PICKLES)
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return set()


def _torch_allowed_globals() -> Callable[[str], bool]:
    """Whether torch's weights-only loading accepts a global: its defaults and those the program allowed."""
    import torch
    from torch import _weights_only_unpickler

    allowed = set()
    for entry in torch.serialization.get_safe_globals():
        allowed.add(entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}")
    # torch keeps its default list private; without it, anything from torch itself counts as allowed.
    defaults = getattr(_weights_only_unpickler, "_get_allowed_globals", None)
    if defaults is None:
        allowed |= {"collections.OrderedDict", "_codecs.encode"}
        return lambda name: name in allowed or name.startswith("torch.")
    allowed |= set(defaults())
    return allowed.__contains__
