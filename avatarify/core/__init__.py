"""The core layer, numpy and OpenCV only: what every other layer builds on.

`frame` (the frame contract and the predictor protocol), `settings` and `settings_file` (the one settings record),
`status` (what each part reports), `errors`, `files`, `paths`, `images`, `faces`, `video`, `download`, `retry`.
"""
