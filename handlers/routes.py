"""Every route, named, with the metadata `/openapi.json` is built from.

One table serves both: the router is filled from it, and the OpenAPI document
describes exactly what the router has (a test checks that no route is missing).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

from handlers import (
    api_account,
    api_inbox,
    api_moderation,
    api_payments,
    api_photos,
    api_social,
    api_webhooks,
    media,
    ops,
    pages,
    pages_browse,
    pages_photo,
    pages_profile,
    pages_wallet,
    pages_webhooks,
)
from handlers.graphql import view as graphql_view
from handlers.middlewares import layered
from handlers.route_info import register, register_static
from handlers.static_files import StaticFiles
from handlers.unmatched import Unmatched
from picshare.routing import Idempotency, RouteTable
from picshare.services import Owner, serves
from ws import handler as ws_handler

API = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Limit = Literal["by_method", "reads", "uploads", "login", "none"]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    summary: str
    tag: str
    auth: bool = False
    body: str | None = None  # component schema name of a JSON body, or "multipart"
    response: str | None = None  # component schema name of the success body
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[str, ...] = ()
    required_query: tuple[str, ...] = ()
    in_api: bool = True
    aliases: tuple[str, ...] = field(default=())
    # How the middlewares treat the route, said here once rather than guessed
    # from its path per request (handlers/route_info.py):
    # - surface: "page" routes answer a browser's errors with an HTML page;
    #   "api" routes always with problem+json, and want the CSRF header on
    #   cookie-authenticated unsafe requests.
    # - limit: the rate-limit class; "by_method" is reads for GET and HEAD,
    #   writes otherwise; "reads" whatever the method (GraphQL, which charges
    #   its mutations to writes itself); "none" for probes and media.
    # - credentials: read the bearer token or session cookie (probes, metrics
    #   and media need no identity and cost no database work).
    # - security: an OpenAPI security scheme of its own instead of the user's
    #   (the moderation callback's token).
    # - idempotency: whether an Idempotency-Key is honoured ("optional"),
    #   demanded ("required": 400 without one) or ignored ("none"); reads and
    #   pages always ignore it (handlers/route_info.py).
    surface: Literal["api", "page"] = "api"
    limit: Limit = "by_method"
    credentials: bool = True
    idempotency: Idempotency = "optional"
    security: str | None = None
    # The service that owns the route (picshare/services.py): only its
    # processes (and `all`) register it, and the gateway sends it there;
    # "each" for the probes every process answers itself.
    service: Owner = field(kw_only=True)


def _page(
    method: str,
    path: str,
    handler: Handler,
    name: str,
    summary: str,
    *,
    body: str | None = None,
    errors: tuple[int, ...] = (),
    query: tuple[str, ...] = (),
    limit: Limit = "by_method",
) -> Route:
    """An HTML page. `body` names its form's schema; `errors` are the statuses
    it may answer besides 200 (GET) or 303 (a form's POST-redirect-GET), 303
    included for pages that send anonymous visitors to log in first. What
    every page or form answers (400/403/413/415 of a form, 401, 429) is added
    by `handlers/openapi.py`."""
    return Route(
        method,
        path,
        handler,
        name,
        summary,
        "pages",
        body=body,
        errors=errors,
        query=query,
        in_api=False,
        surface="page",
        limit=limit,
        service="web",
    )


# Social pages and their forms (HTML; every POST answers 303 See Other).
# fmt: off
PAGE_ROUTES: tuple[Route, ...] = (
    _page("GET", "/p/{id}", pages_photo.photo_page, "page.photo", "A photo with its comments",
          errors=(404,), query=("cursor",)),
    _page("POST", "/p/{id}/like", pages_photo.like, "page.photo.like", "Like",
          body="NextForm", errors=(404,)),
    _page("POST", "/p/{id}/unlike", pages_photo.unlike, "page.photo.unlike", "Unlike",
          body="NextForm", errors=(404,)),
    _page("POST", "/p/{id}/comments", pages_photo.add_comment, "page.comment.add", "Comment",
          body="CommentForm", errors=(404,)),
    _page("POST", "/p/{id}/delete", pages_photo.delete_photo, "page.photo.delete",
          "Delete your photo", body="CsrfForm", errors=(404,)),
    _page("POST", "/comments/{id}/delete", pages_photo.delete_comment, "page.comment.delete",
          "Delete a comment", body="NextForm", errors=(404,)),
    _page("GET", "/u/{username}", pages_profile.profile_page, "page.profile", "A profile",
          errors=(404,), query=("cursor",)),
    _page("POST", "/u/{username}/follow", pages_profile.follow, "page.follow",
          "Follow, or ask to", body="NextForm", errors=(404,)),
    _page("POST", "/u/{username}/unfollow", pages_profile.unfollow, "page.unfollow",
          "Unfollow, or withdraw the request", body="NextForm", errors=(404,)),
    _page("POST", "/u/{username}/requests/{requester}/approve", pages_profile.approve_request,
          "page.request.approve", "Approve a follow request", body="CsrfForm", errors=(404,)),
    _page("POST", "/u/{username}/requests/{requester}/decline", pages_profile.decline_request,
          "page.request.decline", "Decline a follow request", body="CsrfForm", errors=(404,)),
    _page("GET", "/tags/{tag}", pages_browse.tag_page, "page.tag", "A tag's photos",
          errors=(404,), query=("cursor",)),
    _page("GET", "/search", pages_browse.search_page, "page.search", "Search",
          errors=(400,), query=("q",)),
    _page("GET", "/notifications", pages_browse.notifications_page, "page.notifications",
          "Your notifications", errors=(303,), query=("cursor",)),
    _page("POST", "/notifications/read", pages_browse.mark_read, "page.notifications.read",
          "Mark notifications read", body="MarkReadForm"),
    _page("GET", "/settings", pages_profile.settings_page, "page.settings", "Your settings",
          errors=(303,), query=("saved",)),
    _page("POST", "/settings", pages_profile.settings_submit, "page.settings.submit",
          "Save your settings", body="SettingsForm"),
    _page("POST", "/settings/webhooks", pages_webhooks.add_webhook, "page.webhooks.add",
          "Add a webhook endpoint: the settings page, with its secret shown once",
          body="WebhookForm", errors=(200,)),
    _page("POST", "/settings/webhooks/{id}/delete", pages_webhooks.delete_webhook,
          "page.webhooks.delete", "Delete a webhook endpoint", body="CsrfForm",
          errors=(404,)),
    _page("GET", "/wallet", pages_wallet.wallet_page, "page.wallet",
          "Your wallet: balance, top-up, tips, recent transfers", errors=(303,),
          query=("done",)),
    _page("POST", "/wallet/topup", pages_wallet.topup_submit, "page.wallet.topup",
          "Top up your wallet", body="TopupForm"),
    _page("POST", "/wallet/tip", pages_wallet.tip_submit, "page.wallet.tip", "Send a tip",
          body="TipForm", errors=(404, 409)),
    _page("GET", "/system", ops.system_page, "page.system",
          "The running site (admins, or from this machine)", errors=(403,)),
)

# fmt: on


# fmt: off
SOCIAL_ROUTES: tuple[Route, ...] = (
    Route("GET", f"{API}/feed", api_photos.feed, "api.feed",
          "Your home feed: you and the people you follow, newest first", "photos",
          auth=True, response="PhotoPage", errors=(400, 401), query=("limit", "cursor"),
          service="photos"),
    Route("GET", f"{API}/tags/{{tag}}/photos", api_photos.tag_photos, "api.tag.photos",
          "Photos with a tag that you may see", "photos", response="PhotoPage",
          errors=(400, 404), query=("limit", "cursor"), service="photos"),
    Route("PUT", f"{API}/photos/{{id}}/like", api_social.like, "api.like", "Like (idempotent)",
          "social", auth=True, response="LikeState", errors=(401, 404), service="photos"),
    Route("DELETE", f"{API}/photos/{{id}}/like", api_social.unlike, "api.unlike",
          "Unlike (idempotent)", "social", auth=True, response="LikeState", errors=(401, 404),
          service="photos"),
    Route("GET", f"{API}/photos/{{id}}/comments", api_social.list_comments, "api.comments",
          "A photo's comments, newest first", "social", response="CommentPage",
          errors=(400, 404), query=("limit", "cursor"), service="photos"),
    Route("POST", f"{API}/photos/{{id}}/comments", api_social.add_comment, "api.comment.add",
          "Comment on a photo", "social", auth=True, body="CommentRequest", response="Comment",
          status=201, errors=(400, 401, 404), service="photos"),
    Route("DELETE", f"{API}/comments/{{id}}", api_social.delete_comment, "api.comment.delete",
          "Delete a comment (its author or the photo's owner)", "social", auth=True,
          status=204, errors=(401, 403, 404), service="photos"),
    Route("GET", f"{API}/users/{{username}}", api_social.get_profile, "api.profile",
          "A profile with counts and how you stand", "users", response="Profile",
          errors=(404,), service="auth"),
    Route("PUT", f"{API}/users/{{username}}/follow", api_social.follow, "api.follow",
          "Follow (a request, for private accounts); idempotent", "social", auth=True,
          response="Profile", errors=(400, 401, 404), service="auth"),
    Route("DELETE", f"{API}/users/{{username}}/follow", api_social.unfollow, "api.unfollow",
          "Unfollow or withdraw a request; idempotent", "social", auth=True,
          response="Profile", errors=(401, 404), service="auth"),
    Route("GET", f"{API}/users/{{username}}/followers", api_social.followers, "api.followers",
          "Who follows a user", "social", response="UserPage", errors=(400, 404),
          query=("limit", "cursor"), service="auth"),
    Route("GET", f"{API}/users/{{username}}/following", api_social.following, "api.following",
          "Whom a user follows", "social", response="UserPage", errors=(400, 404),
          query=("limit", "cursor"), service="auth"),
    Route("GET", f"{API}/me/follow-requests", api_social.follow_requests, "api.requests",
          "Pending requests to follow you", "social", auth=True, response="UserPage",
          errors=(400, 401), query=("limit", "cursor"), service="auth"),
    Route("POST", f"{API}/me/follow-requests/{{username}}/approve", api_social.approve_request,
          "api.request.approve", "Approve a follow request", "social", auth=True, status=204,
          errors=(401, 404), service="auth"),
    Route("POST", f"{API}/me/follow-requests/{{username}}/decline", api_social.decline_request,
          "api.request.decline", "Decline a follow request", "social", auth=True, status=204,
          errors=(401, 404), service="auth"),
    Route("GET", f"{API}/search", api_inbox.search, "api.search",
          "Users, tags and photos matching q", "search", response="SearchResult",
          errors=(400,), query=("q",), required_query=("q",), service="search"),
    Route("GET", f"{API}/notifications", api_inbox.notifications, "api.notifications",
          "Your notifications, newest first, with the unread count", "notifications",
          auth=True, response="NotificationPage", errors=(400, 401), query=("limit", "cursor"),
          service="notifications"),
    Route("POST", f"{API}/notifications/read", api_inbox.mark_read, "api.notifications.read",
          "Mark notifications read (all, or up to an id)", "notifications", auth=True,
          body="MarkRead", response="MarkedRead", errors=(400, 401), service="notifications"),
)

# The payments ledger: on the primary only, so 503 while it is unreachable.
PAYMENT_ROUTES: tuple[Route, ...] = (
    Route("GET", f"{API}/wallet", api_payments.get_wallet, "api.wallet",
          "Your balance", "payments", auth=True, response="Wallet", errors=(401, 503),
          service="auth"),
    Route("POST", f"{API}/wallet/topup", api_payments.topup, "api.wallet.topup",
          "Add credit from the stand-in payment provider (capped)", "payments", auth=True,
          body="TopupRequest", response="Receipt", status=201, errors=(400, 401, 503),
          idempotency="required", service="auth"),
    Route("POST", f"{API}/payments/tips", api_payments.tip, "api.tips",
          "Tip another user, optionally for one of their photos", "payments", auth=True,
          body="TipRequest", response="Receipt", status=201,
          errors=(400, 401, 404, 409, 503), idempotency="required", service="auth"),
)

# The moderation service's callback (picshare/moderation.py). It carries the
# moderation token, not a user's: user credentials are not read, so that
# token is not taken for an unknown user token (and no Idempotency-Key: a
# repeat of a verdict records it again, which changes nothing).
MODERATION_ROUTES: tuple[Route, ...] = (
    Route("POST", f"{API}/moderation/{{id}}", api_moderation.verdict, "api.moderation",
          "The moderation service's verdict on a photo (the latest verdict wins)",
          "moderation", body="ModerationVerdict", response="ModerationResult",
          errors=(400, 401, 403, 404), credentials=False, security="moderation",
          service="photos"),
    Route("GET", f"{API}/moderation/{{id}}/upload", api_moderation.upload,
          "api.moderation.upload",
          "The photo as uploaded, for the moderation service to look at (its token only)",
          "moderation", errors=(401, 403, 404), credentials=False, security="moderation",
          service="photos", idempotency="none"),
)

# A user's webhooks (README, "Webhooks"): signed in, owner only (404 otherwise).
WEBHOOK_ROUTES: tuple[Route, ...] = (
    Route("POST", f"{API}/webhooks", api_webhooks.create, "api.webhooks.create",
          "Register a webhook endpoint; its signing secret is in this answer only",
          "webhooks", auth=True, body="WebhookRequest", response="WebhookCreated",
          status=201, errors=(400, 401, 409),
          idempotency="none",  # its answer holds the secret: never stored
          service="notifications"),
    Route("GET", f"{API}/webhooks", api_webhooks.list_endpoints, "api.webhooks",
          "Your webhook endpoints (no secrets)", "webhooks", auth=True,
          response="WebhookList", errors=(401,), service="notifications"),
    Route("DELETE", f"{API}/webhooks/{{id}}", api_webhooks.delete, "api.webhooks.delete",
          "Delete one of your webhook endpoints", "webhooks", auth=True, status=204,
          errors=(401, 404), service="notifications"),
    Route("GET", f"{API}/webhooks/{{id}}/deliveries", api_webhooks.deliveries,
          "api.webhooks.deliveries", "An endpoint's delivery log, newest attempt first",
          "webhooks", auth=True, response="WebhookDeliveryPage", errors=(400, 401, 404),
          query=("limit", "cursor"), service="notifications"),
)
# fmt: on


ROUTES: tuple[Route, ...] = (
    *SOCIAL_ROUTES,
    *PAYMENT_ROUTES,
    *MODERATION_ROUTES,
    *WEBHOOK_ROUTES,
    Route(
        "POST",
        f"{API}/auth/signup",
        api_account.signup,
        "api.signup",
        "Create an account",
        "auth",
        body="SignupRequest",
        response="SignedIn",
        status=201,
        errors=(400, 409),
        limit="login",  # sign-up hashes a password too: limited per client IP
        idempotency="none",  # its answer holds a token: never stored
        service="auth",
    ),
    Route(
        "POST",
        f"{API}/auth/login",
        api_account.login,
        "api.login",
        "Sign in, get a token",
        "auth",
        body="LoginRequest",
        response="SignedIn",
        errors=(400, 401),
        limit="login",
        idempotency="none",  # its answer holds a token: never stored
        service="auth",
    ),
    Route(
        "POST",
        f"{API}/auth/logout",
        api_account.logout,
        "api.logout",
        "Revoke this token or session",
        "auth",
        auth=True,
        status=204,
        errors=(401,),
        service="auth",
    ),
    Route(
        "GET",
        f"{API}/me",
        api_account.get_me,
        "api.me",
        "The signed-in user",
        "users",
        auth=True,
        response="Me",
        errors=(401,),
        service="auth",
    ),
    Route(
        "PATCH",
        f"{API}/me",
        api_account.patch_me,
        "api.me.update",
        "Edit your profile",
        "users",
        auth=True,
        body="ProfileUpdate",
        response="Me",
        errors=(400, 401),
        service="auth",
    ),
    Route(
        "GET",
        f"{API}/photos",
        api_photos.list_photos,
        "api.photos",
        "Newest public photos",
        "photos",
        response="PhotoPage",
        errors=(400, 404),
        query=("limit", "cursor", "user", "tag"),
        service="photos",
    ),
    Route(
        "POST",
        f"{API}/upload",
        api_photos.upload,
        "api.upload",
        "Upload a photo",
        "photos",
        auth=True,
        body="multipart",
        response="Photo",
        status=201,
        errors=(400, 401, 413, 415, 422),
        aliases=(f"{API}/photos",),
        limit="uploads",
        service="photos",
    ),
    Route(
        "GET",
        f"{API}/photos/{{id}}",
        api_photos.get_photo,
        "api.photo",
        "One photo",
        "photos",
        response="Photo",
        errors=(404,),
        service="photos",
    ),
    Route(
        "DELETE",
        f"{API}/photo/{{id}}",
        api_photos.delete_photo,
        "api.photo.delete",
        "Delete your photo and its files",
        "photos",
        auth=True,
        status=204,
        errors=(401, 403, 404),
        aliases=(f"{API}/photos/{{id}}",),
        service="photos",
    ),
    Route(
        "GET",
        f"{API}/users/{{username}}/photos",
        api_photos.user_photos,
        "api.user.photos",
        "A user's photos",
        "photos",
        response="PhotoPage",
        errors=(400, 404),
        query=("limit", "cursor"),
        service="photos",
    ),
    Route(
        "GET",
        "/healthz",
        ops.healthz,
        "healthz",
        "The process is alive",
        "operations",
        response="Health",
        limit="none",
        credentials=False,
        service="each",
    ),
    Route(
        "GET",
        "/readyz",
        ops.readyz,
        "readyz",
        "Database and blob store reachable",
        "operations",
        response="Health",
        errors=(503,),
        limit="none",
        credentials=False,
        service="each",
    ),
    Route(
        "GET",
        "/metrics",
        ops.metrics,
        "metrics",
        "Prometheus metrics",
        "operations",
        limit="none",
        credentials=False,
        service="each",
    ),
    Route(
        "GET",
        f"{API}/system",
        ops.system_json,
        "api.system",
        "The running site: processes, databases, queues, cache, sockets (admins, or local)",
        "operations",
        response="System",
        errors=(403,),
        service="web",  # beside its page
    ),
    Route(
        "GET",
        "/ws",
        ws_handler.websocket,
        "ws",
        "Live notifications over a WebSocket (JSON text frames; ?since=, ?token=)",
        "notifications",
        auth=True,
        errors=(400, 401, 403),
        query=("since", "token"),
        service="notifications",
    ),
    # GraphQL describes its schema itself (introspection); the document
    # says what the endpoint takes and answers. Errors of an operation are in
    # the `errors` array of a 200; problem details only for what never ran.
    Route(
        "GET",
        "/graphql",
        graphql_view.graphql,
        "graphql",
        "GraphQL queries (?query=), the graphql-transport-ws WebSocket, GraphiQL for browsers",
        "graphql",
        response="GraphQLResponse",
        errors=(400, 403, 405),
        query=("query", "variables", "operationName", "token"),
        limit="reads",
        service="notifications",
    ),
    Route(
        "POST",
        "/graphql",
        graphql_view.graphql,
        "graphql.post",
        "GraphQL queries and mutations",
        "graphql",
        body="GraphQLRequest",
        response="GraphQLResponse",
        errors=(400, 403, 415),
        idempotency="none",  # an operation is not one write to replay
        # Queries are reads, POSTed or not; mutations are charged to writes
        # by handlers/graphql/limits.py, and every operation by its cost.
        limit="reads",
        service="notifications",
    ),
    Route(
        "GET",
        "/openapi.json",
        ops.openapi_json,
        "openapi",
        "This document",
        "operations",
        service="web",
    ),
    Route(
        "GET",
        "/docs",
        ops.docs,
        "docs",
        "Human-readable API documentation",
        "operations",
        in_api=False,
        surface="page",
        service="web",
    ),
    Route(
        "GET",
        "/media/{key:r/[0-9a-f]{64}\\.jpg}",
        media.serve_media,
        "media",
        "A rendition (immutable; ETag, 304, Range)",
        "media",
        errors=(404, 416, 503),
        query=("exp", "sig"),
        limit="none",
        credentials=False,  # private media carry their own signature
        service="photos",
    ),
    # Pages (HTML, server-rendered); described in the document beside the API.
    _page("GET", "/", pages.index, "page.index", "Home", query=("cursor", "view")),
    _page("GET", "/signup", pages.signup_form, "page.signup", "Sign up"),
    _page(
        "POST",
        "/signup",
        pages.signup_submit,
        "page.signup.submit",
        "Create an account",
        body="SignupForm",
        errors=(409,),
        limit="login",
    ),
    _page("GET", "/login", pages.login_form, "page.login", "Log in", query=("next",)),
    _page(
        "POST",
        "/login",
        pages.login_submit,
        "page.login.submit",
        "Sign in",
        body="LoginForm",
        errors=(401,),
        limit="login",
    ),
    _page("GET", "/logout", pages.logout_form, "page.logout", "Log out"),
    _page(
        "POST", "/logout", pages.logout_submit, "page.logout.submit", "Sign out", body="CsrfForm"
    ),
    _page("GET", "/upload", pages.upload_form, "page.upload", "Upload", errors=(303,)),
    _page(
        "POST",
        "/upload",
        pages.upload_submit,
        "page.upload.submit",
        "Upload a photo",
        body="UploadForm",
        errors=(408, 422),
        limit="uploads",
    ),
    *PAGE_ROUTES,
)


def setup_routes(
    app: web.Application,
    table: RouteTable,
    *,
    role: str = "all",
    handler_of: Callable[[Route], Handler] | None = None,
    static: Handler | None = None,
    chain: Sequence[Middleware] = (),
) -> None:
    """Fill the router from ROUTES, and `table` with what middlewares need of each route.

    `chain`: the app's middlewares (outermost first), put around each
    handler here, once (`handlers.middlewares.layered`), rather than given
    to the app; the last resource then takes what no route matched
    (handlers/unmatched.py), so that the router's 404 and 405 pass them too.

    `role` is the process's service (picshare/services.py): only the routes
    it owns are added. The gateway adds every route, each answered by
    `handler_of(route)` (a proxy to its owner), and `static` for the static
    files (the web service's).

    Routes of one path share one resource (named after the first route on
    it). The router tries the resources under one fixed prefix one by one,
    each a coroutine and a regex, in the order they were added: resources
    are added plain paths first, then by their number of segments
    (`_resolve_order`), so `GET /api/v1/photos` and `/api/v1/photos/{id}`
    are tried before the like and comment routes beside them."""
    everything = role == "gateway"
    served = [route for route in ROUTES if everything or serves(role, route.service)]
    names: dict[str, str] = {}
    for route in served:
        for i, path in enumerate((route.path, *route.aliases)):
            names.setdefault(path, route.name if i == 0 else f"{route.name}.alias{i}")
    resources = {
        path: app.router.add_resource(path, name=names[path])
        for path in sorted(names, key=_resolve_order)
    }
    for route in served:
        handler = layered(route.handler if handler_of is None else handler_of(route), chain)
        for path in (route.path, *route.aliases):
            resource = resources[path]
            added = [resource.add_route(route.method, handler)]
            if route.method == "GET":  # GET answers HEAD too
                added.append(resource.add_route("HEAD", handler))
            for aiohttp_route in added:
                register(
                    table,
                    aiohttp_route,
                    name=route.name,
                    surface=route.surface,
                    limit=route.limit,
                    credentials=route.credentials,
                    idempotency=route.idempotency,
                    streamed_body=route.body == "multipart",
                )
    if static is not None:
        resource = app.router.add_resource("/static/{path:.+}", name="static")
        static = layered(static, chain)
        resource.add_route("GET", static)
        resource.add_route("HEAD", static)
        register_static(table, resource)
    else:
        # Every service has them: its pages (error pages included) and
        # GraphiQL build their versioned URLs from this resource; behind the
        # gateway only the web service is asked for them.
        files = static_files()
        files.layer(functools.partial(layered, chain=chain))
        app.router.register_resource(files)
        register_static(table, files)
    if chain:
        app.router.register_resource(Unmatched(functools.partial(layered, chain=chain)))


def static_files() -> StaticFiles:
    """The static-file resource: serves `/static/*`, and builds its versioned URLs
    (the gateway uses it for the URLs only; the files come from web)."""
    return StaticFiles("/static", _static_dir(), name="static", append_version=True)


def _resolve_order(path: str) -> tuple[bool, int]:
    """Plain paths, then fewer segments first (a stable sort keeps the table's
    order otherwise). It changes no answer: a plain path beats a pattern that
    would match it, as it did, and patterns of different segment counts never
    match the same path (a `{name}` stops at "/"; the one pattern with a
    regex of its own, media's, is alone under its prefix)."""
    return "{" in path, path.count("/")


def _static_dir() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "templates" / "static")
