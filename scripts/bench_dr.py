"""Benchmark of the recovery (issue 9): the dr_recover runbook against two baselines, on the lab twin.

For each method and scenario: start a fresh lab, pull the plug on the node that runs the measured
workloads, start the method at once (the VM is seen stopped), and measure

* the simulated time from the power loss until every measured workload has a Ready pod on another node
  (read from the pods' Ready condition, which the twin stamps with its simulated clock);
* the method's wall time;
* the Kubernetes API requests the method made (the twin's request counter, per verb and resource).

Methods: ``runbook`` (playbooks/dr_recover.yml), ``kubernetes_core`` (benchmarks/baseline_kubernetes_core.yml:
k8s_info and k8s in loops) and ``kubectl`` (benchmarks/baseline_kubectl.sh: the seed story's manual
sequence). Scenarios: ``tazlab`` (the seed cluster; measured workload: Traefik on worker-new-03) and, with
``--large``, a generated 500-node / 20,000-pod cluster where the failed node holds 200 pods and 100 Longhorn
volumes.

Two clocks matter. At ``--time-scale 1`` simulated time is real time: the simulated recovery time is what
a real cluster would show, the runbook's own duration included. At a fast scale (0.05: twenty simulated
seconds per real second) the cluster's own reactions shrink and the wall time is mostly the method's own
cost. The script prints measured numbers and writes them as JSON; it asserts nothing.

    .venv/bin/python scripts/bench_dr.py [--large] [--time-scale 1 --time-scale 0.05] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, os.path.join(ROOT, "lab"))

HOT_LABEL = "bench.tazlab.io/pool"
HOLD_TAINT = "bench.tazlab.io/hold"


# ------------------------------------------------------------------------------ scenarios
def tazlab_scenario():
    return {"name": "tazlab", "scenario": "tazlab", "node": "worker-new-03",
            "workloads": [("traefik", "traefik")], "up_timeout": 120,
            "wait": ("traefik", ["app.kubernetes.io/name=traefik"], 1)}


def two_workers_scenario():
    """Two workers of the seed cluster lose power at once (issue 21: recovered in parallel within the guards).

    With 2 of 4 workers dead the default min_healthy (51%) refuses (a storm guard); the operator allows it with
    min_healthy 50%, as the storm limit of a cluster that can run on half its workers.
    """
    return {"name": "tazlab-2-workers", "scenario": "tazlab", "node": "worker-new-03",
            "nodes": ["worker-new-03", "worker-new-02"], "workloads": [("traefik", "traefik"), ("apps", "blog")],
            "up_timeout": 120, "wait": ("traefik", ["app.kubernetes.io/name=traefik"], 1),
            "runbook_vars": {"disaster_recovery_min_healthy": "50%"}, "methods": ("runbook",)}


def large_scenario(workdir, nodes=500, pods=20000, hot_pods=200, hot_volumes=100):
    """500 workers; worker-0001 gets 100 stateful (one Longhorn RWO volume each) and 100 stateless pods.

    worker-0001 and worker-0002 run with maxPods 250 (the kubelet default of 110 could not hold them).

    Placement uses Kubernetes itself: the hot workloads select the label of a two-node pool (worker-0001
    and worker-0002), and worker-0002 is held back by a NoSchedule taint until the cluster has settled;
    the benchmark lifts it before the power loss, so replacements have somewhere to go.
    """
    from tazlab_lab.k8s.scenario import _deployment, generate_scenario, normalize

    data = generate_scenario(nodes=nodes, pods=pods - hot_pods, volumes=400, name="bench-large")
    by_name = {n["name"]: n for n in data["nodes"]}
    for name in ("worker-0001", "worker-0002"):
        by_name[name].setdefault("labels", {})[HOT_LABEL] = "hot"
        by_name[name]["maxPods"] = 250  # a kubelet configured above the default 110, as dense nodes are
    by_name["worker-0002"].setdefault("taints", []).append({"key": HOLD_TAINT, "value": "true", "effect": "NoSchedule"})
    data["namespaces"] = sorted(set(data["namespaces"]) | {"hot"})
    measured = []
    for i in range(hot_pods):
        claim = "hot-data-{0:03d}".format(i) if i < hot_volumes else None
        if claim:
            data["pvcs"].append({"namespace": "hot", "name": claim, "size": "1Gi", "storageClass": "longhorn"})
        name = "hot-{0}-{1:03d}".format("stateful" if claim else "web", i)
        dep = _deployment("hot", name, 1, claim=claim)
        dep["spec"]["template"]["spec"]["nodeSelector"] = {HOT_LABEL: "hot"}
        data["workloads"].append(dep)
        measured.append(("hot", name))
    path = os.path.join(workdir, "bench-large.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(normalize(data), fh, sort_keys=False)
    return {"name": "large-500", "scenario": path, "node": "worker-0001", "workloads": measured,
            "release_hold": "worker-0002", "up_timeout": 900, "wait": ("hot", [], hot_pods)}


# ------------------------------------------------------------------------------ lab helpers
def lab(*args, check=True, timeout=None):
    proc = subprocess.run([os.path.join(BIN, "tazlab-lab"), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("tazlab-lab {0} failed: {1}{2}".format(args[0], proc.stdout, proc.stderr))
    return proc


def control(directory, path):
    with open(os.path.join(directory, "state.json"), encoding="utf-8") as fh:
        url = json.load(fh)["control_url"]
    return json.load(urllib.request.urlopen(url + path, timeout=60))


def counts(directory):
    return {(c["verb"], c["resource"]): c["count"] for c in control(directory, "/requests")["counts"]}


def delta(after, before):
    out = {}
    for key, n in after.items():
        d = n - before.get(key, 0)
        if d:
            out["{0} {1}".format(*key)] = d
    return out


def kube(directory):
    from kubernetes import client, config
    api = config.new_client_from_config(config_file=os.path.join(directory, "kubeconfig"))
    return client.CoreV1Api(api)


def parse_ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def recovered_at(core, workloads, dead_nodes):
    """Simulated time at which the last measured workload got a Ready pod off the dead nodes, or None."""
    dead_nodes = set([dead_nodes] if isinstance(dead_nodes, str) else dead_nodes)
    latest = 0.0
    by_ns = {}
    for ns, name in workloads:
        by_ns.setdefault(ns, set()).add(name)
    for ns, names in by_ns.items():
        pods = core.list_namespaced_pod(ns).items
        for name in names:
            best = None
            for pod in pods:
                labels = pod.metadata.labels or {}
                if labels.get("app") != name and labels.get("app.kubernetes.io/name") != name:
                    continue
                if pod.metadata.deletion_timestamp or pod.spec.node_name in dead_nodes or pod.status.phase != "Running":
                    continue
                for cond in pod.status.conditions or []:
                    if cond.type == "Ready" and cond.status == "True":
                        t = cond.last_transition_time.timestamp()
                        best = t if best is None else min(best, t)
            if best is None:
                return None
            latest = max(latest, best)
    return latest


# ------------------------------------------------------------------------------ methods
def old_tree(ref, workdir):
    """The collection as it was at git ref, exported into workdir (for the runbook@<ref> method): the old numbers
    are measured in the same run, on the same machine, next to the new ones."""
    dest = os.path.join(workdir, "tree-" + ref.replace("/", "_"))
    if not os.path.isdir(dest):
        os.makedirs(dest)
        archive = subprocess.run(["git", "-C", ROOT, "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        link = os.path.join(dest, "collections", "ansible_collections", "tazlab")
        os.makedirs(link, exist_ok=True)
        os.symlink(dest, os.path.join(link, "resilience"))
    return dest


def tree_of(method, workdir):
    """(the collection's root for this method, the runbook variant): runbook -> this checkout; runbook@<ref> -> ref."""
    if method.startswith("runbook@"):
        return old_tree(method.split("@", 1)[1], workdir), "runbook"
    return ROOT, method


def method_argv(method, directory, node, scenario, root=ROOT):
    inventory = os.path.join(directory, "inventory.yaml")
    if method == "runbook":
        extra = dict({"disaster_recovery_timeline_dir": os.path.join(directory, "artifacts")},
                     **scenario.get("runbook_vars", {}))
        return [os.path.join(BIN, "ansible-playbook"), os.path.join(root, "playbooks", "dr_recover.yml"),
                "-i", inventory, "-e", json.dumps(extra)]
    if method == "kubernetes_core":
        return [os.path.join(BIN, "ansible-playbook"), os.path.join(ROOT, "benchmarks", "baseline_kubernetes_core.yml"),
                "-i", inventory, "-e", json.dumps({"node": node, "wait_namespace": scenario["wait"][0],
                                                   "wait_selectors": scenario["wait"][1], "wait_count": scenario["wait"][2]})]
    if method == "kubectl":
        return ["bash", os.path.join(ROOT, "benchmarks", "baseline_kubectl.sh"), os.path.join(directory, "kubeconfig"), node,
                scenario["wait"][0], ",".join(scenario["wait"][1]), str(scenario["wait"][2])]
    raise ValueError(method)


def lab_up(scenario, directory, time_scale):
    """A fresh isolated lab of the scenario in `directory`; the wall-clock seconds it took to come up."""
    shutil.rmtree(directory, ignore_errors=True)
    t_up = time.monotonic()
    lab("up", "--scenario", scenario["scenario"], "--dir", directory, "--time-scale", str(time_scale), "--isolated",
        "--timeout", str(scenario["up_timeout"]), timeout=scenario["up_timeout"] + 60)
    return time.monotonic() - t_up


def release_hold(core, scenario):
    """Take the hold taint off the node the scenario holds back (if it does), so it can take the pods."""
    if scenario.get("release_hold"):
        held = core.read_node(scenario["release_hold"])
        taints = [t.to_dict() for t in held.spec.taints or [] if t.key != HOLD_TAINT]
        core.patch_node(scenario["release_hold"], {"spec": {"taints": taints or None}})


def run_method(method, scenario, time_scale, workdir):
    directory = os.path.join(workdir, "{0}-{1}-{2}".format(scenario["name"], method, time_scale))
    timing_path = os.path.join(workdir, "timing-{0}-{1}-{2}.json".format(scenario["name"], method, time_scale))
    up_seconds = lab_up(scenario, directory, time_scale)
    try:
        core = kube(directory)
        node = scenario["node"]
        release_hold(core, scenario)
        dead = scenario.get("nodes") or [node]
        on_node = sum(len(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=" + n).items) for n in dead)
        from kubernetes import client as k8s_client
        vas = [va for va in k8s_client.StorageV1Api(core.api_client).list_volume_attachment().items
               if va.spec.node_name in dead]
        # Affected objects (issue 21's "pods + volumes + VAs"): the pods of the failed nodes, their volumes and
        # the VolumeAttachments naming them.
        affected = on_node + len(vas) + len(set(va.spec.source.persistent_volume_name for va in vas))
        before = counts(directory)
        t_loss = control(directory, "/status")["clock"]["now"]
        for name in dead:
            lab("fault", "--dir", directory, "power-loss", name)
        t_loss_wall = time.time()
        root, variant = tree_of(method, workdir)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"],
                   ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(root, "collections"),
                                                            os.path.join(ROOT, ".cache", "collections")]),
                   KUBECTL_CACHE=os.path.join(directory, "kubectl-cache"),
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "benchmarks", "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="task_timing", TAZLAB_TASK_TIMING=timing_path)
        t0 = time.monotonic()
        launched = time.time()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(method_argv(variant, directory, node, scenario, root=root), cwd=root, env=env,
                              capture_output=True, text=True, timeout=1800, check=False)
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the method's processes (ansible-playbook, its forks and modules, kubectl): what the method
        # costs whatever else loads the machine (wall times on a shared 2-core machine swing with the load).
        cpu = round((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime), 2)
        made = delta(counts(directory), before)
        free_events = free_events_of(os.path.join(directory, "artifacts", "dr-timeline.json"))
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        recovered = None
        deadline = time.monotonic() + 600 * time_scale + 60
        while time.monotonic() < deadline:
            recovered = recovered_at(core, scenario["workloads"], dead)
            if recovered is not None:
                break
            time.sleep(0.5)
        return {
            "scenario": scenario["name"], "method": method, "time_scale": time_scale, "ok": proc.returncode == 0,
            "failed_nodes": dead,
            "lab_up_seconds": round(up_seconds, 2), "pods_on_failed_node": on_node, "affected_objects": affected,
            "measured_workloads": len(scenario["workloads"]),
            "wall_seconds": round(wall, 2), "cpu_seconds": cpu, "load_average": round(os.getloadavg()[0], 2),
            "simulated_seconds_to_recovered": None if recovered is None else round(recovered - t_loss, 1),
            "api_requests": sum(made.values()), "api_requests_by_kind": dict(sorted(made.items())),
            "tasks": task_profile(timing_path, launched, t_loss_wall, time_scale, recovered, t_loss),
            "free_events": free_events,
        }
    finally:
        lab("down", "--dir", directory, check=False, timeout=120)


# ------------------------------------------------------------------------------ MTTR (issue 16)
MTTR_METHODS = ("rulebook", "runbook", "kubernetes")
MTTR_PHASES = ("detection", "plan", "fence", "detach", "attach", "start")


def _cluster_ts(text):
    return None if not text else parse_ts(text)


def _mttr_env(directory):
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"],
                ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(
                    [os.path.join(ROOT, "collections"), os.path.join(ROOT, ".cache", "collections")]))


