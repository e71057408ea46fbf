"""``intentq demo``: the whole story on the embedded default, importable as library code."""

from intentq.demo.story import run_demo

__all__ = ["run_demo"]
