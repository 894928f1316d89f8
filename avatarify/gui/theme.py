"""The window's look: Fusion style with a dark palette and a small style sheet."""
from __future__ import annotations

from PyQt5.QtGui import QColor, QPalette
from PyQt5.QtWidgets import QApplication

ACCENT = "#4fc3f7"

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: #1e2128; }}
QLabel {{ color: #e6e9ef; }}
QLabel#hint, QLabel#firstRunStatus {{ color: #9aa3b5; }}
QLabel#sectionTitle, QLabel#paneTitle {{ color: #e6e9ef; font-weight: 600; }}
QFrame#pane {{ background: #262a33; border: 1px solid #323745; border-radius: 8px; }}
QFrame#banner {{ background: #4a2a1f; border: 1px solid #b5533a; border-radius: 6px; }}
QLabel#bannerIcon {{ color: #ffb199; font-size: 16px; }}
QFrame#firstRun {{ background: #1f3140; border: 1px solid #2f6d91; border-radius: 8px; }}
QLabel#firstRunTitle {{ font-size: 15px; font-weight: 600; color: {ACCENT}; }}
QPushButton {{
    background: #323745; color: #e6e9ef; border: 1px solid #414859; border-radius: 5px; padding: 5px 12px;
}}
QPushButton:hover {{ background: #3b4252; }}
QPushButton:checked {{ background: #1f4f66; border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #6b7284; }}
QPushButton#primary {{ background: #1e88b5; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#primary:hover {{ background: #279bcb; }}
QPushButton#primary:disabled {{ background: #2a3440; border-color: #3a4556; color: #7d8596; }}
QFrame#problem {{ background: #4a2a1f; border: 1px solid #b5533a; border-radius: 6px; }}
QLabel#problemIcon {{ color: #ffb199; font-size: 16px; }}
QFrame#notice {{ background: #1f3140; border: 1px solid #2f6d91; border-radius: 6px; }}
QLabel#statsOverlay {{ background: rgba(0, 0, 0, 170); color: white; font-family: monospace; padding: 6px;
    border-radius: 4px; }}
QListWidget {{ background: #262a33; border: 1px solid #323745; border-radius: 8px; color: #cfd5e1; }}
QListWidget::item {{ border-radius: 6px; padding: 2px; }}
QListWidget::item:selected {{ background: #1f4f66; border: 2px solid {ACCENT}; color: white; }}
QListWidget::item:hover {{ background: #323745; }}
QStatusBar {{ background: #181a20; color: #b9c0cf; }}
QStatusBar QLabel#statusItem {{ padding: 0 10px; border-left: 1px solid #323745; color: #b9c0cf; }}
QStatusBar QLabel#statusItem[warning="true"] {{ color: #ffb74d; font-weight: 600; }}
QMenuBar {{ background: #181a20; color: #cfd5e1; }}
QMenuBar::item:selected {{ background: #323745; }}
QMenu {{ background: #262a33; color: #e6e9ef; border: 1px solid #323745; }}
QMenu::item:selected {{ background: #1f4f66; }}
QGroupBox {{ color: #e6e9ef; border: 1px solid #323745; border-radius: 6px; margin-top: 12px; padding-top: 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; }}
QProgressBar {{ border: 1px solid #2f6d91; border-radius: 4px; text-align: center; color: white; }}
QProgressBar::chunk {{ background: #1e88b5; }}
QToolTip {{ background: #262a33; color: #e6e9ef; border: 1px solid #414859; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    colors = {
        QPalette.Window: "#1e2128",
        QPalette.WindowText: "#e6e9ef",
        QPalette.Base: "#262a33",
        QPalette.AlternateBase: "#2c313c",
        QPalette.Text: "#e6e9ef",
        QPalette.Button: "#323745",
        QPalette.ButtonText: "#e6e9ef",
        QPalette.Highlight: "#1e88b5",
        QPalette.HighlightedText: "#ffffff",
        QPalette.ToolTipBase: "#262a33",
        QPalette.ToolTipText: "#e6e9ef",
        QPalette.PlaceholderText: "#7d8596",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