def _replacement_pod(core, scenario, dead):
    """The measured workload's pod that runs off the dead node (the first workload: Traefik on the seed
    cluster, the first stateful hot pod on the large one), or None."""
    ns, name = scenario["workloads"][0]
    for pod in core.list_namespaced_pod(ns).items:
        labels = pod.metadata.labels or {}
        if labels.get("app") != name and labels.get("app.kubernetes.io/name") != name:
            continue
        if pod.metadata.deletion_timestamp or pod.spec.node_name in (None, dead):
            continue
        return pod
    return None


def _pod_milestones(core, pod):
    """Cluster-clock times of a pod: created, scheduled, volume attached (attachdetach-controller's event),
    Ready."""
    out = {"created": pod.metadata.creation_timestamp.timestamp()}
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "True" and cond.last_transition_time:
            out["scheduled"] = cond.last_transition_time.timestamp()
        if cond.type == "Ready" and cond.status == "True" and cond.last_transition_time:
            out["ready"] = cond.last_transition_time.timestamp()
    events = core.list_namespaced_event(pod.metadata.namespace,
                                        field_selector="involvedObject.name=" + pod.metadata.name).items
    for ev in events:
        when = ev.event_time or ev.last_timestamp or ev.first_timestamp
        if ev.reason == "SuccessfulAttachVolume" and when is not None:
            out["attached"] = when.timestamp()
    return out


