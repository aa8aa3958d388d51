"""Set-up of the Talos twin tests: a real twin on loopback, driven by a fast simulated clock.

(A plain module, not conftest.py: `from conftest import` would be ambiguous next to other areas' conftests.)
"""

from __future__ import annotations

import contextlib
import os
import random


import yaml

# Nothing of tazlab_lab.talos or ansible_collections is imported at module level: conftest files load
# before pytest-ansible installs Ansible's collection finder, and an early import would shadow it.

TIME_SCALE = 0.005   # real seconds per simulated second (200x faster than reality)
# Simulated seconds; long enough that a test sees each phase (a reboot takes ~0.3 s of real time).
TEST_TIMINGS = dict(apply=0.5, shutdown=20, reboot_downtime=20, boot=20, power_on=10, etcd_tick=2, address_move=1)
# For tests that look at a node inside a phase (rebooting, down): windows of 0.5-1 s of real time, so a
# loaded machine still sees them.
SLOW_TIMINGS = dict(TEST_TIMINGS, shutdown=100, reboot_downtime=200)


def _octets():
    rng = random.Random(os.getpid() ^ random.getrandbits(32))
    return rng.randint(100, 250), rng.randint(1, 250)


@contextlib.asynccontextmanager
async def talos_lab(controlplanes=3, workers=1, timings=None, port=None, pki=None, versions=None):
    """A started twin; yields (twin, clock, addresses). The clock runs at TIME_SCALE.

    ``versions``: {node name: Talos version tag} for nodes that run another version than v1.13.9."""
    versions = versions or {}
    from tazlab_lab.clock import SimClock
    from tazlab_lab.talos import TalosTwin, Timings

    a, b = _octets()
    clock = SimClock()
    twin = TalosTwin(clock, port=port or 50000, timings=timings or Timings(**TEST_TIMINGS), pki=pki)
    addrs = []
    for i in range(controlplanes):
        addrs.append(f"127.{a}.{b}.{11 + i}")
        twin.add_node(f"cp{i + 1}", addrs[-1], "controlplane", version=versions.get(f"cp{i + 1}", "v1.13.9"))
    for i in range(workers):
        addrs.append(f"127.{a}.{b}.{21 + i}")
        twin.add_node(f"w{i + 1}", addrs[-1], "worker", version=versions.get(f"w{i + 1}", "v1.13.9"))
    await twin.start()
    clock.start(TIME_SCALE, tick=0.004)
    try:
        yield twin, clock, addrs
    finally:
        await clock.stop()
        await twin.stop()
        assert not clock.errors, clock.errors


def auth_for(twin, role="os:admin", endpoints=None, nodes=None):
    """The collection's TalosAuth, parsed from the talosconfig text the twin writes."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import auth_from_talosconfig

    return auth_from_talosconfig(yaml.safe_load(twin.talosconfig(role, endpoints=endpoints, nodes=nodes)))
