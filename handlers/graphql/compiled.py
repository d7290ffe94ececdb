"""Queries run from a plan made once per document: the fast path of `/graphql`.

graphql-core executes field by field: for each of the ~400 fields of a feed
page it collects the selection, builds resolve info, calls a resolver wrapper
and completes the value by its type (several microseconds each). Most of
PicShare's fields are plain attributes of objects made from records, so a
query document is compiled once (per text and operation name) into nested
functions that read those attributes and check their values against their
types directly, and call a real resolver (with the resolve info of
graphql-core's own executor, so strawberry's argument conversion and `Info`
are unchanged) only where the schema defines one. The resolvers of one level
are all called before any is awaited, so the DataLoaders batch as they do
under graphql-core.

A fast path, not a second engine: what it does not handle (mutations,
subscriptions, directives, introspection but `__typename`, interfaces,
unions, enums) is not compiled, and a compiled query whose run raises
anything at all (a resolver's error, a null in a non-null field, a value of
the wrong type) is run again by strawberry as if there were no fast path, so
errors, their paths and partial data are graphql-core's. Queries only read,
so running one again is safe.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    parse,
    specified_rules,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.types.base import StrawberryOptional
from strawberry.types.field import StrawberryField

from handlers.graphql.limits import first_variables, measure

# What a compiled field does: read or resolve its value from the parent
# object and put it, completed, under its key in the parent's answer.
FieldRunner = Callable[[Any, dict[str, Any], "Run", Path | None], None]
# Complete a value by its type (null checks, lists, leaves, objects).
Completer = Callable[[Any, "Run", Path | None], Any]
# A field argument's values are the same for every parent unless given by a
# variable: those are worked out once per run, these are the fields that need it.
Dynamic = tuple[GraphQLField, FieldNode, Callable[[dict[str, Any]], dict[str, Any]]]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class NotCompiled(Exception):
    """The document uses something the fast path leaves to strawberry."""


class Refused(Exception):
    """A value the fast path does not answer itself (graphql-core will, with its error)."""


@dataclass(slots=True)
class Plan:
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    root: tuple[FieldRunner, ...]
    dynamic: tuple[Dynamic, ...]
    # The variables given as `first`, and the cost per their values seen so far.
    first_variables: tuple[str, ...]
    costs: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)


class Run:
    """One execution of a plan: the executor graphql-core built for it
    (variables coerced, resolve info), the values awaited level by level."""

    __slots__ = ("args", "executor", "pending")

    def __init__(self, executor: Any, plan: Plan) -> None:
        self.executor = executor
        variables = executor.variable_values
        self.args = [
            convert(get_argument_values(fd, node, variables)) for fd, node, convert in plan.dynamic
        ]
        # (awaitable, the answer it goes in, its key, its completer, its path)
        self.pending: list[tuple[Awaitable[Any], dict[str, Any], str, Completer, Path]] = []


async def run(plan: Plan, executor: Any) -> dict[str, Any]:
    """The operation's `data`; raises whatever stops it (the caller runs it again)."""
    state = Run(executor, plan)
    data: dict[str, Any] = {}
    try:
        for runner in plan.root:
            runner(executor.root_value, data, state, None)
        while state.pending:
            batch, state.pending = state.pending, []
            if len(batch) == 1:
                values: Sequence[Any] = [await batch[0][0]]
            else:
                # Every one started before any is awaited: the loaders batch.
                values = await asyncio.gather(*(p[0] for p in batch), return_exceptions=True)
            for (_, answer, key, complete, path), value in zip(batch, values, strict=True):
                if isinstance(value, BaseException):
                    raise value
                answer[key] = complete(value, state, path)
    except BaseException:
        for awaitable, *_ in state.pending:
            _discard(awaitable)
        raise
    return data


