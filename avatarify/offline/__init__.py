"""Offline rendering: a photo animated by a driving video into a file (`animate.animate_video`)."""
from .animate import animate_video

__all__ = ["animate_video"]
