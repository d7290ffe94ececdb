"""Media: deciding what an upload is and rendering the JPEGs the site serves.

- ``probe_image``: content-based type detection, pixel limit, decode check.
- ``render_display``: the renditions and BlurHash a photo needs to be shown
  (``render_renditions`` / ``render_three``: all four / the three JPEGs).
- ``make_original``: the metadata-free upright original, lossless when it can be.
- ``create_media_pool``: the worker processes both run in; ``MediaWorkers``
  replaces that pool when a worker dies.

All failures caused by the uploaded file are ``MediaError`` with a ``kind``
the web layer maps to a status code.
"""

from picshare.media.blurhash_code import encode_blurhash
from picshare.media.errors import MediaError
from picshare.media.original import OriginalResult, make_original
from picshare.media.pool import create_media_pool
from picshare.media.probe import ACCEPTED, ProbeResult, ensure_plugins, probe_image
from picshare.media.renditions import (
    DisplayResult,
    RenderResult,
    RenditionSpec,
    render_display,
    render_renditions,
    render_three,
)
from picshare.media.workers import MediaWorkers, WorkersRestarted

__all__ = [
    "ACCEPTED",
    "DisplayResult",
    "MediaError",
    "MediaWorkers",
    "OriginalResult",
    "ProbeResult",
    "RenderResult",
    "RenditionSpec",
    "WorkersRestarted",
    "create_media_pool",
    "encode_blurhash",
    "ensure_plugins",
    "make_original",
    "probe_image",
    "render_display",
    "render_renditions",
    "render_three",
]
