"""HTTP only: REST handlers, HTML pages, middlewares. No SQL here."""
