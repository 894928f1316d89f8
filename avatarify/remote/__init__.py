"""The remote GPU worker: run the model on another machine over ZeroMQ, with CurveZMQ keys."""

DEFAULT_BIND = "tcp://127.0.0.1:5557"
# Clients send a heartbeat every half second; one silent this long has gone away.
CLIENT_TIMEOUT = 10.0
