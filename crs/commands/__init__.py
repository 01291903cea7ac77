"""The `crs` commands, one small function each, grouped by what they work on.

Importing this package registers every command on :data:`crs.app.app`.
"""

from crs.commands import audit, chaos, deploy, requests, stack, tools

__all__ = ["audit", "chaos", "deploy", "requests", "stack", "tools"]
