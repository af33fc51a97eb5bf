"""Running collection and evaluation on a Ray cluster (``--ray``): imported only when asked for.

Ray is an optional extra (``pip install 'so101lab[ray]'``); nothing outside this package imports it.
"""
