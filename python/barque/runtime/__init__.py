"""Turning images and ``run`` options into OCI runtime specs (``barque.runtime.spec``).

Submodules are imported on demand; importing this package costs nothing.
"""
