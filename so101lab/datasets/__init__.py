"""so101lab.datasets."""
