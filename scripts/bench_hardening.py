"""Disk-encryption rolling benchmark: all 7 nodes of the tazlab scenario encrypted one by one.

An in-process lab world (its own loopback /24 and ports) whose clock runs at ``--time-scale`` real seconds per
simulated second; the collection's NodeRoll (what talos_disk_encryption runs) goes over the nodes in the
role's order (control planes, then workers). Prints per node and in total the simulated seconds (what the
rollout would take with the twin's timings: Talos reset, boot, kubelet, Longhorn rebuild) and the wall time,
plus the etcd quorum losses the twin recorded and the polls at which a Longhorn volume had no healthy replica.
Run with `.venv/bin/python scripts/bench_hardening.py [--time-scale 0.01]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from tazlab_lab.world import LabWorld, WorldThread  # noqa: E402

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.disk import NodeRoll  # noqa: E402
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params  # noqa: E402
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient  # noqa: E402
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import resolve_auth  # noqa: E402


def roll(world, node, state_dir, poll):
    addr = world.nodes[node["name"]].address
    params = dict(node=addr, node_name=node["name"],
                  role="controlplane" if node["role"] == "control-plane" else "worker",
                  control_planes=[world.nodes[n["name"]].address for n in world.cluster_nodes()
                                  if n["role"] == "control-plane"],
                  encryption_key={"type": "nodeID"}, state_dir=state_dir, poll_interval=poll, wait_timeout=600,
                  drain_timeout=120)
    kube = client_from_params({"kubeconfig": world.paths()["kubeconfig"]})

    def maintenance():
        return TalosClient(resolve_auth(endpoints=["%s:%s" % (addr, world.talos.port)], insecure=True),
                           timeout=5, connect_timeout=2, retries=0)

    async def go():
        async with TalosClient(resolve_auth(talosconfig=world.paths()["talosconfig"]), timeout=10,
                               connect_timeout=2, retry_delay=0.05) as talos:
            return await NodeRoll(talos, kube, params, maintenance=maintenance).run()
    return asyncio.run(go())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--time-scale", type=float, default=0.01)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-hardening-")
    world = LabWorld("tazlab", os.path.join(work, "world"), time_scale=args.time_scale, proxmox_port=0, isolated=True)
    handle = WorldThread(world)
    handle.start()
    rows = []
    try:
        nodes = sorted(world.cluster_nodes(), key=lambda n: n["role"] != "control-plane")
        sim0, wall0 = world.clock.now(), time.monotonic()
        for node in nodes:
            sim, wall = world.clock.now(), time.monotonic()
            result = roll(world, node, work, poll=max(0.02, 2.0 * args.time_scale))
            rows.append({"node": node["name"], "simulated_s": round(world.clock.now() - sim, 1),
                         "wall_s": round(time.monotonic() - wall, 2),
                         "steps": [s["step"] for s in result["steps"]],
                         "volumes_without_healthy_replica": result["invariant_violations"]})
        etcd = world.status()["etcd"]
        out = {"time_scale": args.time_scale, "nodes": rows,
               "total_simulated_s": round(world.clock.now() - sim0, 1),
               "total_wall_s": round(time.monotonic() - wall0, 2),
               "etcd_quorum_losses": len([e for e in etcd["quorum_events"] if e["event"] == "etcd-quorum-lost"]),
               "world_errors": [repr(e) for e in world.errors]}
    finally:
        handle.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
