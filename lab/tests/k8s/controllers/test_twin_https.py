"""The whole twin through its two interfaces: the Kubernetes API over HTTPS with the kubernetes Python
client, and the JSON control endpoint on its own loopback port."""

import asyncio
import json
import threading
import urllib.request

import pytest
from kubernetes import client, config

from k8s_twin_helpers import track
from tazlab_lab.k8s.cluster import KubeTwin


class TwinThread:
    def __init__(self, tmp_path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.twin = track(KubeTwin("tazlab", workdir=tmp_path))

    def __enter__(self):
        self.thread.start()
        self.run(self.twin.start())
        return self

    def __exit__(self, *exc):
        try:
            self.run(self.twin.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def control(self, path, body=None):
        req = urllib.request.Request(self.twin.control_url + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


@pytest.fixture
def twin(tmp_path):
    with TwinThread(tmp_path) as t:
        yield t


def _api(t):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(t.twin.api.kubeconfig_path), client_configuration=cfg)
    assert cfg.host.startswith("https://127.") and cfg.verify_ssl
    api = client.ApiClient(cfg)
    return client.CoreV1Api(api), client.AppsV1Api(api), client.StorageV1Api(api), client.DiscoveryV1Api(api)


def _ready(node):
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def test_power_off_and_out_of_service_recovery_through_https_and_control_endpoint(twin):
    core, apps, storage, discovery = _api(twin)
    assert twin.twin.control_url.startswith("http://127.")
    twin.control("/clock/advance", {"seconds": 120})
    nodes = core.list_node().items
    assert len(nodes) == 7 and all(_ready(n) == "True" for n in nodes)
    pod = core.list_namespaced_pod("traefik").items[0]
    assert pod.status.phase == "Running" and pod.status.container_statuses[0].ready
    node = pod.spec.node_name
    state = twin.control(f"/nodes/{node}/power-off", {})
    assert next(n for n in state["state"]["nodes"] if n["name"] == node)["powered"] is False
    twin.control("/clock/advance", {"seconds": 60})
    n = core.read_node(node)
    assert _ready(n) == "Unknown"
    assert {(t.key, t.effect) for t in n.spec.taints} >= {("node.kubernetes.io/unreachable", "NoExecute")}
    twin.control("/clock/advance", {"seconds": 300})
    old = core.read_namespaced_pod(pod.metadata.name, "traefik")
    assert old.metadata.deletion_timestamp is not None
    pods = core.list_namespaced_pod("traefik").items
    new = next(p for p in pods if p.metadata.uid != pod.metadata.uid)
    assert new.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert new.status.init_container_statuses[0].state.waiting.reason == "PodInitializing"
    ev = core.list_namespaced_event("traefik", field_selector=f"involvedObject.name={new.metadata.name}").items
    assert any(e.reason == "FailedAttachVolume" and "Multi-Attach error" in e.message for e in ev)
    # the fix a runbook applies: the out-of-service taint (kubectl taint sends the whole list)
    taints = [client.V1Taint(key=t.key, value=t.value, effect=t.effect, time_added=t.time_added) for t in n.spec.taints]
    taints.append(client.V1Taint(key="node.kubernetes.io/out-of-service", value="nodeshutdown", effect="NoExecute"))
    core.patch_node(node, {"spec": {"taints": [client.ApiClient().sanitize_for_serialization(t) for t in taints]}})
    twin.control("/clock/advance", {"seconds": 60})
    new = core.read_namespaced_pod(new.metadata.name, "traefik")
    assert new.status.phase == "Running" and new.status.container_statuses[0].ready
    vas = storage.list_volume_attachment().items
    assert not [v for v in vas if v.spec.node_name == node]
    va = next(v for v in vas if v.spec.node_name == new.spec.node_name and v.spec.source.persistent_volume_name ==
              core.read_namespaced_persistent_volume_claim("traefik", "traefik").spec.volume_name)
    assert va.status.attached and va.metadata.finalizers == ["external-attacher/driver-longhorn-io"]
    assert va.metadata.name.startswith("csi-") and len(va.metadata.name) == 4 + 64
    # the control endpoint's state is not in the Kubernetes API, and the API's objects are not in it
    st = twin.control("/state")
    assert st["controlPlane"]["etcdQuorum"] is True and "masterLeases" in st["controlPlane"]
    slices = discovery.list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=kubernetes")
    assert [e.addresses[0] for e in slices.items[0].endpoints] == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]


def test_rollout_restart_through_https_is_reported_like_kubectl_rollout_status_reads_it(twin):
    core, apps, storage, discovery = _api(twin)
    twin.control("/clock/advance", {"seconds": 120})
    before = apps.read_namespaced_deployment("coredns", "kube-system")
    assert before.status.observed_generation == before.metadata.generation
    apps.patch_namespaced_deployment("coredns", "kube-system", {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-25T20:02:00Z"}}}}})
    d = apps.read_namespaced_deployment("coredns", "kube-system")
    assert d.metadata.generation == before.metadata.generation + 1
    twin.control("/clock/advance", {"seconds": 1})
    d = apps.read_namespaced_deployment("coredns", "kube-system")
    assert d.status.observed_generation == d.metadata.generation
    assert (d.status.updated_replicas or 0) < d.spec.replicas or (d.status.replicas or 0) > (d.status.updated_replicas or 0)
    twin.control("/clock/advance", {"seconds": 60})
    d = apps.read_namespaced_deployment("coredns", "kube-system")
    assert d.status.updated_replicas == d.status.replicas == d.status.available_replicas == 2
    prog = next(c for c in d.status.conditions if c.type == "Progressing")
    assert prog.reason == "NewReplicaSetAvailable"
    pods = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
    assert len(pods) == 2 and all(p.metadata.annotations.get("kubectl.kubernetes.io/restartedAt") for p in pods)
    rss = apps.list_namespaced_replica_set("kube-system", label_selector="k8s-app=kube-dns").items
    assert sorted(r.spec.replicas for r in rss) == [0, 2]


def test_control_endpoint_rejects_bad_input(twin):
    import urllib.error
    for path, body, code in (("/nodes/nope/power-off", {}, 404), ("/clock/advance", {"seconds": -1}, 400),
                             ("/nodes/cp-01/address", {}, 400), ("/etcd/quorum/maybe", {}, 404)):
        with pytest.raises(urllib.error.HTTPError) as exc:
            twin.control(path, body)
        assert exc.value.code == code
    twin.control("/nodes/cp-01/address", {"address": "192.168.1.253"})
    twin.control("/apiservers/cp-01/advertise", {"address": "192.168.1.253"})
    twin.control("/clock/advance", {"seconds": 30})
    st = twin.control("/state")
    cp1 = next(a for a in st["controlPlane"]["apiservers"] if a["name"] == "cp-01")
    assert cp1 == {"name": "cp-01", "node": "cp-01", "advertise": "192.168.1.253", "running": True,
                   "address": "192.168.1.253"}


def test_real_time_clock_through_the_control_endpoint(twin):
    """clock.start(time_scale): simulated time follows wall time; the API sees the cluster move."""
    import time
    core, apps, storage, discovery = _api(twin)
    st = twin.control("/clock/start", {"timeScale": 0.002})  # 500 simulated seconds per real second
    assert st["state"]["clock"]["timeScale"] == 0.002
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod("traefik").items
        if pods and pods[0].status.phase == "Running":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the cluster did not come up in real time")
    t0 = twin.control("/state")["clock"]["epoch"]
    time.sleep(0.5)
    t1 = twin.control("/state")["clock"]["epoch"]
    assert 100 <= t1 - t0 <= 1000
    # a second start is refused
    import urllib.error
    with pytest.raises(urllib.error.HTTPError) as exc:
        twin.control("/clock/start", {"timeScale": 1})
    assert exc.value.code == 409