def _timeline(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)["timeline"]
    except (OSError, ValueError, KeyError):
        return None


def _step_time(timeline, step, offset):
    """Cluster-clock time at which the runbook recorded `step` (its wall time + the cluster's offset)."""
    for entry in timeline or []:
        if entry.get("step") == step and entry.get("wall_time"):
            return parse_ts(entry["wall_time"]) + offset
    return None


def _trigger_time(rulebook_log, node):
    """Cluster-clock time of the source's node_unhealthy event for `node` (the rulebook's log)."""
    import re
    found = re.search(r"node_health: node_unhealthy {0} at (\S+) \(API server clock\)".format(re.escape(node)),
                      rulebook_log)
    return parse_ts(found.group(1)) if found else None


def mttr_breakdown(t_loss, t_trigger, timeline, offset, milestones):
    """Seconds per phase on the cluster's clock (None where a phase did not happen):

    detection  power loss -> the trigger (the rulebook's node_unhealthy event; the person's start at the fault)
    plan       trigger -> the runbook's plan recorded (ansible-playbook start, Proxmox listing, guards)
    fence      plan -> the fence proof recorded (claim, Proxmox stop or proof of stopped)
    detach     fence -> the replacement pod created (wait for the stale Ready, taint, force-delete, VolumeAttachment
               deleted, the ReplicaSet's new pod)
    attach     created -> its volume attached on the new node (scheduling, Longhorn attach)
    start      attached -> Ready (init container, container start, readiness probe)
    """
    marks = [("detection", t_trigger), ("plan", _step_time(timeline, "detect", offset)),
             ("fence", _step_time(timeline, "fence", offset)), ("detach", milestones.get("created")),
             ("attach", milestones.get("attached") or milestones.get("scheduled")), ("start", milestones.get("ready"))]
    out = {}
    last = t_loss
    for phase, when in marks:
        if when is None or last is None:  # a phase that did not happen: the later ones have no start either
            out[phase] = None
            last = None
            continue
        out[phase] = round(max(0.0, when - last), 1)
        last = when
    return out


