"""MCP ``tools/call`` requests in (dicts and ``mcp.types`` objects), ``CallToolResult`` out."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult, JSONRPCRequest

from intentq.agents import (
    META_KEY,
    InvalidToolCall,
    client_key,
    intent_from_mcp,
    mcp_error,
    mcp_error_object,
    mcp_result,
    mcp_result_object,
)
from intentq.errors import ConfigError

ARGS = {"slot": "15:00"}


def params(**extra: Any) -> dict[str, Any]:
    return {"name": "book_slot", "arguments": ARGS, **extra}


def rpc(request_id: Any = 7, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params(**extra)}


REQUESTS = {
    "params-dict": params(),
    "jsonrpc-dict": rpc(),
    "params-sdk": CallToolRequestParams(name="book_slot", arguments=ARGS),
    "request-sdk": CallToolRequest(params=CallToolRequestParams(name="book_slot", arguments=ARGS)),
    "jsonrpc-sdk": JSONRPCRequest(jsonrpc="2.0", id=7, method="tools/call", params=params()),
}


@pytest.mark.parametrize("request_", REQUESTS.values(), ids=REQUESTS.keys())
def test_every_shape_is_the_same_intent(request_: Any) -> None:
    intent = intent_from_mcp(request_, scope="user-1")

    assert (intent.tool, dict(intent.args)) == ("book_slot", ARGS)
    assert intent.key == intent_from_mcp(params(), scope="user-1").key
    assert intent.meta["tool_format"] == "mcp"


def test_jsonrpc_id_is_the_call_id() -> None:
    intent = intent_from_mcp(rpc(request_id=7), scope="user-1", key="call")

    assert intent.meta["tool_call_id"] == "7"
    assert intent.meta["key_mode"] == "call"


def test_call_mode_needs_an_id() -> None:
    with pytest.raises(InvalidToolCall, match="missing_id"):
        intent_from_mcp(params(), scope="user-1", key="call")


def test_no_arguments_is_an_empty_object() -> None:
    assert intent_from_mcp({"name": "ping"}, scope="s").args == {}


@pytest.mark.parametrize(
    "request_",
    [
        params(_meta={META_KEY: "order-1042", "progressToken": 3}),
        CallToolRequestParams.model_validate(params(_meta={META_KEY: "order-1042"})),
        CallToolRequest.model_validate(
            {"method": "tools/call", "params": params(_meta={META_KEY: "order-1042"})}),
    ],
    ids=["dict", "params-sdk", "request-sdk"],
)  # fmt: skip
def test_client_key_from_meta_wins_over_the_mode(request_: Any) -> None:
    intent = intent_from_mcp(request_, scope="user-1")

    assert intent.key == client_key("user-1", "order-1042")
    assert intent.meta["key_mode"] == "client"
    assert intent.meta["client_key"] == "order-1042"


def test_client_key_is_confined_to_its_scope() -> None:
    request_ = params(_meta={META_KEY: "order-1042"})

    # Another caller sending the same key must not reach this caller's result.
    assert (
        intent_from_mcp(request_, scope="user-1").key
        != intent_from_mcp(request_, scope="user-2").key
    )


def test_explicit_key_wins_over_the_client_key() -> None:
    intent = intent_from_mcp(params(_meta={META_KEY: "order-1042"}), scope="s", key="mine")

    assert intent.key == "mine"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (params(_meta={META_KEY: "has spaces"}), "bad_key"),
        (params(_meta={META_KEY: 42}), "bad_key"),
        (params(_meta={META_KEY: "x" * 201}), "bad_key"),
        (params(_meta=["not", "an", "object"]), "bad_meta"),
        (params(arguments=[1, 2]), "bad_arguments"),
        (params(arguments="{}"), "bad_arguments"),
        ({"arguments": ARGS}, "missing_name"),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}, "wrong_type"),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}, "missing_name"),
    ],
)  # fmt: skip
def test_bad_requests_raise_one_error_type(request_: Any, reason: str) -> None:
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_mcp(request_, scope="s")

    assert caught.value.reason == reason


def test_bad_meta_key_becomes_an_error_result() -> None:
    with pytest.raises(InvalidToolCall) as caught:
        intent_from_mcp(rpc(_meta={META_KEY: "bad key"}), scope="s")

    result = mcp_error(caught.value)

    assert result["isError"] is True
    assert "structuredContent" not in result
    assert META_KEY in result["content"][0]["text"]
    assert CallToolResult.model_validate(result).is_error


def test_dict_result_is_also_structured_content() -> None:
    assert mcp_result({"booked": "15:00"}) == {
        "content": [{"type": "text", "text": '{"booked": "15:00"}'}],
        "structuredContent": {"booked": "15:00"},
        "isError": False,
    }


@pytest.mark.parametrize("value", ["booked", [1, 2], None, 0])
def test_other_results_are_text_only(value: Any) -> None:
    result = mcp_result(value)

    assert "structuredContent" not in result
    assert result["isError"] is False


def test_result_objects_are_the_sdk_type() -> None:
    ok = mcp_result_object({"booked": "15:00"})
    failed = mcp_error_object(InvalidToolCall("unknown_tool", "no such tool"))

    assert isinstance(ok, CallToolResult)
    assert ok.structured_content == {"booked": "15:00"}
    assert not ok.is_error
    assert failed.is_error


def test_result_objects_without_mcp_name_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp.types", None)  # import now fails

    with pytest.raises(ConfigError, match=r"intentq\[mcp\]"):
        mcp_result_object(1)
