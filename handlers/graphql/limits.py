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
from typing import Any

from graphql import (
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

MAX_DEPTH = 10
MAX_COST = 5000
DEFAULT_PAGE = 20
# One rate-limit hit per this much cost (the request's own hit included): a
# feed page with comments is one or two requests' worth, a refused-size query
# would be fifty.
COST_PER_HIT = 250


class TooComplex(GraphQLError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


class _Measure:
    __slots__ = ("fragments", "variables")

    def __init__(
        self, fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]
    ) -> None:
        self.fragments = fragments
        self.variables = variables

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
        return DEFAULT_PAGE


def measure(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> tuple[int, int]:
    """(depth, cost) of one operation."""
    m = _Measure(fragments, variables)
    return m.depth(operation.selection_set, frozenset()), m.cost(
        operation.selection_set, frozenset()
    )


class Limits(SchemaExtension):
    """Refuse an operation past MAX_DEPTH or MAX_COST (QUERY_TOO_DEEP,
    QUERY_TOO_COSTLY), then count its cost against the caller's rate limit."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        document = ec.graphql_document
        if document is not None:
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
                depth, cost = measure(operation, fragments, ec.variables or {})
                if depth > MAX_DEPTH:
                    raise TooComplex(
                        f"the operation is {depth} levels deep; at most {MAX_DEPTH} are allowed",
                        "QUERY_TOO_DEEP",
                    )
                if cost > MAX_COST:
                    raise TooComplex(
                        f"the operation may return about {cost} nodes; at most {MAX_COST} are "
                        "allowed: ask for smaller pages (`first`)",
                        "QUERY_TOO_COSTLY",
                    )
                context = ec.context
                if isinstance(context, Context):
                    # The request counted once already (handlers/ratelimit.py).
                    request = context.request
                    await ratelimit.charge(request, math.ceil(cost / COST_PER_HIT) - 1)
                    if operation.operation == OperationType.MUTATION:
                        # Each mutation is a write, as its REST twin would be.
                        await ratelimit.charge(
                            request, len(operation.selection_set.selections), "writes"
                        )
        yield
