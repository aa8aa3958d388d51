"""Per-node error handling of one-to-many replies and routing metadata (no network)."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import client as tcl
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError, TalosNodeError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import machine_pb2


def test_check_messages_raises_naming_the_node():
    reply = machine_pb2.VersionResponse()
    ok = reply.messages.add()
    ok.metadata.hostname = "10.0.0.1"
    bad = reply.messages.add()
    bad.metadata.hostname = "10.0.0.2"
    bad.metadata.error = "connection refused"
    bad.metadata.status.code = 14
    with pytest.raises(TalosNodeError) as err:
        tcl.check_messages(reply)
    assert err.value.node == "10.0.0.2" and err.value.status == "UNAVAILABLE" and err.value.code == 14
    assert "node 10.0.0.2: connection refused" == str(err.value)
    results = tcl.per_node(reply)
    assert results["10.0.0.1"].metadata.hostname == "10.0.0.1"
    assert isinstance(results["10.0.0.2"], TalosNodeError)
    only_status = machine_pb2.VersionResponse()
    m = only_status.messages.add()
    m.metadata.status.code = 7
    m.metadata.status.message = "not authorized"
    with pytest.raises(TalosNodeError, match="node 10.9.9.9: not authorized"):
        tcl.check_messages(only_status, default_node="10.9.9.9")


def test_routing_metadata():
    assert tcl._routing(node="10.0.0.1") == [("node", "10.0.0.1")]
    assert tcl._routing(nodes=["a", "b"]) == [("nodes", "a"), ("nodes", "b")]
    assert tcl._routing() == []
    with pytest.raises(TalosError):
        tcl._routing(node="a", nodes=["b"])


def test_apply_modes_are_the_wire_numbers():
    Mode = machine_pb2.ApplyConfigurationRequest
    assert tcl.APPLY_MODES == {"reboot": Mode.REBOOT, "auto": Mode.AUTO, "no_reboot": Mode.NO_REBOOT,
                               "staged": Mode.STAGED, "try": Mode.TRY}
