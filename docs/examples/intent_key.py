"""An intent and its idempotency key, built from the agent's tool call."""

from __future__ import annotations

from intentq.intent import Intent, key_for_tool_call

key = key_for_tool_call("conversation-42", "call_abc")  # stable UUIDv5 across restarts
intent = Intent.create("book_slot", {"slot": "15:00"}, key=key)
body = intent.to_json()  # the wire format (the envelope), canonical JSON bytes
fingerprint = intent.fingerprint  # sha256 of canonical {"tool", "args"}
