"""The tazlab lab twin: Kubernetes, Proxmox and Talos APIs on loopback over one simulated world.

This package is a test and demo tool. It lives beside the collection and is never part of the
collection tarball.
"""

__version__ = "0.1.0"
