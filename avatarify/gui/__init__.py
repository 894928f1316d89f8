"""The desktop app, the only Qt code: a window that renders a session and hands the user's actions to it."""
