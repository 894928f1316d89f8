"""The status bar: every part's state, always, in a few words; warnings stand out."""
from __future__ import annotations

from PyQt5.QtWidgets import QLabel, QStatusBar, QWidget

from ..core.status import COMPONENTS, ComponentStatus, State
from ..pipeline.frames import PipelineStats
from .problems import NAMES

# Parts that are not always in play: their label is hidden while they are off.
OPTIONAL = {"worker", "landmarks"}


def describe(component: str, status: ComponentStatus, stats: PipelineStats | None, idle: str = "") -> str:
    """The label text for one component: its state, with live figures while it runs."""
    name = NAMES[component]
    if status.state is State.OFF:
        return f"{name}: off"
    if status.state is State.STARTING:
        return f"{name}: starting…"
    if status.state is State.FAILED:
        return f"{name}: not available"
    if component == "camera" and stats is not None:
        return f"{name}: {status.message} · {stats.camera_fps:.0f} fps"
    if component == "model":
        if idle:
            return f"{name}: {idle}"
        if stats is not None and stats.model_fps > 0:
            return f"{name}: {stats.device} · {stats.model_fps:.1f} fps · {stats.model_ms:.0f} ms"
        return f"{name}: ready"
    if component == "vcam":
        return status.message
    return f"{name}: {status.message}"


class StatusLine:
    """One label per component in `bar`; `update` refreshes them all."""

    def __init__(self, bar: QStatusBar, parent: QWidget) -> None:
        self.labels: dict[str, QLabel] = {}
        for component in COMPONENTS:
            label = QLabel(parent)
            label.setObjectName("statusItem")
            bar.addPermanentWidget(label)
            self.labels[component] = label

    def update(self, statuses: dict[str, ComponentStatus], stats: PipelineStats | None, idle: str = "") -> None:
        """`idle` says why the model is not animating though it runs (passthrough, paused)."""
        for component, label in self.labels.items():
            status = statuses.get(component, ComponentStatus())
            text = describe(component, status, stats, idle)
            warning = status.failed or (component == "model" and bool(status.detail) and status.state is State.RUNNING)
            label.setVisible(not (component in OPTIONAL and status.state is State.OFF))
            label.setToolTip(status.detail or status.message)
            if label.text() != text or label.property("warning") != warning:
                label.setText(text)
                label.setProperty("warning", warning)
                label.style().unpolish(label)
                label.style().polish(label)
