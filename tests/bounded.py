"""Running a piece of Python in a child process under a hard memory cap, and measuring its peak memory.

A regression in code that guards memory must not take the test machine down with it: the child gets an address
space limit, so it fails with MemoryError (or is killed) instead.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30

_PRELUDE = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
_started = time.perf_counter()
_result = {{}}
def report(**values):
    _result.update(values)
def peak_rss():
    # This process's own high-water mark: ru_maxrss would include the parent's memory at fork time.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""
_EPILOGUE = """
_result["seconds"] = time.perf_counter() - _started
_result["peak_rss"] = peak_rss()
print("RESULT " + json.dumps(_result))
"""


@dataclass
class Outcome:
    """What the child reported (`report(...)` values), its peak resident memory in bytes and its run time."""

    returncode: int
    values: dict
    peak_rss: int
    seconds: float
    stderr: str


def run_bounded(code: str, address_space: int = 6 * GiB, timeout: float = 120.0) -> Outcome:
    """Run `code` (which may call `report(key=value)` and `peak_rss()`) in a fresh interpreter limited to
    `address_space` bytes."""
    source = _PRELUDE.format(limit=address_space) + textwrap.dedent(code) + _EPILOGUE
    result = subprocess.run(
        [sys.executable, "-c", source], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    values = json.loads(lines[-1][len("RESULT "):]) if lines else {}
    return Outcome(
        result.returncode, values, int(values.pop("peak_rss", -1)), float(values.pop("seconds", -1)), result.stderr
    )