def _stuck(core, pod, t_loss, milestones):
    """Where a recovery that did not happen stands: when the replacement pod appeared, and the attach errors."""
    if pod is None:
        return "no replacement pod (the dead node's pod is still the ReplicaSet's)"
    events = core.list_namespaced_event(pod.metadata.namespace,
                                        field_selector="involvedObject.name=" + pod.metadata.name).items
    failed = [ev for ev in events if ev.reason == "FailedAttachVolume"]
    note = "replacement pod created {0:.0f} s after the power loss".format(milestones["created"] - t_loss)
    if failed:
        note += ", {0}: {1}".format(failed[-1].reason, (failed[-1].message or "")[:90])
    elif "attached" not in milestones:
        note += ", its volume never attached"
    return note


def mttr_run(method, scenario, time_scale, workdir, window, settle_scale):
    """One power loss, one method, on a fresh isolated lab; MTTR on the cluster's clock.

    rulebook: ansible-rulebook with tazlab.resilience.auto_recover, started before the fault; nothing else runs.
    runbook: playbooks/dr_recover.yml started by hand at the moment of the fault.
    kubernetes: nothing but the cluster (its controllers, the kubelets, Longhorn's defaults) for `window`
    simulated seconds.
    """
    from eda_lab import Rulebook  # pylint: disable=import-outside-toplevel
    directory = os.path.join(workdir, "mttr-{0}-{1}-{2}".format(scenario["name"], method, time_scale))
    up_seconds = lab_up(scenario, directory, settle_scale or time_scale)
    rulebook = proc = None
    try:
        core = kube(directory)
        node = scenario["node"]
        release_hold(core, scenario)
        if settle_scale and settle_scale != time_scale:
            lab("scale", "--dir", directory, str(time_scale))
        if method == "rulebook":
            rulebook = Rulebook(directory, unhealthy_seconds=60, powered_off_seconds=0).start(timeout=300)
            time.sleep(3)  # the source's clock estimate (its Date readings) settles
        clock = control(directory, "/status")["clock"]
        t_loss, offset = clock["now"], clock["now"] - time.time()
        lab("fault", "--dir", directory, "power-loss", node)
        if method == "runbook":
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                method_argv("runbook", directory, node, scenario), cwd=ROOT, env=_mttr_env(directory),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recovered = None
        deadline = time.monotonic() + window * time_scale + 120
        while time.monotonic() < deadline:
            recovered = recovered_at(core, scenario["workloads"], node)
            if recovered is not None or control(directory, "/status")["clock"]["now"] > t_loss + window:
                break
            time.sleep(0.5)
        timeline_path = os.path.join(directory, "artifacts", "dr-timeline-{0}.json".format(node)
                                     if method == "rulebook" else "dr-timeline.json")
        if proc is not None:
            proc.wait(timeout=600)
        if rulebook is not None:
            end = time.monotonic() + 300
            while time.monotonic() < end and not (rulebook.count("PLAY RECAP") and os.path.exists(timeline_path)):
                time.sleep(0.5)
        timeline = _timeline(timeline_path) if method != "kubernetes" else None
        pod = _replacement_pod(core, scenario, node)
        milestones = _pod_milestones(core, pod) if pod is not None else {}
        t_trigger = {"rulebook": _trigger_time(rulebook.log(), node) if rulebook else None,
                     "runbook": t_loss}.get(method)
        runs = rulebook.count("PLAY RECAP") if rulebook else (1 if proc is not None else 0)
        seen = control(directory, "/status")["clock"]["now"] - t_loss
        return {"scenario": scenario["name"], "method": method, "time_scale": time_scale,
                "lab_up_seconds": round(up_seconds, 1), "runs": runs,
                "mttr_seconds": None if recovered is None else round(recovered - t_loss, 1),
                "observed_seconds": round(seen, 1), "window_seconds": window,
                "phases": mttr_breakdown(t_loss, t_trigger, timeline, offset, milestones),
                "recovered_on": pod.spec.node_name if pod is not None and recovered is not None else None,
                "stuck": None if recovered is not None else _stuck(core, pod, t_loss, milestones)}
    finally:
        if rulebook is not None:
            shutil.copy(rulebook.log_path, os.path.join(workdir, "rulebook-{0}.log".format(scenario["name"])))
            rulebook.stop()
        if proc is not None and proc.poll() is None:
            proc.kill()
        lab("down", "--dir", directory, check=False, timeout=120)


