#!/usr/bin/env python3
"""STONITH benchmark: a partitioned worker (VM running, network cut) until Traefik runs elsewhere.

A fresh lab (`tazlab-lab up --isolated`) at the given time scale, the network of the node that runs Traefik
cut (`fault partition`: Proxmox still shows its VM running), then as soon as Kubernetes marks it NotReady
`playbooks/dr_recover.yml` (fence through Proxmox, prove off, free, verify). Prints, in simulated seconds
from the partition: NotReady, Traefik Running on another node; and the runbook's wall time. Run with
`.venv/bin/python scripts/bench_stonith.py [--time-scale 1.0] [--unhealthy-seconds 0]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_dr  # noqa: E402  (its lab helpers)

ROOT, BIN = bench_dr.ROOT, bench_dr.BIN


def ready(core, node):
    for cond in core.read_node(node).status.conditions or []:
        if cond.type == "Ready":
            return cond.status
    return "Unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--unhealthy-seconds", type=int, default=0,
                        help="disaster_recovery_unhealthy_seconds (the role's default is 300)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-stonith-")
    directory = os.path.join(work, "lab")
    bench_dr.lab("up", "--scenario", "tazlab", "--dir", directory, "--time-scale", str(args.time_scale), "--isolated",
                 timeout=600)
    try:
        core = bench_dr.kube(directory)
        pods = [p for p in core.list_namespaced_pod("traefik", label_selector="app.kubernetes.io/name=traefik").items
                if p.status.phase == "Running"]
        node = pods[0].spec.node_name
        t_part = bench_dr.control(directory, "/status")["clock"]["now"]
        bench_dr.lab("fault", "--dir", directory, "partition", node)
        while ready(core, node) == "True":
            time.sleep(0.2)
        t_notready = bench_dr.control(directory, "/status")["clock"]["now"]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"],
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"))
        t0 = time.monotonic()
        proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), os.path.join(ROOT, "playbooks", "dr_recover.yml"),
                               "-i", os.path.join(directory, "inventory.yaml"), "-e", json.dumps({
                                   "disaster_recovery_timeline_dir": os.path.join(directory, "artifacts"),
                                   "disaster_recovery_unhealthy_seconds": args.unhealthy_seconds})],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        recovered = None
        deadline = time.monotonic() + 600 * args.time_scale + 60
        while time.monotonic() < deadline and recovered is None:
            recovered = bench_dr.recovered_at(core, [("traefik", "traefik")], node)
            time.sleep(0.5)
        result = {"time_scale": args.time_scale, "node": node, "ok": proc.returncode == 0,
                  "unhealthy_seconds": args.unhealthy_seconds,
                  "simulated_s_partition_to_notready": round(t_notready - t_part, 1),
                  "runbook_wall_s": round(wall, 1),
                  "simulated_s_partition_to_traefik_running": None if recovered is None else round(recovered - t_part, 1)}
        print(json.dumps(result, indent=2))
    finally:
        bench_dr.lab("down", "--dir", directory, check=False, timeout=120)


if __name__ == "__main__":
    main()
