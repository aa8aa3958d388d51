"""Talos twin: Ed25519 mTLS apid endpoints on loopback backed by a per-node machine model."""

from .machine import EtcdCluster, TalosMachine, TalosApiError, Timings
from .pki import TalosPKI
from .twin import TalosTwin

__all__ = ["EtcdCluster", "TalosMachine", "TalosApiError", "TalosPKI", "TalosTwin", "Timings"]
