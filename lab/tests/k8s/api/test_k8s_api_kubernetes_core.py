"""kubernetes.core 6.x modules (real, from the PyPI ansible bundle unpacked by `make venv`) against the twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FakeKubelet
from tazlab_lab.k8s.store import NotFound

REPO = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO / ".cache" / "collections"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def _run_playbook(tmp_path: Path, kubeconfig: Path, tasks: list) -> dict:
    assert (COLLECTIONS / "ansible_collections/kubernetes/core").is_dir(), \
        "kubernetes.core missing: run `make venv` (it unpacks the PyPI ansible bundle into .cache/collections)"
    regs = {}
    for i, t in enumerate(tasks):
        t["register"] = regs[t["name"]] = f"r{i}"
    results_file = tmp_path / "results.json"
    dump = "{" + ", ".join(f"{json.dumps(n)}: {v}" for n, v in regs.items()) + "}"
    tasks = tasks + [{"name": "results", "ansible.builtin.copy": {
        "dest": str(results_file), "content": "{{ " + dump + " | to_json }}"}}]
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "module_defaults": {"group/kubernetes.core.k8s": {"kubeconfig": str(kubeconfig)}},
             "tasks": tasks}]
    pb = tmp_path / "play.yml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "TMPDIR": str(tmp),
           "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_LOCALHOST_WARNING": "0",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    env.pop("K8S_AUTH_KUBECONFIG", None)
    p = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(pb)], capture_output=True, text=True,
                       env=env, timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and results_file.exists(), f"ansible-playbook failed ({p.returncode}):\n" \
        f"{p.stdout[-6000:]}\n{p.stderr[-3000:]}"
    return json.loads(results_file.read_text())


def test_kubernetes_core_modules(apiserver, seed, tmp_path):
    store = apiserver.store
    seed.node("n1")
    seed.node("n2")
    seed.namespace("longhorn-system")
    seed.deployment("default", "web", replicas=2)
    seed.pod("default", "web-1", "n1", labels={"app": "web"})
    seed.pod("default", "web-2", "n1", labels={"app": "web"})
    seed.pod("default", "other", "n2")
    seed.create("volumes.longhorn.io", {"metadata": {"name": "pvc-1", "namespace": "longhorn-system"},
                                        "spec": {"nodeID": "n1"}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
          "data": {"a": "1"}}
    tasks = [
        {"name": "create", "kubernetes.core.k8s": {"state": "present", "definition": cm}},
        {"name": "again", "kubernetes.core.k8s": {"state": "present", "definition": cm}},
        {"name": "change", "kubernetes.core.k8s": {"state": "present", "definition": {**cm, "data": {"a": "2"}}}},
        {"name": "info", "kubernetes.core.k8s_info": {"kind": "Pod", "namespace": "default",
                                                      "field_selectors": ["spec.nodeName=n1"]}},
        {"name": "va info", "kubernetes.core.k8s_info": {"kind": "VolumeAttachment",
                                                         "api_version": "storage.k8s.io/v1"}},
        {"name": "patch cr", "kubernetes.core.k8s": {
            "state": "patched", "merge_type": "merge",
            "definition": {"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                           "metadata": {"name": "pvc-1", "namespace": "longhorn-system"},
                           "spec": {"nodeID": ""}}}},
        {"name": "taint", "kubernetes.core.k8s_taint": {
            "name": "n1", "state": "present",
            "taints": [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown",
                        "effect": "NoExecute"}]}},
        {"name": "scale", "kubernetes.core.k8s_scale": {"kind": "Deployment", "name": "web", "namespace": "default",
                                                        "replicas": 1, "wait": False}},
        {"name": "drain", "kubernetes.core.k8s_drain": {
            "name": "n1", "state": "drain", "delete_options": {"force": True, "wait_timeout": 20,
                                                                "wait_sleep": 1}}},
        {"name": "delete", "kubernetes.core.k8s": {"state": "absent", "kind": "Pod", "namespace": "default",
                                                   "name": "other", "wait": True, "wait_timeout": 20, "wait_sleep": 1,
                                                   "delete_options": {"gracePeriodSeconds": 0}}},
        {"name": "delete missing", "kubernetes.core.k8s": {"state": "absent", "kind": "ConfigMap",
                                                           "namespace": "default", "name": "ghost"}},
    ]
    with FakeKubelet(apiserver, "n1") as kubelet:
        r = _run_playbook(tmp_path, apiserver.kubeconfig, tasks)
    assert sorted(kubelet.confirmed) == ["web-1", "web-2"]
    assert r["create"]["changed"] is True
    assert r["again"]["changed"] is False
    assert r["change"]["changed"] is True and store.get("configmaps", "default", "cfg")["data"] == {"a": "2"}
    assert sorted(p["metadata"]["name"] for p in r["info"]["resources"]) == ["web-1", "web-2"]
    assert r["va info"]["resources"] == []
    assert store.get("volumes.longhorn.io", "longhorn-system", "pvc-1")["spec"]["nodeID"] == ""
    assert r["taint"]["changed"] is True
    assert store.get("nodes", None, "n1")["spec"]["taints"][0]["key"] == "node.kubernetes.io/out-of-service"
    assert store.get("deployments.apps", "default", "web")["spec"]["replicas"] == 1
    assert r["drain"]["changed"] is True and store.get("nodes", None, "n1")["spec"]["unschedulable"] is True
    assert store.list("pods", field_selector="spec.nodeName=n1") == []
    assert store.requests[("create", "pods/eviction")] == 2
    with pytest.raises(NotFound):
        store.get("pods", "default", "other")
    assert r["delete missing"]["changed"] is False
