"""avatarify: real-time photo avatars for video calls, driven by the First Order Motion Model."""

__version__ = "0.1.0"
