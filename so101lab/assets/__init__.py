"""so101lab.assets."""
