"""The GraphiQL page at `GET /graphql` for browsers (Accept: text/html, no query).

Its scripts and styles are PicShare's own static files
(templates/static/graphiql/, vendored from the npm packages with their
licences), so nothing loads from a CDN. The site's Content-Security-Policy
holds for it unchanged but for one relaxation on this page only: GraphiQL's
stylesheet embeds its fonts as `data:` URLs, so `font-src` allows `data:`.
No inline script runs (init.js is a file), so no nonce is needed.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from handlers.middlewares import CSP
from picshare import keys

PAGE_CSP = f"{CSP}; font-src 'self' data:"
_ASSETS = "graphiql/"


def page(request: web.Request) -> web.Response:
    def static(name: str) -> str:
        return escape(str(request.app.router["static"].url_for(filename=_ASSETS + name)))

    csrf = escape(request.get(keys.CSRF_TOKEN, ""))
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>PicShare GraphQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{static("graphiql.min.css")}">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql" data-endpoint="{escape(request.path)}" data-csrf="{csrf}">Loading GraphiQL…</div>
<script src="{static("react.production.min.js")}"></script>
<script src="{static("react-dom.production.min.js")}"></script>
<script src="{static("graphiql.min.js")}"></script>
<script src="{static("init.js")}"></script>
</body>
</html>
"""
    response = web.Response(text=html, content_type="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response
