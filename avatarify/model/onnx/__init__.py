"""The ONNX backend: the FOMM networks exported to ONNX and run by ONNX Runtime's execution providers (TensorRT,
CUDA, DirectML, CoreML, CPU) or by OpenVINO.

`graphs` exports, `cache` keeps the exports beside the user's weights, `check` compares them with torch,
`runtime` opens them on a provider, `predictor` animates with them. Importing this package imports neither
torch nor ONNX Runtime; its modules do.
"""
