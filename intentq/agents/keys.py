"""Idempotency keys for a model's tool calls: by content (default), by call id, or given.

A model mints a new tool-call id every time it is asked again, so the id only names one
delivery of one answer. Three ways to key an intent, each stopping a different duplicate:

``"content"`` (the default)
    scope + tool + canonical arguments. Stops a side effect running twice when the model is
    asked again and re-issues the same request under a new id: the agent restarted and
    re-ran the turn, the provider's completion was retried, the user said "try again". It
    covers a redelivered call too, since that has the same content. Its cost: two calls
    meant to be separate, with equal arguments in one scope, are one intent (the second gets
    the first's result); give such tools an argument that tells them apart, or narrow the
    scope (one per user turn). This is the default because its failure is a visible, cached
    answer, while the other's is a second charge or a second email.

``"call"``
    scope + tool-call id, ``key_for_tool_call``'s UUIDv5. Stops one call running twice when
    that very call is delivered again (the agent crashed after enqueueing, the queue
    redelivered, the message list was re-sent). A re-asked model's new id is a new intent.

an explicit key
    Any other string is the key as given (it must pass ``normalize_key``): the caller knows
    the request's business identity, such as an order id. ``"content"`` and ``"call"`` are
    mode names, never keys.

A key a client sends in MCP's ``_meta`` is scoped (UUIDv5 of scope + key): one caller cannot
reach another caller's result by sending the same key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal

from intentq.errors import InvalidToolCall
from intentq.intent import canonical_json, key_for_tool_call, normalize_key

KeyMode = Literal["content", "call"]
CONTENT: Final = "content"
CALL: Final = "call"
# Fixed namespaces: a key derived today must be derived the same in every process forever.
CONTENT_NAMESPACE = uuid.UUID("11e9960e-46a0-41aa-b5fd-f7c3bd7d0a81")
CLIENT_KEY_NAMESPACE = uuid.UUID("dbe9c16a-a26d-4f5c-b23a-cf5432d3a005")


def content_key(scope: str, tool: str, args: Mapping[str, Any]) -> str:
    """The same request in the same scope is the same key, whatever id the model gave it."""
    # Canonical JSON of one object: no separator inside the scope can make two inputs meet.
    name = canonical_json({"scope": scope, "tool": tool, "args": dict(args)})
    return str(uuid.uuid5(CONTENT_NAMESPACE, name.decode("ascii")))


def call_key(scope: str, call_id: str) -> str:
    """One key per tool-call id in ``scope``: the key ``key_for_tool_call`` gives."""
    return key_for_tool_call(scope, call_id)


def client_key(scope: str, key: str) -> str:
    """A key the client sent, confined to ``scope``; ``InvalidIntent`` if it is malformed."""
    name = canonical_json([scope, normalize_key(key)])
    return str(uuid.uuid5(CLIENT_KEY_NAMESPACE, name.decode("ascii")))


def resolve_key(
    key: str,
    *,
    scope: str,
    tool: str,
    args: Mapping[str, Any],
    call_id: str | None,
    sent_key: str | None = None,
) -> tuple[str, str]:
    """``(key, how)``: an explicit key wins, then a key the client sent, then the mode.

    Raises ``InvalidIntent`` for a malformed key.
    """
    if key not in (CONTENT, CALL):
        return normalize_key(key), "explicit"
    if sent_key is not None:
        return client_key(scope, sent_key), "client"
    if key == CALL:
        if call_id is None:
            raise InvalidToolCall("missing_id", 'key="call" needs a tool-call id; this has none')
        return call_key(scope, call_id), CALL
    return content_key(scope, tool, args), CONTENT
