"""How deep and how costly an operation is, refused past the limits before it
runs, and charged to the rate limiter by its cost.

Cost estimates the nodes an operation may return: every field counts once per
parent node, and a connection (a field selecting `edges`) multiplies what is
below it by its `first` (the default page size when absent; a `first` given
by a variable counts with that variable's value). So
`feed(first: 20) { edges { node { owner { username } comments(first: 3) {...} } } }`
costs about 20 * (owner + 3 comments), and `first: 100` nested in
`first: 100` is refused at once rather than run. Introspection fields
(`__schema`, `__type`) count neither depth nor cost: GraphiQL's own
introspection query is deeper than any data query needs to be.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from handlers import ratelimit
from handlers.graphql.context import Context
from picshare import keys
from picshare.config import GraphQLSettings

# Set while strawberry runs again an operation the compiled fast path
# started (and charged) but could not finish itself.
ALREADY_CHARGED: ContextVar[bool] = ContextVar("graphql_already_charged", default=False)


class TooComplex(GraphQLError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


class _Measure:
    __slots__ = ("default_page", "fragments", "variables")

    def __init__(
        self,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_page: int,
    ) -> None:
        self.fragments = fragments
        self.variables = variables
        self.default_page = default_page

    def depth(self, selections: SelectionSetNode | None, seen: frozenset[str]) -> int:
        if selections is None:
            return 0
        deepest = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                if node.name.value.startswith("__"):
                    continue
                below = self.depth(node.selection_set, seen)
                deepest = max(deepest, 1 + below)
            else:
                deepest = max(deepest, self.depth(*self._inner(node, seen)))
        return deepest

    def cost(self, selections: SelectionSetNode | None, seen: frozenset[str]) -> int:
        if selections is None:
            return 0
        total = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                if node.name.value.startswith("__"):
                    continue
                below = self.cost(node.selection_set, seen)
                total += 1 + self._times(node) * below
            else:
                total += self.cost(*self._inner(node, seen))
        return total

    def _inner(
        self, node: Any, seen: frozenset[str]
    ) -> tuple[SelectionSetNode | None, frozenset[str]]:
        if isinstance(node, InlineFragmentNode):
            return node.selection_set, seen
        assert isinstance(node, FragmentSpreadNode)
        name = node.name.value
        fragment = self.fragments.get(name)
        if fragment is None or name in seen:  # validation refuses cycles; be safe anyway
            return None, seen
        return fragment.selection_set, seen | {name}

    def _times(self, field: FieldNode) -> int:
        """How many nodes each child selection is made for: a connection's page size."""
        if field.selection_set is None or not any(
            isinstance(s, FieldNode) and s.name.value == "edges"
            for s in field.selection_set.selections
        ):
            return 1
        for arg in field.arguments or ():
            if arg.name.value != "first":
                continue
            value = arg.value
            if isinstance(value, IntValueNode):
                return max(1, int(value.value))
            if isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int):
                    return max(1, given)
        return self.default_page


def measure(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    default_page: int,
) -> tuple[int, int]:
    """(depth, cost) of one operation; `default_page` is what a connection
    without `first` returns (pagination.default_limit)."""
    m = _Measure(fragments, variables, default_page)
    return m.depth(operation.selection_set, frozenset()), m.cost(
        operation.selection_set, frozenset()
    )


def first_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables a document passes as `first` (its cost depends on their values)."""
    found: list[str] = []

    def walk(selections: SelectionSetNode | None) -> None:
        for node in () if selections is None else selections.selections:
            if isinstance(node, FieldNode):
                for arg in node.arguments or ():
                    if arg.name.value == "first" and isinstance(arg.value, VariableNode):
                        found.append(arg.value.name.value)
                walk(node.selection_set)
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            walk(definition.selection_set)
    return tuple(dict.fromkeys(found))


def check(settings: GraphQLSettings, depth: int, cost: int) -> None:
    """Refuse an operation past the limits (QUERY_TOO_DEEP, QUERY_TOO_COSTLY)."""
    if depth > settings.max_depth:
        raise TooComplex(
            f"the operation is {depth} levels deep; at most {settings.max_depth} are allowed",
            "QUERY_TOO_DEEP",
        )
    if cost > settings.max_cost:
        raise TooComplex(
            f"the operation may return about {cost} nodes; at most {settings.max_cost} are "
            "allowed: ask for smaller pages (`first`)",
            "QUERY_TOO_COSTLY",
        )


async def charge(context: Context, operation: OperationDefinitionNode, cost: int) -> None:
    """Count an operation against the caller's rate limit: by its cost, at
    least one request's worth (an HTTP request counted once already,
    handlers/ratelimit.py; an operation over a socket did not), and each
    mutation also as a write, as its REST twin would be."""
    request = context.request
    per_hit = request.app[keys.SETTINGS].graphql.cost_per_hit
    hits = max(1, math.ceil(cost / per_hit))
    await ratelimit.charge(request, hits if context.socket else hits - 1)
    if operation.operation == OperationType.MUTATION:
        await ratelimit.charge(request, len(operation.selection_set.selections), "writes")


class Limits(SchemaExtension):
    """Refuse an operation past the limits, then count its cost against the
    caller's rate limit (not again when the compiled fast path did already:
    handlers/graphql/compiled.py). An operation over a socket is first
    authenticated again (Context.renew), as its own request would be."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        document = ec.graphql_document
        context = ec.context
        if isinstance(context, Context) and context.socket:
            await context.renew()
        if document is not None and isinstance(context, Context):
            app_settings = context.app[keys.SETTINGS]
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            chosen = [
                o
                for o in operations
                if ec.operation_name is None
                or (o.name is not None and o.name.value == ec.operation_name)
            ]
            for operation in chosen[:1]:
                depth, cost = measure(
                    operation,
                    fragments,
                    ec.variables or {},
                    app_settings.pagination.default_limit,
                )
                check(app_settings.graphql, depth, cost)
                if not ALREADY_CHARGED.get():
                    await charge(context, operation, cost)
        yield
