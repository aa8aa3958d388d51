"""The main job on the lab twin, end to end (what `make demo` runs).

1. start the lab with the seed story's cluster (tazlab scenario);
2. pull the plug on worker-new-03, the worker that runs Traefik (acme.json on a Longhorn RWO volume);
3. run playbooks/dr_recover.yml with the inventory the tazlab.resilience.cluster plugin builds from the
   lab's tazlab.cluster.yml (the same plugin file a real cluster uses);
4. show Traefik running again on another worker, and the recovery timeline;
5. stop the lab (always).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
LAB = os.path.join(ROOT, ".lab", "demo")
NODE = "worker-new-03"


def run(argv, **kwargs):
    print("$ " + " ".join(argv), flush=True)
    return subprocess.run(argv, check=True, cwd=ROOT, **kwargs)


def lab(*args, capture=False):
    argv = [os.path.join(BIN, "tazlab-lab"), *args]
    if capture:
        return subprocess.run(argv, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return run(argv)


def traefik(kubeconfig):
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    pods = api.list_namespaced_pod("traefik", label_selector="app.kubernetes.io/name=traefik").items
    return [(p.metadata.name, p.spec.node_name, p.status.phase, bool(p.metadata.deletion_timestamp)) for p in pods]


def main() -> int:
    os.makedirs(LAB, exist_ok=True)
    lab("down", "--dir", LAB)
    started = time.monotonic()
    lab("up", "--scenario", "tazlab", "--dir", LAB, "--time-scale", "0.05")
    print("lab up in %.1f s" % (time.monotonic() - started))
    try:
        kubeconfig = os.path.join(LAB, "kubeconfig")
        print("\nTraefik before:", traefik(kubeconfig))
        lab("fault", "--dir", LAB, "power-loss", NODE)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"])
        artifacts = os.path.join(LAB, "artifacts")
        t0 = time.monotonic()
        run([os.path.join(BIN, "ansible-playbook"), "playbooks/dr_recover.yml",
             "-i", os.path.join(LAB, "tazlab.cluster.yml"),
             "-e", "disaster_recovery_timeline_dir=" + artifacts], env=env)
        wall = time.monotonic() - t0
        after = traefik(kubeconfig)
        print("\nTraefik after:", after)
        running = [p for p in after if p[2] == "Running" and not p[3]]
        with open(os.path.join(artifacts, "dr-timeline.json"), encoding="utf-8") as fh:
            timeline = json.load(fh)["timeline"]
        print("\nTimeline (wall seconds since start, step, node, cluster time, changed):")
        for entry in timeline:
            print("  %7.2f  %-16s %-14s %s  %s" % (entry["wall_elapsed"], entry["step"], entry["node"] or "-",
                                                   entry["cluster_time"], entry["changed"]))
        print("\nrunbook wall time: %.1f s" % wall)
        lab("status", "--dir", LAB)
        if not running or running[0][1] == NODE:
            print("Traefik is not running on another worker", file=sys.stderr)
            return 1
        print("\nTraefik is Running on %s again." % running[0][1])
        return 0
    finally:
        lab("down", "--dir", LAB)


if __name__ == "__main__":
    sys.exit(main())
