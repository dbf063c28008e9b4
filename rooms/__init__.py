"""The real-time core: WebSocket rooms, durable and ordered, fanned out through Redis.

Public surface for other packages:

- ``rooms.kinds``: ``RoomKind`` (implement it for a new kind of room), ``Actor``,
  ``Membership``, ``OpRejected``, ``SERVER_ACTOR``.
- ``rooms.fractional``: ``key_between`` / ``keys_between`` for ordered lists.
- ``rooms.api``: ``submit`` (a batch from server-side code), ``read_state``.
- ``rooms.store.ensure_room``: create a room's row together with its blend or mashup.
- ``rooms.registry.BUILTIN_KINDS``: where a product kind is registered.

docs/rooms.md explains the machinery, docs/protocol.md the wire protocol.
"""
