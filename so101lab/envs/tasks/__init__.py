"""One module per task: a config of what varies plus the hooks of `SO101Env`."""
