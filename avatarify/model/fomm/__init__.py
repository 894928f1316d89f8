"""First Order Motion Model (Siarohin et al., NeurIPS 2019) inference networks in pure torch."""
from .generator import OcclusionAwareGenerator, SourceEncoding
from .keypoints import KPDetector
from .model import DEFAULT_CONFIG, FOMM, build_networks, load_model, read_checkpoint, read_model_params
from .motion import normalize_kp

__all__ = [
    "DEFAULT_CONFIG",
    "FOMM",
    "KPDetector",
    "OcclusionAwareGenerator",
    "SourceEncoding",
    "build_networks",
    "load_model",
    "normalize_kp",
    "read_checkpoint",
    "read_model_params",
]
