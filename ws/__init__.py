"""The WebSocket hub (`/ws`): per-user connections fed by the event bus.

Empty until the live-notifications issue; the folder is part of the layout
so every layer has its place from the start.
"""
