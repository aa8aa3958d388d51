"""A Longhorn node whose data path was wiped (Talos Reset wiping EPHEMERAL: ``/var/lib/longhorn`` is gone).

From ../shared/reference/talos-hardening.md section 2 (longhorn-manager ``controller/monitor/
disk_monitor.go``): Longhorn regenerates a missing ``longhorn-disk.cfg`` with the recorded disk UUID, so
the disk comes back Ready and empty; the replicas that lived there fail at once (their instance
processes die with the node and their data is gone) and are rebuilt. A failed replica whose node and
disk are back is reused by a rebuild, which for an empty directory is a full copy from a healthy
replica (the volume controller's rebuild path in :mod:`.longhorn` does it, ``rebuild_seconds``).
"""

from __future__ import annotations

from .longhorn import LHR, Longhorn
from .util import LONGHORN_NS, iso


def wipe_node_disk(lh: Longhorn, node: str) -> list[str]:
    """Fail every replica on ``node`` (data lost); the volumes re-sync. Returns the replicas failed."""
    now = iso(lh.clock.now())
    failed, volumes = [], set()
    for r in list(lh.inf.items(LHR)):
        if (r.get("spec") or {}).get("nodeID") != node:
            continue
        name = r["metadata"]["name"]
        timer = lh._rebuild.pop(name, None)     # a rebuild into the wiped directory is lost with it
        if timer is not None:
            timer.cancel()
        rr = lh.store.get(LHR, LONGHORN_NS, name)
        if not rr["spec"].get("failedAt"):
            rr["spec"]["failedAt"] = now
        rr["spec"]["lastFailedAt"] = now
        rr["spec"]["healthyAt"] = ""
        rr.setdefault("status", {})["currentState"] = "stopped"
        lh.store.update(LHR, rr)
        failed.append(name)
        volumes.add(rr["spec"].get("volumeName", ""))
    for v in sorted(volumes):
        lh.q.add(v)
    return failed
