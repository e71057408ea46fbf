"""Runnable examples: agent loops on recorded model responses, and an MCP client session."""
