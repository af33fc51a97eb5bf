"""so101lab.experiments."""
