"""The desktop app: a PyQt5 window over the real-time pipeline (a thin view: widgets in, frames out)."""
