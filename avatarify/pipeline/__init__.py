"""The real-time loop without a window: camera -> face crop -> model -> virtual camera, as four stages.

Qt-free and torch-free; a session builds one and hands it its parts (`Pipeline.set_camera`, `set_predictor`, ...).
"""
from .frames import PipelineFrame, PipelineStats
from .pipeline import Pipeline
from .state import Avatar

__all__ = ["Avatar", "Pipeline", "PipelineFrame", "PipelineStats"]
