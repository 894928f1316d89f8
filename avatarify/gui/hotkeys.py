"""The one table of keyboard shortcuts: it drives the key bindings, the menus, the help dialog and tooltips."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Mapping

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QAction,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QShortcut,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)


@dataclass(frozen=True)
class Hotkey:
    """One action with its keys. `indexed` actions receive the position of the pressed key (0 for the first)."""

    action: str
    keys: tuple[str, ...]
    text: str
    menu: str
    indexed: bool = False
    checkable: bool = False
    # Window-level keys (quit, full screen, help) keep working while a text field is focused.
    while_typing: bool = False

    @property
    def key_text(self) -> str:
        """The keys as shown to the user, e.g. "C, X" or "1 … 9"."""
        if self.indexed:
            return f"{self.keys[0]} … {self.keys[-1]}"
        return ", ".join(QKeySequence(key).toString(QKeySequence.NativeText) for key in self.keys)

    @property
    def tooltip(self) -> str:
        return f"{self.text} ({self.key_text})"


HOTKEYS: tuple[Hotkey, ...] = (
    Hotkey("calibrate", ("C", "X"), "Calibrate: take your current pose as the neutral pose", "Pose"),
    Hotkey("find_best_frame", ("F",), "Find best frame: keep the frame whose pose matches the avatar best", "Pose", checkable=True),
    Hotkey("passthrough", ("0",), "Passthrough: send the camera unchanged", "Pose", checkable=True),
    Hotkey("previous_avatar", ("Left", "A"), "Previous avatar", "Avatar"),
    Hotkey("next_avatar", ("Right", "D"), "Next avatar", "Avatar"),
    Hotkey("select_avatar", tuple(str(n) for n in range(1, 10)), "Drive avatar 1 to 9 of the gallery", "Avatar", indexed=True),
    Hotkey("reload_avatars", ("L",), "Reload the avatar folders", "Avatar"),
    Hotkey("zoom_in", ("W",), "Zoom the crop in", "Crop"),
    Hotkey("zoom_out", ("S",), "Zoom the crop out", "Crop"),
    Hotkey("move_crop_up", ("Ctrl+Up", "U"), "Move the crop up", "Crop"),
    Hotkey("move_crop_down", ("Ctrl+Down", "J"), "Move the crop down", "Crop"),
    Hotkey("move_crop_left", ("Ctrl+Left", "H"), "Move the crop left", "Crop"),
    Hotkey("move_crop_right", ("Ctrl+Right", "K"), "Move the crop right", "Crop"),
    Hotkey("reset_crop", ("Shift+Z",), "Reset the crop", "Crop"),
    Hotkey("overlay_less", ("[",), "Avatar overlay on the preview: more transparent", "View"),
    Hotkey("overlay_more", ("]",), "Avatar overlay on the preview: more opaque", "View"),
    Hotkey("landmarks", ("O",), "Show face landmarks on the preview", "View", checkable=True),
    Hotkey("mirror_preview", ("R",), "Mirror the preview", "View", checkable=True),
    Hotkey("mirror_output", ("T",), "Mirror the output", "View", checkable=True),
    Hotkey("stats", ("I",), "Show timing statistics on the preview", "View", checkable=True),
    Hotkey("fullscreen", ("F11",), "Full screen", "View", checkable=True, while_typing=True),
    Hotkey("leave_fullscreen", ("Esc",), "Leave full screen (Esc never quits)", "View"),
    Hotkey("settings", ("Ctrl+,",), "Settings…", "App", while_typing=True),
    Hotkey("help", ("F1",), "Keyboard shortcuts", "App", while_typing=True),
    Hotkey("about", ("Ctrl+I",), "About avatarify: version, licences, folders", "App", while_typing=True),
    Hotkey("quit", ("Ctrl+Q",), "Quit", "App", while_typing=True),
)

MENUS: tuple[str, ...] = ("Avatar", "Pose", "Crop", "View", "App")
# Toggles and one-shot actions: holding the key must not flip them back and forth.
NO_REPEAT = {"calibrate", "passthrough", "find_best_frame", "fullscreen", "leave_fullscreen", "quit", "about"}

_BY_ACTION = {hotkey.action: hotkey for hotkey in HOTKEYS}

_TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)


def hotkey(action: str) -> Hotkey:
    """The table entry of an action."""
    return _BY_ACTION[action]


def tooltip(action: str) -> str:
    """Tooltip text for a control that runs `action`, naming its keys."""
    return _BY_ACTION[action].tooltip


def text_input_has_focus() -> bool:
    """Whether the focused widget takes typed text (so single-key shortcuts must stay quiet)."""
    widget = QApplication.focusWidget()
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, _TEXT_INPUTS)


def _guarded(hotkey_: Hotkey, handler: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        if hotkey_.while_typing or not text_input_has_focus():
            handler()

    return run


def install_shortcuts(window: QWidget, handlers: Mapping[str, Callable[..., None]]) -> list[QShortcut]:
    """Bind every key of the table on `window`; indexed actions get the key's position as argument."""
    shortcuts = []
    for entry in HOTKEYS:
        for position, key in enumerate(entry.keys):
            handler = partial(handlers[entry.action], position) if entry.indexed else handlers[entry.action]
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.WindowShortcut)
            shortcut.setAutoRepeat(entry.action not in NO_REPEAT)
            shortcut.activated.connect(_guarded(entry, handler))
            shortcuts.append(shortcut)
    return shortcuts


def create_action(parent: QWidget, action: str, handler: Callable[[], None]) -> QAction:
    """A menu action for a table entry, showing its keys. The window's shortcuts do the binding
    (`install_shortcuts`); the action's own keys only act while its menu is open, as mnemonics do."""
    entry = _BY_ACTION[action]
    qaction = QAction(entry.text, parent)
    qaction.setShortcuts([QKeySequence(key) for key in entry.keys])
    qaction.setShortcutContext(Qt.WidgetShortcut)
    qaction.setToolTip(entry.tooltip)
    qaction.setCheckable(entry.checkable)
    qaction.triggered.connect(lambda _checked=False: handler())
    return qaction


class HotkeyHelpDialog(QDialog):
    """The table of keyboard shortcuts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(HOTKEYS), 3, self)
        table.setHorizontalHeaderLabels(["Keys", "Action", "Group"])
        for row, entry in enumerate(HOTKEYS):
            for column, text in enumerate((entry.key_text, entry.text, entry.menu)):
                table.setItem(row, column, QTableWidgetItem(text))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.NoSelection)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeToContents)
        table.setFocusPolicy(Qt.NoFocus)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(860, 840)
