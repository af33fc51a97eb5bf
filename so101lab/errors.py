"""Errors that mean "the user asked for something impossible", shown by the CLI as one line."""

from __future__ import annotations


class UsageError(ValueError):
    """A bad command-line value (unknown task, malformed ``--port``...); the message names the fix."""
