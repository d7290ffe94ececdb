"""A real GraphQL client (gql over aiohttp) against a test server's `/graphql`."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError


class Gql:
    def __init__(self, client: TestClient[Any, Any], token: str | None = None) -> None:
        self.url = str(client.make_url("/graphql"))
        self.headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        transport = AIOHTTPTransport(url=self.url, headers=self.headers, ssl=False)
        async with Client(transport=transport, execute_timeout=30) as session:
            result: dict[str, Any] = await session.execute(
                GraphQLRequest(query, variable_values=variables or None)
            )
            return result

    async def errors(self, query: str, **variables: Any) -> list[dict[str, Any]]:
        """The `errors` array of a query that must fail."""
        try:
            await self(query, **variables)
        except TransportQueryError as exc:
            return list(exc.errors or [])
        raise AssertionError("the query succeeded")


def codes(errors: list[dict[str, Any]]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]
