"""System identification of the STS3215 servo model from recorded servo logs (`so101lab sysid`)."""
