"""so101lab.policies."""
