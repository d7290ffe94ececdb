"""Checks a real response against `/openapi.json`: its status is declared for
the operation, its media type for that status, and a JSON body is valid
against the declared schema (JSON Schema 2020-12, as OpenAPI 3.1 says)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import orjson

JSON_TYPES = ("application/json", "application/problem+json")


class Conformance:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        # Literal paths win over templated ones (`/api/v1/photos` vs `{id}`);
        # a parameter is one path segment, or failing that any run of them
        # (the media key, `r/<hash>.jpg`).
        templates = sorted(spec["paths"], key=lambda p: (p.count("{"), -len(p)))
        self._paths = [
            (re.compile("^" + re.sub(r"\\\{\w+\\\}", part, re.escape(p)) + "$"), p)
            for part in ("[^/]+", ".+")
            for p in templates
        ]
        self.seen: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for pattern, template in self._paths:
            if pattern.match(path):
                ops = self.spec["paths"][template]
                assert method.lower() in ops, f"{method} {template} is not in the document"
                return template, ops[method.lower()]
        raise AssertionError(f"{method} {path} matches no path of the document")

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        template, op = self.operation(method, path)
        where = f"{method} {template} -> {status}"
        responses = op["responses"]
        assert str(status) in responses, f"{where}: undeclared (declared {sorted(responses)})"
        self.seen.add((method, template, status))
        declared = responses[str(status)].get("content")
        if not declared or method == "HEAD":
            return  # no body declared: aiohttp's plain-text reason for a redirect
        assert content_type in declared, f"{where}: {content_type} not in {sorted(declared)}"
        schema = declared[content_type].get("schema")
        if content_type not in JSON_TYPES or not schema:
            return
        instance = orjson.loads(body)
        validator = jsonschema_rs.validator_for(
            {**schema, "components": self.spec["components"]}, validate_formats=True
        )
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(instance)]
        assert not errors, f"{where}: body does not match the document: {errors[:5]}"
