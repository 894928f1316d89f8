"""The model layer, the only code that imports torch: FOMM, the predictor, devices, weights and loading.

Importing this package does not import torch; `create_predictor` does, and says what to do when it is missing.
"""
from .loader import MODEL_NOT_INSTALLED, ModelNotInstalledError, ModelOptions, create_predictor, model_installed, require_model

__all__ = [
    "MODEL_NOT_INSTALLED",
    "ModelNotInstalledError",
    "ModelOptions",
    "create_predictor",
    "model_installed",
    "require_model",
]
