"""so101lab.real."""