def mttr_table(results, goals=((20.0, "EDA issue"), (15.0, "issue 21"))):
    lines = ["| scenario | method | time scale | MTTR s (cluster clock) | runs | " + " | ".join(MTTR_PHASES) + " |",
             "|---|---|---|---|---|" + "---|" * len(MTTR_PHASES)]
    for r in results:
        if r["mttr_seconds"] is None:
            mttr = "never (not recovered in {0:.0f} s observed)".format(r["observed_seconds"])
        else:
            goal_note = " (goals: {0})".format(", ".join("{0} <= {1:.0f}".format(who, g) for g, who in goals)) \
                if r["method"] == "rulebook" and r["scenario"] == "tazlab" else ""
            mttr = "{0}{1}".format(r["mttr_seconds"], goal_note)
        phases = ["-" if r["phases"].get(p) is None else str(r["phases"][p]) for p in MTTR_PHASES]
        lines.append("| {0} | {1} | {2} | {3} | {4} | {5} |".format(
            r["scenario"], r["method"], r["time_scale"], mttr, r["runs"], " | ".join(phases)))
    groups = {}
    for r in results:
        groups.setdefault((r["scenario"], r["method"], r["time_scale"]), []).append(r["mttr_seconds"])
    if any(len(v) > 1 for v in groups.values()):
        lines += ["", "| scenario | method | runs | MTTR median s | min | max |", "|---|---|---|---|---|---|"]
        for (scen, method, _scale), values in groups.items():
            done = sorted(v for v in values if v is not None)
            if len(done) < len(values):
                lines.append("| {0} | {1} | {2} | never ({3} of {2} not recovered) | - | - |".format(
                    scen, method, len(values), len(values) - len(done)))
                continue
            median = done[len(done) // 2] if len(done) % 2 else round((done[len(done) // 2 - 1] + done[len(done) // 2]) / 2, 1)
            lines.append("| {0} | {1} | {2} | {3} | {4} | {5} |".format(scen, method, len(values), median, done[0], done[-1]))
    for r in results:
        if r.get("stuck"):
            lines.append("")
            lines.append("{0} / {1}: {2}".format(r["scenario"], r["method"], r["stuck"]))
    lines += ["", "Phases, seconds on the cluster's clock, each from the end of the previous one:"]
    for line in (mttr_breakdown.__doc__ or "").split("\n\n")[1].splitlines():
        line = line.strip()
        if line.split(" ", 1)[0] in MTTR_PHASES:
            lines.append("- " + line)
        elif line:
            lines[-1] += " " + line
    return "\n".join(lines)


def mttr_main(args):
    """--mttr: the MTTR table (rulebook alone, runbook by hand, Kubernetes defaults) for the seed cluster and,
    with --large, the 500-node cluster."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    scale = (args.time_scale or [1.0])[0]
    workdir = tempfile.mkdtemp(prefix="tazlab-mttr-")
    scenarios = [] if args.only_large else [tazlab_scenario()]
    if args.large or args.only_large:
        scenarios.append(large_scenario(workdir))
    results = []
    for scenario in scenarios:
        for method in args.mttr_methods.split(","):
            if method not in MTTR_METHODS:
                raise SystemExit("--mttr-methods: one of {0}".format(", ".join(MTTR_METHODS)))
            run_scale = args.defaults_time_scale if method == "kubernetes" and args.defaults_time_scale else scale
            for _round in range(1 if method == "kubernetes" else max(1, args.mttr_repeat)):
                r = mttr_run(method, scenario, run_scale, workdir, args.mttr_window, args.settle_time_scale)
                print(json.dumps(r), flush=True)
                results.append(r)
    report = mttr_table(results)
    print(report)
    os.makedirs(args.out, exist_ok=True)
    stamp = "mttr-" + ("large" if args.only_large else "tazlab" + ("+large" if args.large else ""))
    with open(os.path.join(args.out, "bench_dr-{0}.json".format(stamp)), "w", encoding="utf-8") as fh:
        json.dump({"when": datetime.datetime.now(datetime.timezone.utc).isoformat(), "machine": os.uname().nodename,
                   "cpus": os.cpu_count(), "results": results}, fh, indent=2)
    with open(os.path.join(args.out, "bench_dr-{0}.md".format(stamp)), "w", encoding="utf-8") as fh:
        fh.write(report + "\n")
    print("rulebook logs kept in " + workdir)


def task_profile(path, launched, t_loss_wall, time_scale, recovered, t_loss):
    """Where the method's seconds went: ansible-playbook start-up, then each task (start to the next task's start).

    Seconds are wall seconds from the method's launch; ``recovered_wall`` places the measured workloads'
    recovery on the same axis (simulated seconds since the loss, times the scale, minus the launch delay).
    """
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    tasks = [{"name": t["name"], "action": t["action"], "start": round(t["start"] - launched, 3),
              "seconds": round((t["end"] or data["end"]) - t["start"], 3)} for t in data["tasks"]]
    out = {"startup_seconds": round((data["tasks"][0]["start"] if data["tasks"] else data["end"]) - launched, 3),
           "launch_after_loss_seconds": round(launched - t_loss_wall, 3), "tasks": tasks}
    if recovered is not None:
        out["recovered_wall"] = round((recovered - t_loss) * time_scale - (launched - t_loss_wall), 3)
    return out


def free_events_of(path):
    """{node: [(seconds into csi_force_detach, event)]} from the runbook's timeline (its free steps' events)."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    out = {}
    for entry in doc.get("timeline") or []:
        detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
        if entry.get("step") == "free_and_verify":
            events = [(e.get("t"), e.get("event")) for e in detail.get("events") or []]
            for kind in ("volumes", "workloads"):
                for item in detail.get(kind) or []:
                    if item.get("ok_at") is not None:
                        events.append((item["ok_at"], "{0} {1} ok".format(kind[:-1], item.get("pv") or item.get("name"))))
            out[entry.get("node")] = sorted((e for e in events if e[0] is not None), key=lambda e: e[0])
    return out


