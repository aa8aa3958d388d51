"""Recovery with no human (what `make demo-auto` runs).

1. start the lab with the seed story's cluster (tazlab scenario), in real time (time scale 1);
2. start ansible-rulebook with the collection's rulebook tazlab.resilience.auto_recover;
3. pull the plug on worker-new-03, the worker that runs Traefik; no command is typed after this;
4. wait until Traefik runs on another worker and print the time from the power loss to Traefik Running
   on the cluster's clock, with the recovery timeline the rulebook's run of dr_recover wrote;
5. stop the rulebook and the lab (always).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo import LAB as _DEMO_LAB, lab, traefik  # noqa: E402  pylint: disable=wrong-import-position
from eda_lab import Rulebook, java_home  # noqa: E402  pylint: disable=wrong-import-position

LAB = _DEMO_LAB + "-auto"
NODE = "worker-new-03"


def cluster_now():
    with open(os.path.join(LAB, "state.json"), encoding="utf-8") as fh:
        url = json.load(fh)["control_url"]
    import urllib.request  # pylint: disable=import-outside-toplevel
    return json.load(urllib.request.urlopen(url + "/status", timeout=30))["clock"]["now"]


def traefik_ready_at(kubeconfig):
    """Cluster time at which a Traefik pod off the dead node became Ready, or None."""
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    for pod in api.list_namespaced_pod("traefik", label_selector="app.kubernetes.io/name=traefik").items:
        if pod.metadata.deletion_timestamp or pod.spec.node_name == NODE or pod.status.phase != "Running":
            continue
        for cond in pod.status.conditions or []:
            if cond.type == "Ready" and cond.status == "True":
                return cond.last_transition_time.timestamp(), pod.spec.node_name
    return None


def main() -> int:
    try:
        home, version = java_home()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("java {0} at {1}".format(version, home))
    os.makedirs(LAB, exist_ok=True)
    lab("down", "--dir", LAB)
    lab("up", "--scenario", "tazlab", "--dir", LAB, "--time-scale", "1")
    rulebook = Rulebook(LAB, unhealthy_seconds=60, powered_off_seconds=0)
    try:
        kubeconfig = os.path.join(LAB, "kubeconfig")
        print("\nTraefik before:", traefik(kubeconfig))
        print("$ ansible-rulebook -r tazlab.resilience.auto_recover -i {0}/inventory.yaml -e {0}/eda-vars.yml".format(LAB))
        rulebook.start()
        print("rulebook running (log: {0}); now the fault, and no command after it".format(rulebook.log_path))
        t_loss = cluster_now()
        lab("fault", "--dir", LAB, "power-loss", NODE)
        deadline = time.monotonic() + 300
        found = None
        while time.monotonic() < deadline and found is None:
            time.sleep(0.5)
            found = traefik_ready_at(kubeconfig)
        print("\nTraefik after:", traefik(kubeconfig))
        timeline_path = os.path.join(LAB, "artifacts", "dr-timeline-{0}.json".format(NODE))
        deadline = time.monotonic() + 60
        while not os.path.exists(timeline_path) and time.monotonic() < deadline:
            time.sleep(0.5)
        if os.path.exists(timeline_path):
            with open(timeline_path, encoding="utf-8") as fh:
                timeline = json.load(fh)["timeline"]
            print("\nTimeline of the rulebook's dr_recover run (wall seconds since its start, step, node):")
            for entry in timeline:
                print("  %7.2f  %-16s %s" % (float(entry["wall_elapsed"]), entry["step"], entry["node"] or "-"))
        if found is None:
            print("Traefik is not running on another worker; rulebook log tail:\n" + rulebook.log()[-3000:],
                  file=sys.stderr)
            return 1
        ready, where = found
        print("\npower loss at %s (cluster clock)" % datetime.datetime.fromtimestamp(t_loss, datetime.timezone.utc))
        print("Traefik Running on %s %.1f s after the power loss, with no command typed after the fault."
              % (where, ready - t_loss))
        return 0
    finally:
        rulebook.stop()
        lab("down", "--dir", LAB)


if __name__ == "__main__":
    sys.exit(main())