def _discard(awaitable: Awaitable[Any]) -> None:
    """An awaitable that will not be awaited, closed without a warning."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()


def compile_query(
    schema: GraphQLSchema,
    config: StrawberryConfig,
    document: DocumentNode,
    operation_name: str | None,
) -> Plan:
    """A plan for the chosen operation of a document the caller validated;
    NotCompiled when it is not a query the fast path answers."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name is not None and o.name.value == operation_name)
    ]
    if len(chosen) != 1 or (operation_name is None and len(operations) != 1):
        raise NotCompiled("no single operation")
    operation = chosen[0]
    if operation.operation != OperationType.QUERY or operation.directives:
        raise NotCompiled("only queries")
    query_type = schema.query_type
    assert query_type is not None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    builder = _Builder(fragments, config)
    root = builder.fields(query_type, [operation.selection_set])
    return Plan(
        document=document,
        operation=operation,
        fragments=fragments,
        root=root,
        dynamic=tuple(builder.dynamic),
        first_variables=first_variables(document),
    )


class _Builder:
    def __init__(
        self, fragments: dict[str, FragmentDefinitionNode], config: StrawberryConfig
    ) -> None:
        self.fragments = fragments
        self.config = config
        self.dynamic: list[Dynamic] = []

    def fields(
        self, parent: GraphQLObjectType, selections: list[SelectionSetNode]
    ) -> tuple[FieldRunner, ...]:
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selections:
            self._collect(parent, selection_set, grouped, set())
        return tuple(self._field(parent, key, nodes) for key, nodes in grouped.items())

    def _collect(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        seen: set[str],
    ) -> None:
        for node in selection_set.selections:
            if node.directives:
                raise NotCompiled("directives")
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                grouped.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                if condition is not None and condition.name.value != parent.name:
                    raise NotCompiled("a fragment on another type")
                self._collect(parent, node.selection_set, grouped, seen)
            else:
                assert isinstance(node, FragmentSpreadNode)
                name = node.name.value
                if name in seen:
                    continue  # as graphql-core: a fragment counts once per selection
                seen.add(name)
                fragment = self.fragments[name]
                if fragment.type_condition.name.value != parent.name or fragment.directives:
                    raise NotCompiled("a fragment on another type")
                self._collect(parent, fragment.selection_set, grouped, seen)

    def _field(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldRunner:
        name = nodes[0].name.value
        if name == "__typename":
            typename = parent.name

            def typename_field(
                source: Any, answer: dict[str, Any], state: Run, path: Path | None
            ) -> None:
                answer[key] = typename

            return typename_field
        if name.startswith("__"):
            raise NotCompiled("introspection")
        field_def = parent.fields[name]
        selections = [n.selection_set for n in nodes if n.selection_set is not None]
        complete = self._completer(field_def.type, selections)
        resolve = field_def.resolve
        if resolve is None:
            raise NotCompiled("a field without strawberry's resolver")
        if getattr(resolve, "_is_default", False):
            # Strawberry's resolver for a plain field: the attribute itself.
            attribute = field_def.extensions["strawberry-definition"].python_name
            exact = _exact_class(field_def.type)
            if exact is not None:
                # The commonest field of all, in one call: a string, a
                # boolean... returned as it is, anything else completed.
                def leaf_field(
                    source: Any, answer: dict[str, Any], state: Run, path: Path | None
                ) -> None:
                    value = getattr(source, attribute)
                    answer[key] = (
                        value if value.__class__ is exact else complete(value, state, path)
                    )

                return leaf_field
            if _is_int(field_def.type):

                def int_field(
                    source: Any, answer: dict[str, Any], state: Run, path: Path | None
                ) -> None:
                    value = getattr(source, attribute)
                    answer[key] = (
                        value
                        if value.__class__ is int and _INT_MIN <= value <= _INT_MAX
                        else complete(value, state, path)
                    )

                return int_field

            def attribute_field(
                source: Any, answer: dict[str, Any], state: Run, path: Path | None
            ) -> None:
                answer[key] = complete(getattr(source, attribute), state, path)

            return attribute_field
        typename = parent.name
        definition: StrawberryField = field_def.extensions["strawberry-definition"]
        plain = _plain(definition, self.config)
        convert = _same if plain is None else plain.kwargs
        if _uses_variables(nodes[0]):
            index = len(self.dynamic)
            self.dynamic.append((field_def, nodes[0], convert))
            fixed = None
        else:
            fixed = convert(get_argument_values(field_def, nodes[0]))
        if plain is None:
            # Strawberry's resolver as graphql-core calls it (it converts the
            # arguments and makes the `Info` itself).
            def resolved_field(
                source: Any, answer: dict[str, Any], state: Run, path: Path | None
            ) -> None:
                here = Path(path, key, typename)
                info = state.executor.build_resolve_info(field_def, nodes, parent, here)
                args = state.args[index] if fixed is None else fixed
                _settle(resolve(source, info, **args), answer, key, complete, state, here)

            return resolved_field
        func, takes_self, info_name = plain.func, plain.takes_self, plain.info_name
        info_class = self.config.info_class

        def plain_field(source: Any, answer: dict[str, Any], state: Run, path: Path | None) -> None:
            here = Path(path, key, typename)
            kwargs = state.args[index] if fixed is None else fixed
            if info_name is not None:
                raw = state.executor.build_resolve_info(field_def, nodes, parent, here)
                kwargs = {**kwargs, info_name: info_class(_raw_info=raw, _field=definition)}
            value = func(source, **kwargs) if takes_self else func(**kwargs)
            _settle(value, answer, key, complete, state, here)

        return plain_field

    def _completer(self, type_: GraphQLOutputType, selections: list[SelectionSetNode]) -> Completer:
        if isinstance(type_, GraphQLNonNull):
            inner = self._inner(type_.of_type, selections)

            def non_null(value: Any, state: Run, path: Path | None) -> Any:
                if value is None:
                    raise Refused("null in a non-null field")
                return inner(value, state, path)

            return non_null
        inner = self._inner(type_, selections)

        def nullable(value: Any, state: Run, path: Path | None) -> Any:
            return None if value is None else inner(value, state, path)

        return nullable

    def _inner(self, type_: Any, selections: list[SelectionSetNode]) -> Completer:
        """Completes a value that is not null."""
        if isinstance(type_, GraphQLList):
            item = self._completer(type_.of_type, selections)
            if _is_leaf(type_.of_type):
                # Scalars resolve nothing below them: no path to keep.
                def leaf_list(value: Any, state: Run, path: Path | None) -> Any:
                    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
                        raise Refused("not a list")
                    return [item(v, state, path) for v in value]

                return leaf_list

            def list_value(value: Any, state: Run, path: Path | None) -> Any:
                if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
                    raise Refused("not a list")
                return [item(v, state, Path(path, i, None)) for i, v in enumerate(value)]

            return list_value
        if isinstance(type_, GraphQLScalarType):
            return _leaf(type_)
        if isinstance(type_, GraphQLObjectType) and type_.is_type_of is None:
            runners = self.fields(type_, selections)

            def object_value(value: Any, state: Run, path: Path | None) -> Any:
                answer: dict[str, Any] = {}
                for runner in runners:
                    runner(value, answer, state, path)
                return answer

            return object_value
        raise NotCompiled(f"type {type_}")


def _is_leaf(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLScalarType)


def _is_int(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return type_ is GraphQLInt


def _exact_class(type_: GraphQLOutputType) -> type | None:
    """The class whose values a String, ID or Boolean field returns unchanged."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if type_ is GraphQLString or type_ is GraphQLID:
        return str
    if type_ is GraphQLBoolean:
        return bool
    return None


def _leaf(type_: GraphQLScalarType) -> Completer:
    coerce = type_.coerce_output_value
    assert coerce is not None

    def coerced(value: Any) -> Any:
        found = coerce(value)
        if found is None or found is Undefined:
            raise Refused("a value the scalar does not take")
        return found

    # The values resolvers nearly always give are returned as they are, as
    # graphql-core's coercion would return them.
    if type_ is GraphQLInt:

        def int_leaf(value: Any, state: Run, path: Path | None) -> Any:
            if value.__class__ is int and _INT_MIN <= value <= _INT_MAX:
                return value
            return coerced(value)

        return int_leaf
    exact = _exact_class(type_)

    def leaf(value: Any, state: Run, path: Path | None) -> Any:
        if value.__class__ is exact:
            return value
        return coerced(value)

    return leaf


def _settle(
    value: Any, answer: dict[str, Any], key: str, complete: Completer, state: Run, path: Path
) -> None:
    """A resolver's value in its place: completed now, or once awaited with
    the rest of its level."""
    if optimized_is_awaitable(value):
        answer[key] = None
        state.pending.append((value, answer, key, complete, path))
    else:
        answer[key] = complete(value, state, path)


def _same(args: dict[str, Any]) -> dict[str, Any]:
    return args


# Argument types strawberry hands to a resolver as graphql-core coerced them.
_PLAIN_TYPES: tuple[object, ...] = (int, str, bool, float, strawberry.ID)


@dataclass(frozen=True, slots=True)
class _Plain:
    """A resolver called as it is, without strawberry's wrapper: one whose
    arguments are all scalars (which strawberry would pass unchanged, renamed
    to their Python names), without field extensions; `Info` made only when
    it asks for one."""

    func: Callable[..., Any]
    takes_self: bool
    info_name: str | None
    # (GraphQL name, Python name) of each argument.
    names: tuple[tuple[str, str], ...]

    def kwargs(self, args: dict[str, Any]) -> dict[str, Any]:
        return {python: args[name] for name, python in self.names if name in args}


def _plain(definition: StrawberryField, config: StrawberryConfig) -> _Plain | None:
    resolver = definition.base_resolver
    if (
        resolver is None
        or definition.extensions
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
    ):
        return None
    func = resolver.wrapped_func
    if not inspect.isfunction(func):
        return None  # a static or class method: left to strawberry
    names: list[tuple[str, str]] = []
    for argument in definition.arguments:
        type_ = argument.type
        if isinstance(type_, StrawberryOptional):
            type_ = type_.of_type
        if not any(type_ is t for t in _PLAIN_TYPES) or argument.python_name is None:
            return None
        names.append((config.name_converter.from_argument(argument), argument.python_name))
    info = resolver.info_parameter
    return _Plain(
        func=func,
        takes_self=resolver.self_parameter is not None,
        info_name=None if info is None else info.name,
        names=tuple(names),
    )


def _uses_variables(node: FieldNode) -> bool:
    def uses(value: ValueNode) -> bool:
        if isinstance(value, VariableNode):
            return True
        if isinstance(value, ListValueNode):
            return any(uses(v) for v in value.values)
        if isinstance(value, ObjectValueNode):
            return any(uses(f.value) for f in value.fields)
        return False

    return any(uses(arg.value) for arg in node.arguments or ())


_MISSING = object()
# Costs kept per plan (one per set of `first` values seen); past this, forgotten.
_COSTS_KEPT = 64


class Plans:
    """The compiled plans of one schema per (query text, operation name); None
    for a document the fast path leaves to strawberry (not valid, not a query,
    not compiled). At most `size` are kept; the oldest goes first."""

    def __init__(self, schema: GraphQLSchema, config: StrawberryConfig) -> None:
        self._schema = schema
        self._config = config
        self._plans: dict[tuple[str, str | None], Plan | None] = {}

    def get(self, query: str, operation_name: str | None, size: int) -> Plan | None:
        key = (query, operation_name)
        found = self._plans.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        plan = self._make(query, operation_name)
        while len(self._plans) >= size:
            del self._plans[next(iter(self._plans))]
        self._plans[key] = plan
        return plan

    def _make(self, query: str, operation_name: str | None) -> Plan | None:
        try:
            document = parse(query)
        except GraphQLError:
            return None
        if validate_document(self._schema, document, tuple(specified_rules)):
            return None
        try:
            return compile_query(self._schema, self._config, document, operation_name)
        except NotCompiled:
            return None


def measured(plan: Plan, variables: Mapping[str, Any], default_page: int) -> tuple[int, int]:
    """(depth, cost) of the plan's operation with these variables, kept per
    the values of the variables its cost depends on."""
    key = (default_page, *(variables.get(name) for name in plan.first_variables))
    try:
        return plan.costs[key]
    except KeyError:
        found = measure(plan.operation, plan.fragments, variables, default_page)
    except TypeError:  # a value that cannot be a key: measured each time
        return measure(plan.operation, plan.fragments, variables, default_page)
    if len(plan.costs) >= _COSTS_KEPT:
        plan.costs.clear()
    plan.costs[key] = found
    return found