# ------------------------------------------------------------------------------ report
# What issue 21 filed (seed cluster, scale 1.0, one run), printed as a reference next to this run's measurements.
ISSUE_21_FILED = {"runbook": (23.9, 27.6, 138), "kubernetes_core": (14.9, 16.1, 25), "kubectl": (715, 359, 610)}


def ratio(ours, theirs):
    return None if not ours or theirs is None else round(theirs / ours, 2)


def _fmt(value):
    return "-" if value is None else str(value)


def table(results):
    lines = ["| scenario | method | time scale | wall s | CPU s | load average | simulated s to recovered | API requests | ok |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append("| {scenario} | {method} | {time_scale} | {wall_seconds} | {cpu} | {load} | "
                     "{simulated_seconds_to_recovered} | {api_requests} | {ok} |".format(
                         cpu=r.get("cpu_seconds", "-"), load=r.get("load_average", "-"), **r))
    out = lines + [""]
    groups = []
    for r in results:
        key = (r["scenario"], r["time_scale"])
        if key not in groups:
            groups.append(key)
    for scenario, scale in groups:
        rows = [r for r in results if (r["scenario"], r["time_scale"]) == (scenario, scale)]
        old = next((r for r in rows if r["method"].startswith("runbook@")), None)
        filed = scenario == "tazlab" and scale == 1.0
        out += ["### {0}, time scale {1}{2}".format(scenario, scale, " (simulated time = real time)" if scale == 1.0 else ""),
                "",
                "| method | power loss -> workloads Ready, s | wall s | Kubernetes API requests | per affected object | ok |"
                + (" issue 21 filed (Ready / wall / requests) |" if filed else ""),
                "|---|---|---|---|---|---|" + ("---|" if filed else "")]
        for r in rows:
            if r["method"].startswith("runbook@"):
                continue
            cells = [r["simulated_seconds_to_recovered"], r["wall_seconds"], r["api_requests"]]
            if r["method"] == "runbook" and old is not None:
                olds = [old["simulated_seconds_to_recovered"], old["wall_seconds"], old["api_requests"]]
                cells = ["**{0}** (was {1})".format(_fmt(n), _fmt(o)) for n, o in zip(cells, olds)]
            affected = r.get("affected_objects")
            per = "-" if not affected else round(r["api_requests"] / float(affected), 2)
            if r["method"] == "runbook" and old is not None and affected:
                per = "**{0}** (was {1})".format(per, round(old["api_requests"] / float(affected), 2))
            ok = "{0}".format(r["ok"]) + (" (was {0})".format(old["ok"]) if r["method"] == "runbook" and old else "")
            line = "| {0} | {1} | {2} | {3} | {4} | {5} |".format(r["method"], cells[0], cells[1], cells[2], per, ok)
            if filed:
                line += " {0} |".format(" / ".join(str(v) for v in ISSUE_21_FILED.get(r["method"], ())) or "-")
            out.append(line)
        out.append("")
        for r in rows:
            if r["method"] != "runbook" or not r.get("tasks"):
                continue
            out += where_the_seconds_go(r)
    return "\n".join(out)


