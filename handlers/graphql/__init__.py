"""GraphQL beside REST (`/graphql`): the same services and rules, another shape.

- `schema.py`: Query, Mutation, Subscription, as CONTRACT.md names them;
- `types.py`: the object types and Relay-style connections, made from records;
- `context.py`: what a request's resolvers share (viewer, services, loaders);
- `loaders.py`: the per-request DataLoaders every nested read goes through;
- `limits.py`: depth and cost of an operation, and its rate-limit charge;
- `compiled.py`: queries run from a plan compiled once per document;
- `errors.py`: domain errors as `extensions.code`, never a traceback;
- `view.py`: strawberry's aiohttp view with PicShare's auth and GraphiQL page;
- `live.py`: `Subscription.notifications`, fed by the socket hub.
"""
