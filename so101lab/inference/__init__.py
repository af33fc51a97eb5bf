"""Policies served out of process and chunked control loops that never wait for them (async inference)."""
