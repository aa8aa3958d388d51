"""Scenarios: a cluster described as data (YAML in ``tazlab_lab/scenarios/``), and a generator for big ones.

Format (every section optional except ``nodes``)::

    name: tazlab
    settings:                      # controller knobs (defaults are upstream's)
      nodeMonitorGracePeriod: 50
      maxWaitForUnmountDuration: 360
      bootSeconds: 45
    controlPlane:
      serviceIP: 10.96.0.1
      vip: 192.168.1.250           # data only: servers of the twin bind 127.x
      apiservers:                  # default: one per control-plane node, advertising its address
        - {node: cp-01, advertise: 192.168.1.71}
    nodes:
      - name: cp-01
        role: control-plane        # control-plane | worker
        addresses: {InternalIP: 192.168.1.71}
        alternateAddresses: [192.168.1.253]   # where the node may move to (data)
        systemUUID: 8d1f...        # optional, generated from the name
        labels: {...}
        taints: [...]              # control planes get node-role.kubernetes.io/control-plane:NoSchedule
        maxPods: 110               # the kubelet's maxPods: status.capacity/allocatable.pods (default 110)
    namespaces: [traefik, apps]
    storageClasses: [{name: longhorn, provisioner: driver.longhorn.io, default: true, parameters: {...}}]
    longhorn:
      nodes: [worker-new-01, ...]  # Longhorn storage nodes (default: the workers)
      settings: {node-down-pod-deletion-policy: do-nothing}
    pvcs: [{namespace: traefik, name: traefik, size: 128Mi, accessModes: [ReadWriteOnce], storageClass: longhorn}]
    workloads: [<Kubernetes manifests: Deployment, StatefulSet, DaemonSet, Service, ConfigMap, ...>]
    proxmox: {...}                 # reserved for the Proxmox twin (another issue)
    talos: {...}                   # reserved for the Talos twin (another issue)
    provisioning: {...}            # new VMs boot Talos (lab provisioning.py); with it, nodes may be []
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from pathlib import Path
from typing import Any

import yaml

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

KIND_TO_RES = {
    "Deployment": "deployments.apps", "StatefulSet": "statefulsets.apps", "DaemonSet": "daemonsets.apps",
    "ReplicaSet": "replicasets.apps", "Service": "services", "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims", "Namespace": "namespaces",
    "PodDisruptionBudget": "poddisruptionbudgets.policy", "StorageClass": "storageclasses.storage.k8s.io",
    "CSIDriver": "csidrivers.storage.k8s.io", "Pod": "pods",
}


class ScenarioError(ValueError):
    pass


def load_scenario(name_or_path: str | Path | dict) -> dict:
    """A scenario by name (``tazlab``), path, or an already parsed dict; validated, defaults applied."""
    if isinstance(name_or_path, dict):
        data = copy.deepcopy(name_or_path)
    else:
        p = Path(name_or_path)
        if not p.suffix:
            p = SCENARIOS / f"{name_or_path}.yaml"
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    return normalize(data)


load_scenario_data = load_scenario  # the name the LabWorld looks for


def normalize(data: dict) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or \
            not (data["nodes"] or data.get("provisioning")):
        raise ScenarioError("a scenario needs a non-empty 'nodes' list (or a provisioning: section)")
    data.setdefault("name", "scenario")
    data.setdefault("settings", {})
    seen = set()
    for n in data["nodes"]:
        if "name" not in n:
            raise ScenarioError(f"node without a name: {n!r}")
        if n["name"] in seen:
            raise ScenarioError(f"duplicate node {n['name']}")
        seen.add(n["name"])
        n.setdefault("role", "worker")
        if n["role"] not in ("control-plane", "worker"):
            raise ScenarioError(f"node {n['name']}: role must be control-plane or worker")
        addrs = n.setdefault("addresses", {})
        if "InternalIP" not in addrs:
            raise ScenarioError(f"node {n['name']}: addresses.InternalIP is required")
        n.setdefault("systemUUID", str(uuid.UUID(bytes=hashlib.sha256(n["name"].encode()).digest()[:16], version=4)))
        n.setdefault("labels", {})
        n.setdefault("taints", [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
                     if n["role"] == "control-plane" else [])
    cp = data.setdefault("controlPlane", {})
    cp.setdefault("serviceIP", "10.96.0.1")
    if "apiservers" not in cp:
        cp["apiservers"] = [{"node": n["name"]} for n in data["nodes"] if n["role"] == "control-plane"]
    for a in cp["apiservers"]:
        if a["node"] not in seen:
            raise ScenarioError(f"apiserver on unknown node {a['node']}")
    data.setdefault("namespaces", [])
    data.setdefault("storageClasses", [])
    data.setdefault("pvcs", [])
    data.setdefault("workloads", [])
    lh = data.get("longhorn")
    if lh is not None:
        lh.setdefault("nodes", [n["name"] for n in data["nodes"] if n["role"] == "worker"])
        lh.setdefault("settings", {})
    for w in data["workloads"]:
        if w.get("kind") not in KIND_TO_RES:
            raise ScenarioError(f"unsupported workload kind {w.get('kind')!r}")
    return data


def node_object(n: dict, index: int, now_iso: str = "2026-01-25T20:00:00Z") -> dict:
    """The Node as a Talos kubelet registers it (status Ready: the cluster is up when the twin starts)."""
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": n["name"], "kubernetes.io/os": "linux"}
    if n["role"] == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    labels.update(n.get("labels") or {})
    addresses = [{"type": t, "address": a} for t, a in n["addresses"].items()]
    addresses.append({"type": "Hostname", "address": n["name"]})
    cidr = f"10.244.{index % 256}.0/24"
    obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n["name"], "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                                     "talos.dev/owned-labels": "[]"}},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "addresses": addresses,
            "capacity": {"cpu": str(n.get("cpu", 4)), "memory": n.get("memory", "8148756Ki"), "pods": str(n.get("maxPods", 110)),
                         "ephemeral-storage": "50620216Ki", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": str(n.get("cpu", 4)), "memory": n.get("memory", "8046356Ki"), "pods": str(n.get("maxPods", 110)),
                            "ephemeral-storage": "46651590989", "hugepages-2Mi": "0"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now_iso,
                 "lastTransitionTime": now_iso}
                for t, s, r, m in (
                    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))],
            "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.0.5",
                         "kernelVersion": "6.12.25-talos", "kubeProxyVersion": "v1.32.4", "kubeletVersion": "v1.32.4",
                         "machineID": hashlib.md5(n["name"].encode()).hexdigest(), "operatingSystem": "linux",
                         "osImage": "Talos (v1.10.1)", "systemUUID": n["systemUUID"]},
        },
    }
    if n.get("taints"):
        obj["spec"]["taints"] = copy.deepcopy(n["taints"])
    return obj


def storage_class_object(sc: dict) -> dict:
    obj = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
           "metadata": {"name": sc["name"]}, "provisioner": sc.get("provisioner", "driver.longhorn.io"),
           "parameters": {k: str(v) for k, v in (sc.get("parameters") or {}).items()},
           "reclaimPolicy": sc.get("reclaimPolicy", "Delete"), "allowVolumeExpansion": True,
           "volumeBindingMode": sc.get("volumeBindingMode", "Immediate")}
    if sc.get("default"):
        obj["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return obj


def pvc_object(p: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": p["name"], "namespace": p["namespace"], "labels": dict(p.get("labels") or {})},
            "spec": {"accessModes": p.get("accessModes") or ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": p.get("size", "1Gi")}},
                     "storageClassName": p.get("storageClass", "longhorn"), "volumeMode": "Filesystem"}}


# -- generator for benchmarks -----------------------------------------------------------------
def generate_scenario(nodes: int = 300, pods: int = 9000, volumes: int = 900, control_planes: int = 3,
                      pods_per_deployment: int = 10, name: str = "generated") -> dict:
    """A big cluster: ``nodes`` workers, about ``pods`` pods in Deployments of ``pods_per_deployment``
    replicas, ``volumes`` Longhorn RWO volumes used by single-replica Deployments, plus CoreDNS,
    kube-proxy and longhorn-manager like the seed cluster."""
    base = load_scenario("tazlab")
    cps = [n for n in base["nodes"] if n["role"] == "control-plane"][:control_planes]
    out_nodes = []
    for i, cp in enumerate(cps):
        out_nodes.append({k: v for k, v in cp.items() if k != "systemUUID"})
    for i in range(nodes):
        a, b = divmod(i, 250)
        out_nodes.append({"name": f"worker-{i + 1:04d}", "role": "worker",
                          "addresses": {"InternalIP": f"10.{20 + a // 250}.{a % 250}.{b + 1}"},
                          "labels": {"topology.kubernetes.io/zone": f"zone-{i % 3}"}})
    system = [w for w in base["workloads"] if w["metadata"]["namespace"] in ("kube-system", "longhorn-system")]
    workloads = copy.deepcopy(system)
    pvcs = []
    for v in range(volumes):
        ns = f"app-{v % 20:02d}"
        pvcs.append({"namespace": ns, "name": f"data-{v:05d}", "size": "1Gi", "storageClass": "longhorn"})
        workloads.append(_deployment(ns, f"stateful-{v:05d}", 1, claim=f"data-{v:05d}"))
    stateless = max(0, pods - volumes - 2 * nodes - 8)
    for d in range(max(0, stateless // max(1, pods_per_deployment))):
        ns = f"app-{d % 20:02d}"
        workloads.append(_deployment(ns, f"web-{d:05d}", pods_per_deployment))
    return normalize({
        "name": name, "settings": dict(base.get("settings") or {}),
        "controlPlane": {"serviceIP": "10.96.0.1", "vip": base["controlPlane"].get("vip")},
        "nodes": out_nodes, "namespaces": sorted({"longhorn-system"} | {f"app-{i:02d}" for i in range(20)}),
        "storageClasses": copy.deepcopy(base["storageClasses"]),
        "longhorn": {"settings": dict((base.get("longhorn") or {}).get("settings") or {})},
        "pvcs": pvcs, "workloads": workloads,
    })


def _deployment(ns: str, name: str, replicas: int, claim: str | None = None) -> dict:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "ghcr.io/tazlab/app:1.0"}]}
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"type": "Recreate"} if claim else {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}
