"""The real-time pipeline without a window: camera -> face crop -> predictor -> virtual camera.

Everything here is Qt-free; the desktop window and `avatarify run` both drive `Pipeline`.
"""
