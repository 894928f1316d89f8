"""LivePortrait (Guo et al., 2024) inference networks in pure torch, loading the published weights unchanged.

Implicit 3-D keypoints with head pose and expression, a 3-D appearance feature volume warped by dense motion, a SPADE
decoder with 512x512 output, and a stitching network that keeps the shoulders still.

Import from the submodules: `model` (load_model), `predictor` (LivePortraitPredictor), `weights` (lookup and
download; no torch).
"""
