"""Talos twin: Ed25519 mTLS apid endpoints on loopback backed by a per-node machine model."""

from .machine import EtcdCluster, Machine, TalosApiError, Timings
from .pki import TalosPKI
from .twin import TalosTwin

__all__ = ["EtcdCluster", "Machine", "TalosApiError", "TalosPKI", "TalosTwin", "Timings"]
