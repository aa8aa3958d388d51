"""Real kubectl binaries (1.20 from Debian, and the machine's kubectl) against the API twin."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import KUBECTLS, FakeKubelet
from tazlab_lab.k8s.store import NotFound


def test_kubectl_binaries_present_and_run():
    """kubectl 1.20 is mandatory (`make tools`); the machine's kubectl joins when present. Never skipped."""
    assert KUBECTLS and KUBECTLS[0][0] == "kubectl-1.20"
    versions = {}
    for label, path in KUBECTLS:
        p = subprocess.run([path, "version", "--client"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, f"{label} at {path} does not run: {p.stderr}"
        versions[label] = p.stdout
    assert "v1.20." in versions["kubectl-1.20"]


def _wait(pred, timeout: float = 15.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_get_nodes(kubectl, seed):
    seed.node("talos-cp-1", "10.0.0.11")
    seed.node("talos-w-1", "10.0.0.21")
    out = kubectl("get", "nodes").stdout
    assert "talos-cp-1" in out and "talos-w-1" in out
    data = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    assert data["kind"] == "List" or data["kind"] == "NodeList"
    assert sorted(i["metadata"]["name"] for i in data["items"]) == ["talos-cp-1", "talos-w-1"]
    one = json.loads(kubectl("get", "node", "talos-w-1", "-o", "json").stdout)
    assert one["status"]["addresses"][0]["address"] == "10.0.0.21"


def test_get_pods_field_selector(kubectl, seed, apiserver):
    seed.node("n1")
    seed.node("n2")
    seed.namespace("apps")
    seed.pod("default", "on-n1", "n1")
    seed.pod("apps", "also-on-n1", "n1")
    seed.pod("apps", "on-n2", "n2")
    out = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=n1", "-o", "json").stdout
    names = sorted(i["metadata"]["name"] for i in json.loads(out)["items"])
    assert names == ["also-on-n1", "on-n1"]
    text = kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=n1").stdout
    assert "also-on-n1" in text and "on-n2" not in text
    assert apiserver.store.requests[("list", "pods")] >= 2
    # a field selector VolumeAttachments do not support: the server's 400 reaches the user
    p = kubectl("get", "volumeattachments", "--field-selector", "spec.nodeName=n1", check=False)
    assert p.returncode != 0
    assert '"spec.nodeName" is not a known field selector' in p.stderr


def test_patch_endpoints_replaces_subsets(kubectl, seed, apiserver):
    seed.create("endpoints", {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "10.0.0.11"}, {"ip": "10.0.0.12"}],
                     "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]})
    patch = {"subsets": [{"addresses": [{"ip": "10.0.0.13"}],
                          "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
    out = kubectl("patch", "endpoints", "kubernetes", "-n", "default", "-p", json.dumps(patch)).stdout
    assert "patched" in out
    ep = apiserver.store.get("endpoints", "default", "kubernetes")
    assert ep["subsets"] == patch["subsets"]
    assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert apiserver.store.requests[("patch", "endpoints")] == 1


def test_force_delete_pod(kubectl, seed, apiserver):
    seed.node("n1")
    seed.pod("default", "stuck", "n1")
    # a graceful delete first: the pod stays Terminating (no kubelet confirms it)
    kubectl("delete", "pod", "stuck", "--wait=false")
    pod = apiserver.store.get("pods", "default", "stuck")
    assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 30
    p = kubectl("delete", "pod", "stuck", "--force", "--grace-period=0")
    assert "deleted" in p.stdout
    with pytest.raises(NotFound):
        apiserver.store.get("pods", "default", "stuck")


def test_delete_volumeattachment_waits_for_finalizer(kubectl, seed, apiserver):
    store = apiserver.store
    seed.node("n1")
    seed.create("volumeattachments.storage.k8s.io", {
        "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
        "metadata": {"name": "csi-abc", "finalizers": ["external-attacher/driver-longhorn-io"]},
        "spec": {"attacher": "driver.longhorn.io", "nodeName": "n1", "source": {"persistentVolumeName": "pv-1"}},
        "status": {"attached": True}})
    proc = kubectl.popen("delete", "volumeattachment", "csi-abc", "--timeout=30s")
    try:
        assert _wait(lambda: store.get("volumeattachments.storage.k8s.io", None, "csi-abc", copy=False)
                     ["metadata"].get("deletionTimestamp") is not None)
        time.sleep(1.0)
        assert proc.poll() is None, "kubectl returned while the finalizer still holds the object"
        # another actor (the external-attacher) removes its finalizer
        apiserver.call(store.patch, "volumeattachments.storage.k8s.io", None, "csi-abc",
                       {"metadata": {"finalizers": None}}, "merge")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert 'deleted' in out
    with pytest.raises(NotFound):
        store.get("volumeattachments.storage.k8s.io", None, "csi-abc")


def test_rollout_restart(kubectl, seed, apiserver):
    seed.deployment("kube-system", "coredns", replicas=2)
    before = apiserver.store.get("deployments.apps", "kube-system", "coredns")
    out = kubectl("rollout", "restart", "deployment/coredns", "-n", "kube-system").stdout
    assert "restarted" in out
    after = apiserver.store.get("deployments.apps", "kube-system", "coredns")
    ann = after["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in ann
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["spec"]["template"]["spec"]["containers"] == before["spec"]["template"]["spec"]["containers"]
    assert after["status"] == before["status"]  # a main-resource patch never writes status


def test_taint_out_of_service(kubectl, seed, apiserver):
    seed.node("n1", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                             "timeAdded": "2026-01-25T20:00:40Z"},
                            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}])
    kubectl("taint", "nodes", "n1", "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute")
    taints = apiserver.store.get("nodes", None, "n1")["spec"]["taints"]
    assert {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"} in \
        [{k: t[k] for k in ("key", "value", "effect") if k in t} for t in taints]
    assert len(taints) == 3
    # and off again with the trailing dash: the whole list is replaced
    kubectl("taint", "nodes", "n1", "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute-")
    taints = apiserver.store.get("nodes", None, "n1")["spec"]["taints"]
    assert [t["key"] for t in taints] == ["node.kubernetes.io/unreachable"] * 2


def test_drain(kubectl, seed, apiserver):
    store = apiserver.store
    seed.node("n1")
    seed.node("n2")
    ds = seed.create("daemonsets.apps", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "longhorn-manager", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "lhm"}},
                 "template": {"metadata": {"labels": {"app": "lhm"}},
                              "spec": {"containers": [{"name": "m", "image": "longhornio/longhorn-manager:v1.8.1"}]}}}})
    rs = seed.create("replicasets.apps", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d4f", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "w", "image": "nginx:1.27"}]}}}})
    seed.pod("default", "lhm-abc", "n1", owner=ds, labels={"app": "lhm"})
    seed.pod("default", "web-5d4f-xyz", "n1", owner=rs, labels={"app": "web"})
    seed.pod("default", "bare", "n1")
    seed.pod("default", "scratch", "n1", owner=rs, labels={"app": "web"},
             volumes=[{"name": "tmp", "emptyDir": {}}])
    seed.pod("default", "elsewhere", "n2")

    with FakeKubelet(apiserver, "n1") as kubelet:
        p = kubectl("drain", "n1", "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=60s",
                    timeout=90)
    assert sorted(kubelet.confirmed) == ["bare", "scratch", "web-5d4f-xyz"]
    # kubectl 1.20 ends with "node/n1 evicted", later versions with "node/n1 drained"
    assert "node/n1 drained" in p.stdout or "node/n1 evicted" in p.stdout, p.stdout + p.stderr
    assert store.get("nodes", None, "n1")["spec"]["unschedulable"] is True
    left = sorted(x["metadata"]["name"] for x in store.list("pods"))
    assert left == ["elsewhere", "lhm-abc"]
    assert store.requests[("create", "pods/eviction")] == 3
    assert store.requests[("patch", "nodes")] >= 1
    # uncordon
    kubectl("uncordon", "n1")
    assert not store.get("nodes", None, "n1")["spec"].get("unschedulable")


def test_drain_blocked_by_pdb_then_get_crds(kubectl, seed, apiserver):
    store = apiserver.store
    seed.node("n1")
    seed.create("poddisruptionbudgets.policy", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    pdb = store.get("poddisruptionbudgets.policy", "default", "web")
    pdb["status"] = {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1,
                     "expectedPods": 1}
    apiserver.call(store.update, "poddisruptionbudgets.policy", pdb)
    seed.pod("default", "web-1", "n1", labels={"app": "web"})
    p = kubectl("drain", "n1", "--force", "--timeout=3s", check=False, timeout=60)
    assert p.returncode != 0
    assert "disruption budget" in (p.stdout + p.stderr)
    assert store.get("pods", "default", "web-1")["metadata"].get("deletionTimestamp") is None
    crds = kubectl("get", "crd").stdout
    assert "volumes.longhorn.io" in crds and "volumeattachments.longhorn.io" in crds
    seed.namespace("longhorn-system")
    seed.create("volumes.longhorn.io", {"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                                        "metadata": {"name": "pvc-1", "namespace": "longhorn-system"},
                                        "spec": {"numberOfReplicas": 3, "nodeID": "n1"}})
    out = kubectl("get", "volumes.longhorn.io", "-n", "longhorn-system", "-o", "json").stdout
    assert json.loads(out)["items"][0]["spec"]["nodeID"] == "n1"
    out = kubectl("get", "lhv", "-A").stdout
    assert "pvc-1" in out
    # kubectl patch on a custom resource needs --type merge; strategic is 415 as on a real cluster
    p = kubectl("patch", "lhv", "pvc-1", "-n", "longhorn-system", "-p", '{"spec":{"nodeID":""}}', check=False)
    assert p.returncode != 0
    assert "the body of the request was in an unknown format" in p.stderr
    kubectl("patch", "lhv", "pvc-1", "-n", "longhorn-system", "--type", "merge", "-p", '{"spec":{"nodeID":""}}')
    assert store.get("volumes.longhorn.io", "longhorn-system", "pvc-1")["spec"]["nodeID"] == ""


def test_reader_identity_is_forbidden_to_write(kubectl, seed, apiserver, tmp_path):
    seed.node("n1")
    cfg = apiserver.server.write_kubeconfig(tmp_path / "reader.kubeconfig", token=apiserver.server.reader_token)
    kubectl.env["KUBECONFIG"] = str(cfg)
    assert "n1" in kubectl("get", "nodes").stdout
    p = kubectl("cordon", "n1", check=False)  # kubectl's cordon prints the error but may exit 0
    assert 'nodes "n1" is forbidden: User "reader" cannot patch resource "nodes" in API group "" at the ' \
           'cluster scope' in p.stderr
    p = kubectl("delete", "node", "n1", check=False)
    assert p.returncode != 0 and 'User "reader" cannot delete resource "nodes"' in p.stderr
    assert not apiserver.store.get("nodes", None, "n1")["spec"].get("unschedulable")


def test_get_prints_server_side_table(kubectl, seed, apiserver):
    """kubectl asks for a meta.k8s.io Table: the columns of a real apiserver, ages on the simulated clock."""
    store, clock = apiserver.store, apiserver.clock
    seed.node("n1")
    seed.pod("default", "alive", "n1")
    seed.pod("default", "stuck", "n1")
    apiserver.call(store.delete, "pods", "default", "stuck")  # graceful on a node: Terminating
    apiserver.run(clock.advance(125))
    out = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                              "READINESS", "GATES"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["alive"][2] == "Running" and rows["alive"][4] == "2m5s" and rows["alive"][6] == "n1"
    assert rows["stuck"][2] == "Terminating"
    out = kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert out[1].split()[:2] == ["n1", "Ready"]
    apiserver.call(store.patch, "nodes", None, "n1", {"spec": {"unschedulable": True}, "status": {
        "conditions": [{"type": "Ready", "status": "Unknown"}]}}, "strategic")
    assert kubectl("get", "nodes").stdout.splitlines()[1].split()[1] == "Unknown,SchedulingDisabled"
    seed.namespace("longhorn-system")
    seed.create("volumes.longhorn.io", {
        "metadata": {"name": "pvc-1", "namespace": "longhorn-system"}, "spec": {"size": "1073741824",
                                                                              "dataEngine": "v1"},
        "status": {"state": "attached", "robustness": "degraded", "currentNodeID": "n1",
                   "conditions": [{"type": "Schedulable", "status": "True"}]}})
    out = kubectl("get", "lhv", "-n", "longhorn-system").stdout.splitlines()
    assert out[0].split() == ["NAME", "DATA", "ENGINE", "STATE", "ROBUSTNESS", "SCHEDULED", "SIZE", "NODE", "AGE"]
    assert out[1].split()[:7] == ["pvc-1", "v1", "attached", "degraded", "True", "1073741824", "n1"]


def test_auth_can_i_and_whoami(kubectl, apiserver, tmp_path):
    assert kubectl("auth", "can-i", "delete", "pods").stdout.strip() == "yes"
    if kubectl.label != "kubectl-1.20":  # `auth whoami` exists since 1.26
        out = kubectl("auth", "whoami").stdout
        assert "admin" in out and "system:masters" in out
    cfg = apiserver.server.write_kubeconfig(tmp_path / "reader.kubeconfig", token=apiserver.server.reader_token)
    kubectl.env["KUBECONFIG"] = str(cfg)
    p = kubectl("auth", "can-i", "delete", "pods", check=False)
    assert p.stdout.strip() == "no" and p.returncode == 1
    assert kubectl("auth", "can-i", "list", "nodes").stdout.strip() == "yes"


def test_get_sort_by_and_labels(kubectl, seed):
    seed.node("n1")
    seed.pod("default", "b", "n1", labels={"app": "b", "tier": "x"})
    seed.pod("default", "a", "n1", labels={"app": "a", "tier": "y"})
    out = kubectl("get", "pods", "--sort-by=.metadata.labels.tier", "-L", "tier", "--no-headers").stdout.splitlines()
    assert [line.split()[0] for line in out] == ["b", "a"]
    assert [line.split()[-1] for line in out] == ["x", "y"]
    out = kubectl("get", "pods", "-l", "tier=y", "-o", "name").stdout.split()
    assert out == ["pod/a"]


def test_runbook_one_liners(kubectl, seed, apiserver):
    """The commands recovery runbooks use: strip a finalizer by merge patch, JSON-patch a taint away,
    annotate and label nodes, read fields with jsonpath."""
    store = apiserver.store
    seed.node("n1", taints=[{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown",
                             "effect": "NoExecute"}])
    seed.create("volumeattachments.storage.k8s.io", {
        "metadata": {"name": "csi-x", "finalizers": ["external-attacher/driver-longhorn-io"]},
        "spec": {"attacher": "driver.longhorn.io", "nodeName": "n1", "source": {"persistentVolumeName": "pv-x"}}})
    out = kubectl("get", "volumeattachments", "-o", "jsonpath={range .items[*]}{.metadata.name}:{.spec.nodeName}"
                  "{'\\n'}{end}").stdout
    assert out.strip() == "csi-x:n1"
    kubectl("delete", "volumeattachment", "csi-x", "--wait=false")
    kubectl("patch", "volumeattachment", "csi-x", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    assert store.list("volumeattachments.storage.k8s.io") == []
    kubectl("patch", "node", "n1", "--type=json", "-p", '[{"op":"remove","path":"/spec/taints/0"}]')
    assert not store.get("nodes", None, "n1")["spec"].get("taints")
    kubectl("annotate", "node", "n1", "node.kubernetes.io/out-of-service-applied-by=tazlab")
    kubectl("label", "node", "n1", "remediation.medik8s.io/exclude-from-remediation=true")
    meta = store.get("nodes", None, "n1")["metadata"]
    assert meta["annotations"]["node.kubernetes.io/out-of-service-applied-by"] == "tazlab"
    assert meta["labels"]["remediation.medik8s.io/exclude-from-remediation"] == "true"
    p = kubectl("label", "node", "n1", "remediation.medik8s.io/exclude-from-remediation=false", check=False)
    assert p.returncode != 0 and "already has a value" in p.stderr
    kubectl("label", "node", "n1", "remediation.medik8s.io/exclude-from-remediation-")
    assert "remediation.medik8s.io/exclude-from-remediation" not in \
        (store.get("nodes", None, "n1")["metadata"].get("labels") or {})


def test_create_apply_replace_delete_from_files(kubectl, seed, apiserver, tmp_path):
    """Without /openapi, kubectl needs --validate=false to send manifests (documented); then it works."""
    store = apiserver.store
    seed.namespace("longhorn-system")
    f = tmp_path / "m.yaml"
    f.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: default}\ndata: {a: '1'}\n---\n"
        "apiVersion: longhorn.io/v1beta2\nkind: Setting\nmetadata: {name: node-down-pod-deletion-policy, "
        "namespace: longhorn-system}\nvalue: do-nothing\n")
    out = kubectl("create", "--validate=false", "-f", str(f)).stdout
    assert "configmap/cfg created" in out and "created" in out.splitlines()[1]
    assert store.get("settings.longhorn.io", "longhorn-system", "node-down-pod-deletion-policy")["value"] == \
        "do-nothing"
    f.write_text(f.read_text().replace("do-nothing", "delete-both-statefulset-and-deployment-pod")
                 .replace("a: '1'", "a: '2'"))
    kubectl("apply", "--validate=false", "-f", str(f))
    assert store.get("configmaps", "default", "cfg")["data"] == {"a": "2"}
    assert store.get("settings.longhorn.io", "longhorn-system", "node-down-pod-deletion-policy")["value"] == \
        "delete-both-statefulset-and-deployment-pod"
    kubectl("replace", "--validate=false", "-f", str(f))
    out = kubectl("delete", "-f", str(f)).stdout
    assert out.count("deleted") == 2
    assert store.list("configmaps", "default") == [] and store.list("settings.longhorn.io") == []
