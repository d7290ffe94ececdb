"""The app factory: one list of cleanup contexts, one per resource, in
dependency order, whether the media pool is the app's own or shared."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from aiohttp import web

from picshare.app import create_app
from picshare.config import Settings


def _contexts(app: web.Application) -> list[str]:
    return [getattr(ctx, "__name__", repr(ctx)) for ctx in app.cleanup_ctx]


def test_the_same_contexts_with_or_without_a_shared_media_pool(
    settings: Settings, media_pool: ProcessPoolExecutor
) -> None:
    shared = _contexts(create_app(settings, media_pool=media_pool))
    own = _contexts(create_app(settings))
    assert shared == own
    # The database first, the job runner's start last (after every service
    # registered its kinds), each resource in its own context.
    assert own[:2] == ["_redis", "_database"] and own[-1] == "_start_jobs"
    for resource in ("_redis", "_events", "_blobs", "media_workers", "_cached_reads", "_jobs"):
        assert own.count(resource) == 1, resource
