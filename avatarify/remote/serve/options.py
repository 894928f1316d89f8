"""How the worker's Ray Serve deployment is run: where Ray is, how many replicas, how frames are batched."""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

from ...core.errors import AvatarifyError

DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_MS = 2.0
RAY_NOT_INSTALLED = (
    "--ray needs Ray Serve, which this installation lacks: install it with `pip install 'avatarify[model,serve]'`."
)
_ADDRESS = re.compile(r"auto|[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")


@dataclass(frozen=True)
class RayOptions:
    """A deployment on the Ray cluster at `address` (None: an embedded Ray on this machine; "auto": the cluster this
    machine belongs to; else HOST:PORT of its head), with `replicas` replicas or `autoscale` (min, max), batches of at
    most `max_batch` frames collected for at most `batch_wait_ms`, and these resources per replica (`replica_gpus`
    None: one GPU each where the cluster has GPUs)."""

    address: str | None = None
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    replica_cpus: float = 1.0
    replica_gpus: float | None = None

    def __post_init__(self) -> None:
        if self.address is not None and not _ADDRESS.fullmatch(self.address):
            raise AvatarifyError(f"--ray-address {self.address}: give auto or the head's HOST:PORT (e.g. 10.0.0.5:6379).")
        if self.replicas < 1:
            raise AvatarifyError(f"--replicas {self.replicas}: give at least 1.")
        low, high = self.autoscale or (1, 1)
        if not 0 <= low <= high or high < 1:
            raise AvatarifyError(f"--autoscale {low}..{high}: give MIN..MAX with MIN <= MAX and MAX at least 1.")
        if not 1 <= self.max_batch <= 256:
            raise AvatarifyError(f"--max-batch {self.max_batch}: give 1 to 256.")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise AvatarifyError(f"--batch-wait {self.batch_wait_ms:g}: give 0 to 1000 ms.")
        if self.replica_cpus < 0 or (self.replica_gpus is not None and self.replica_gpus < 0):
            raise AvatarifyError("--replica-cpus and --replica-gpus cannot be negative.")

    @property
    def where(self) -> str:
        """The cluster in words, for logs and the status report."""
        return "embedded Ray" if self.address is None else f"Ray at {self.address}"


def parse_autoscale(text: str) -> tuple[int, int]:
    """MIN..MAX as two numbers; ValueError with what is wrong."""
    low, separator, high = text.partition("..")
    if not separator or not low.isdigit() or not high.isdigit():
        raise ValueError(f"{text!r} is not MIN..MAX (e.g. 1..4)")
    return int(low), int(high)


def ray_installed() -> bool:
    """Whether Ray Serve (the `serve` extra) is importable here."""
    return importlib.util.find_spec("ray") is not None


def require_ray() -> None:
    """Raise AvatarifyError with what to do when Ray is missing."""
    if not ray_installed():
        raise AvatarifyError(RAY_NOT_INSTALLED)