def where_the_seconds_go(r):
    """The runbook's wall time, task by task (the task_timing callback), and the free step's own events."""
    t = r["tasks"]
    lines = ["Where the runbook's {0} s went ({1}, scale {2}): ansible-playbook start-up {3} s".format(
        r["wall_seconds"], r["scenario"], r["time_scale"], t["startup_seconds"])]
    for task in t["tasks"]:
        if task["seconds"] >= 0.1:
            lines.append("  {0:6.2f} s +{1:5.2f}  {2}".format(task["start"], task["seconds"], task["name"].split(" : ", 1)[-1][:90]))
    small = [x for x in t["tasks"] if x["seconds"] < 0.1]
    lines.append("  {0} more tasks under 0.1 s each: {1:.2f} s together".format(len(small), sum(x["seconds"] for x in small)))
    if t.get("recovered_wall") is not None:
        lines.append("  the measured workloads were Ready {0} s after the launch".format(t["recovered_wall"]))
    for node, events in sorted((r.get("free_events") or {}).items()):
        lines.append("  inside csi_force_detach for {0} (seconds from its start): {1}".format(
            node, "; ".join("{0} {1}".format(e[0], e[1]) for e in events)))
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--large", action="store_true", help="also the 500-node / 20,000-pod scenario")
    parser.add_argument("--only-large", action="store_true", help="only the large scenario")
    parser.add_argument("--time-scale", type=float, action="append", help="real seconds per simulated second (repeatable)")
    parser.add_argument("--methods", default="runbook,kubernetes_core,kubectl",
                        help="runbook, kubernetes_core, kubectl, runbook@<git ref> (the runbook as it was at that ref)")
    parser.add_argument("--old", metavar="REF", help="also run the runbook as it was at this git ref (the old numbers)")
    parser.add_argument("--two-workers", action="store_true", help="also two dead workers at once (runbook only)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--mttr", action="store_true",
                        help="MTTR mode (issue 16): the rulebook alone, the runbook by hand, the Kubernetes defaults")
    parser.add_argument("--mttr-methods", default=",".join(MTTR_METHODS))
    parser.add_argument("--mttr-repeat", type=int, default=1, help="runs per method (the machine's load varies)")
    parser.add_argument("--mttr-window", type=float, default=900.0,
                        help="simulated seconds to observe before a method counts as never recovering")
    parser.add_argument("--defaults-time-scale", type=float, default=None,
                        help="time scale for the Kubernetes-defaults run (nothing runs but the cluster: a fast clock "
                             "observes the whole window sooner)")
    parser.add_argument("--settle-time-scale", type=float, default=None,
                        help="start each lab at this scale, then `tazlab-lab scale` to the measured one")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="print the tables of earlier runs' JSON files (no lab is started)")
    args = parser.parse_args()
    if args.mttr:
        mttr_main(args)
        return
    if args.from_json:
        results = []
        for path in args.from_json:
            with open(path, encoding="utf-8") as fh:
                results += json.load(fh)["results"]
        print(table(results))
        return
    scales = args.time_scale or [1.0, 0.05]
    workdir = tempfile.mkdtemp(prefix="tazlab-bench-")
    scenarios = [] if args.only_large else [tazlab_scenario()]
    if args.two_workers:
        scenarios.append(two_workers_scenario())
    if args.large or args.only_large:
        scenarios.append(large_scenario(workdir))
    methods = args.methods.split(",")
    if args.old:
        methods.insert(0, "runbook@" + args.old)
    results = []
    for scenario in scenarios:
        for scale in scales:
            for method in methods:
                if scenario.get("methods") and method.split("@")[0] not in scenario["methods"]:
                    continue
                r = run_method(method, scenario, scale, workdir)
                print(json.dumps(r), flush=True)
                results.append(r)
    report = table(results)
    print(report)
    os.makedirs(args.out, exist_ok=True)
    stamp = "large" if args.only_large else "tazlab" + ("+2workers" if args.two_workers else "") + \
        ("+large" if args.large else "")
    with open(os.path.join(args.out, "bench_dr-{0}.json".format(stamp)), "w", encoding="utf-8") as fh:
        json.dump({"when": datetime.datetime.now(datetime.timezone.utc).isoformat(), "machine": os.uname().nodename,
                   "cpus": os.cpu_count(), "results": results}, fh, indent=2)
    with open(os.path.join(args.out, "bench_dr-{0}.md".format(stamp)), "w", encoding="utf-8") as fh:
        fh.write(report + "\n")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
