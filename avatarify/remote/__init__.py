"""The remote GPU worker: run the model on another machine over ZeroMQ, with CurveZMQ keys."""
