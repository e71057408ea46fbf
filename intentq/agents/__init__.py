"""Model tool calls both ways: OpenAI, Anthropic and MCP calls in as intents, results out.

No vendor SDK is needed to import this package; SDK objects and their JSON dicts both work.
"""

from intentq.agents.anthropic import (
    anthropic_error,
    anthropic_result,
    intent_from_anthropic,
    read_anthropic,
)
from intentq.agents.base import ToolCall, intent_from_tool_call
from intentq.agents.keys import CALL, CONTENT, KeyMode, call_key, client_key, content_key
from intentq.agents.mcp import (
    META_KEY,
    intent_from_mcp,
    mcp_error,
    mcp_error_object,
    mcp_result,
    mcp_result_object,
    read_mcp,
)
from intentq.agents.openai import (
    intent_from_openai,
    openai_chat_error,
    openai_chat_result,
    openai_responses_error,
    openai_responses_result,
    read_openai,
)
from intentq.agents.replies import Reply, error_reply, to_reply
from intentq.errors import InvalidToolCall

__all__ = [
    # calls in
    "intent_from_anthropic",
    "intent_from_mcp",
    "intent_from_openai",
    "intent_from_tool_call",
    "read_anthropic",
    "read_mcp",
    "read_openai",
    "ToolCall",
    # keys
    "CALL",
    "CONTENT",
    "KeyMode",
    "META_KEY",
    "call_key",
    "client_key",
    "content_key",
    # results out
    "anthropic_result",
    "mcp_result",
    "mcp_result_object",
    "openai_chat_result",
    "openai_responses_result",
    # errors out
    "anthropic_error",
    "mcp_error",
    "mcp_error_object",
    "openai_chat_error",
    "openai_responses_error",
    # neutral replies
    "Reply",
    "error_reply",
    "to_reply",
    # errors
    "InvalidToolCall",
]
