"""The generated Talos messages, shared with the collection (plugins/module_utils/talos/pb).

The wire contract is the .proto files in proto/, checked against talos.md by the collection's tests.
"""

from __future__ import annotations

import os
import sys

try:
    import ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb  # noqa: F401
except ImportError:  # not on sys.path: use the checkout's collections/ symlink (made by `make venv`)
    _root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.path.insert(0, os.path.join(_root, "collections"))

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import (  # noqa: E402
    common_pb2, config_pb2, enums_pb2, machine_pb2, resource_pb2, runtime_pb2, status_pb2)

__all__ = ["common_pb2", "config_pb2", "enums_pb2", "machine_pb2", "resource_pb2", "runtime_pb2", "status_pb2"]
