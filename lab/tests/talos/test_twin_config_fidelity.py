"""Issue 14: the twin reads Talos config as Talos does (talos.md), independently of the collection.

Point 1 (CanApplyImmediate, per version), point 2 (YAML 1.2), point 7 (versions per node, RebootRequest FORCE).
"""

from __future__ import annotations

import asyncio
import copy

import pytest

from talos_lab_helpers import SLOW_TIMINGS, auth_for, talos_lab

from tazlab_lab.talos import Timings
from tazlab_lab.talos import config as cfg

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient


def base():
    return cfg.parse(cfg.make_config("w1", "127.0.0.21", "worker", "https://127.0.0.1:6443"))


def changed(path, value, docs=None):
    docs = copy.deepcopy(docs or base())
    tree = docs[0]
    *parents, leaf = path.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value
    return docs


@pytest.mark.parametrize("path, value", [
    ("machine.ca", {"crt": "Q1JU"}), ("machine.acceptedCAs", [{"crt": "Q1JU"}]),
    ("machine.controlPlane", {"scheduler": {"disabled": True}}), ("machine.kernel", {"modules": [{"name": "drbd"}]}),
    ("machine.pods", [{"kind": "Pod"}]), ("machine.seccompProfiles", [{"name": "a.json", "value": {}}]),
    ("machine.features.hostDNS", {"enabled": True}), ("machine.features.imageCache", {"localEnabled": True}),
    ("machine.features.kubernetesTalosAPIAccess", {"enabled": True}),
    ("machine.features.nodeAddressSortAlgorithm", "v2"), ("machine.nodeTaints", {"a": "b:NoSchedule"}),
    ("cluster.apiServer", {"extraArgs": {"v": "4"}}), ("debug", True),
])
def test_upstream_immediate_fields(path, value):
    assert cfg.needs_reboot(base(), changed(path, value)) is False


@pytest.mark.parametrize("path, value", [
    ("machine.env", {"A": "1"}), ("machine.files", [{"path": "/var/f"}]), ("machine.features.stableHostname", True),
    ("machine.features.rbac", False), ("machine.token", "other.token"), ("persist", False),
])
def test_reboot_fields(path, value):
    assert cfg.needs_reboot(base(), changed(path, value)) is True
    assert cfg.needs_reboot(base(), changed(path, value), "v1.14.0") is False   # no CanApplyImmediate in 1.14


def test_a_features_block_added_or_removed_needs_a_reboot():
    without = copy.deepcopy(base())
    del without[0]["machine"]["features"]
    assert cfg.needs_reboot(without, changed("machine.features", {"hostDNS": {"enabled": True}}, without)) is True
    assert cfg.needs_reboot(base(), without) is True


def test_yaml_1_2_scalars():
    docs = cfg.parse("version: v1alpha1\nmachine:\n  nodeLabels: {a: on, b: yes, c: no, d: off, e: 'true', f: true}\n"
                     "  x: [0o17, 0x1f, 012, 1.5, ~, !!str 7]\n")
    assert docs[0]["machine"]["nodeLabels"] == {"a": "on", "b": "yes", "c": "no", "d": "off", "e": "true", "f": True}
    assert docs[0]["machine"]["x"] == [15, 31, 12, 1.5, None, "7"]
    assert cfg.parse(cfg.dump(docs)) == docs


def test_versions_per_node_and_reboot_force_from_1_12():
    async def main():
        versions = {"w1": "v1.11.6", "w2": "v1.12.0"}
        async with talos_lab(controlplanes=1, workers=2, versions=versions, timings=Timings(**SLOW_TIMINGS)) \
                as (twin, clock, addrs):
            async with TalosClient(auth_for(twin), retry_delay=0.02, timeout=10, connect_timeout=2) as c:
                tags = [(await c.version(node=a)).messages[0].version.tag for a in addrs]
                assert tags == ["v1.13.9", "v1.11.6", "v1.12.0"]
                await c.reboot(node=addrs[1], mode="force")
                await c.reboot(node=addrs[2], mode="force")
            # v1.11 does not know FORCE (value 2): an ordinary graceful reboot, without an error
            assert twin.machines["w1"].reboots == ["graceful"] and twin.machines["w2"].reboots == ["force"]
            await asyncio.sleep(0.1)
            assert twin.machines["w2"].os_up is False           # force: down at once
            assert twin.machines["w1"].os_up is True            # graceful: still stopping services
    asyncio.run(main())


def test_a_1_14_node_applies_any_change_in_place():
    async def main():
        async with talos_lab(controlplanes=1, workers=1, versions={"w1": "v1.14.0"}) as (twin, clock, addrs):
            async with TalosClient(auth_for(twin), retry_delay=0.02, timeout=10, connect_timeout=2) as c:
                current = await c.machine_config(node=addrs[1])
                docs = cfg.parse(current)
                docs[0]["machine"]["env"] = {"A": "1"}       # a reboot change for 1.9 .. 1.13
                new = cfg.dump(docs).encode()
                res = await c.apply_configuration(new, mode="auto", node=addrs[1])
                assert res["mode"] == "no_reboot" and twin.machines["w1"].reboots == []
    asyncio.run(main())
