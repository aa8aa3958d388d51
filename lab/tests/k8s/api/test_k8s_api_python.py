"""The `kubernetes` Python client (typed APIs, Watch, DynamicClient) against the API twin: every response
must deserialize into the client's models without a validation error."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from tazlab_lab.k8s.store import NotFound


@pytest.fixture
def api(apiserver):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(apiserver.kubeconfig), client_configuration=cfg)
    cfg.client_side_validation = True
    with client.ApiClient(cfg) as c:
        yield c


def _pod(name: str, node: str | None = None, labels: dict | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="c", image="nginx:1.27")]))


def test_core_v1(api, seed, apiserver):
    v1 = client.CoreV1Api(api)
    seed.node("n1", "10.0.0.11")
    nodes = v1.list_node()
    assert [n.metadata.name for n in nodes.items] == ["n1"]
    assert nodes.metadata.resource_version == str(apiserver.store.resource_version)
    n = v1.read_node("n1")
    assert n.status.addresses[0].address == "10.0.0.11" and n.metadata.uid
    # dict body -> strategic merge patch
    n = v1.patch_node("n1", {"spec": {"unschedulable": True}})
    assert n.spec.unschedulable is True
    # pods: create (DefaultTolerationSeconds applied), list by field selector, graceful delete
    p = v1.create_namespaced_pod("default", _pod("web", "n1"))
    tols = {(t.key, t.effect, t.toleration_seconds) for t in p.spec.tolerations}
    assert ("node.kubernetes.io/not-ready", "NoExecute", 300) in tols
    assert ("node.kubernetes.io/unreachable", "NoExecute", 300) in tols
    assert p.status.phase == "Pending" and p.spec.termination_grace_period_seconds == 30
    v1.create_namespaced_pod("default", _pod("unscheduled"))
    on_n1 = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    assert [x.metadata.name for x in on_n1.items] == ["web"]
    assert [x.metadata.name for x in v1.list_namespaced_pod("default", label_selector="app in (web,x)").items] == \
        ["web"]
    deleted = v1.delete_namespaced_pod("web", "default")
    assert isinstance(deleted, client.V1Pod) and deleted.metadata.deletion_timestamp is not None
    assert v1.read_namespaced_pod("web", "default").metadata.deletion_grace_period_seconds == 30
    deleted = v1.delete_namespaced_pod("web", "default", grace_period_seconds=0)
    assert isinstance(deleted, client.V1Pod)
    with pytest.raises(ApiException) as ei:
        v1.read_namespaced_pod("web", "default")
    assert ei.value.status == 404 and ei.value.reason == "Not Found"
    # an unscheduled pod goes at once even with a grace period
    assert isinstance(v1.delete_namespaced_pod("unscheduled", "default", body=client.V1DeleteOptions(
        grace_period_seconds=30)), client.V1Pod)
    assert v1.list_namespaced_pod("default").items == []
    # services return the object on delete; endpoints and configmaps a Status
    v1.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="kubernetes"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="https", port=443, target_port=6443)])))
    svc = v1.read_namespaced_service("kubernetes", "default")
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.type == "ClusterIP"
    assert svc.spec.cluster_ip == "10.96.0.1" and svc.spec.cluster_ips == ["10.96.0.1"]
    svc = v1.replace_namespaced_service("kubernetes", "default", client.V1Service(
        metadata=client.V1ObjectMeta(name="kubernetes", labels={"component": "apiserver"}),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="https", port=443, target_port=6443)])))
    assert svc.spec.cluster_ip == "10.96.0.1" and svc.metadata.labels == {"component": "apiserver"}
    with pytest.raises(ApiException) as ei:
        v1.patch_namespaced_service("kubernetes", "default", {"spec": {"clusterIP": "10.96.0.2"}})
    assert ei.value.status == 422
    np = v1.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="np"), spec=client.V1ServiceSpec(type="NodePort", ports=[
            client.V1ServicePort(port=80)])))
    assert 30000 <= np.spec.ports[0].node_port <= 32767 and np.spec.cluster_ip.startswith("10.")
    assert np.spec.cluster_ip != "10.96.0.1"
    v1.delete_namespaced_service("np", "default")
    ep = v1.create_namespaced_endpoints("default", client.V1Endpoints(
        metadata=client.V1ObjectMeta(name="kubernetes"),
        subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip="10.0.0.11")],
                                         ports=[client.CoreV1EndpointPort(name="https", port=6443)])]))
    ep.subsets[0].addresses = [client.V1EndpointAddress(ip="10.0.0.12")]
    ep = v1.replace_namespaced_endpoints("kubernetes", "default", ep)
    assert ep.subsets[0].addresses[0].ip == "10.0.0.12"
    # the client types these deletes as `object` (a dict): the Status the apiserver returns
    assert v1.delete_namespaced_endpoints("kubernetes", "default")["kind"] == "Status"
    assert isinstance(v1.delete_namespaced_service("kubernetes", "default"), client.V1Service)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"),
                                                                  data={"a": "b"}))
    st = v1.delete_namespaced_config_map("c", "default")
    assert st["status"] == "Success" and st["details"]["name"] == "c" and st["details"]["uid"]
    st = v1.delete_node("n1")
    assert st["kind"] == "Status" and st["details"] == {"name": "n1", "kind": "nodes", "uid": st["details"]["uid"]}
    # namespaces: Terminating, then gone once empty
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="scratch")))
    v1.create_namespaced_config_map("scratch", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    v1.delete_namespace("scratch")
    with pytest.raises(ApiException) as ei:
        v1.read_namespace("scratch")
    assert ei.value.status == 404
    with pytest.raises(ApiException) as ei:
        v1.create_namespaced_config_map("nope", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert ei.value.status == 404 and json.loads(ei.value.body)["message"] == 'namespaces "nope" not found'
    # events
    v1.create_namespaced_event("default", client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="e1"), involved_object=client.V1ObjectReference(kind="Pod", name="web"),
        reason="FailedAttachVolume", message="Multi-Attach error", type="Warning"))
    evs = v1.list_namespaced_event("default", field_selector="reason=FailedAttachVolume,involvedObject.name=web")
    assert [e.metadata.name for e in evs.items] == ["e1"]


def test_pod_status_subresource(api, seed, apiserver):
    v1 = client.CoreV1Api(api)
    seed.node("n1")
    v1.create_namespaced_pod("default", _pod("p", "n1"))
    p = v1.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running", "podIP": "10.244.0.5",
                                                                   "conditions": [{"type": "Ready", "status": "True"}]}})
    assert p.status.phase == "Running" and p.status.pod_ip == "10.244.0.5"
    # a status write cannot change the spec or labels; a main-resource write cannot change the status
    p = v1.patch_namespaced_pod_status("p", "default", {"metadata": {"labels": {"x": "y"}},
                                                        "status": {"phase": "Failed"}})
    assert p.status.phase == "Failed" and "x" not in (p.metadata.labels or {})
    p = v1.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Running"}})
    assert p.status.phase == "Failed" and p.metadata.labels["x"] == "y"
    # conditions merge by type
    p = v1.patch_namespaced_pod_status("p", "default", {"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"}]}})
    assert sorted(c.type for c in p.status.conditions) == ["PodScheduled", "Ready"]
    # a terminal pod is deleted at once (grace 0)
    assert isinstance(v1.delete_namespaced_pod("p", "default"), client.V1Pod)
    assert v1.list_namespaced_pod("default").items == []


def test_apps_storage_discovery_coordination(api, seed, apiserver):
    apps = client.AppsV1Api(api)
    d = apps.create_namespaced_deployment("default", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "web"}),
                                              spec=client.V1PodSpec(containers=[client.V1Container(
                                                  name="w", image="nginx:1.27")])))))
    assert d.metadata.generation == 1 and d.spec.strategy.type == "RollingUpdate"
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-25T20:10:00Z"}}}}})
    assert d.metadata.generation == 2
    sc = apps.read_namespaced_deployment_scale("web", "default")
    assert sc.spec.replicas == 2
    sc = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    assert sc.spec.replicas == 0 and apps.read_namespaced_deployment("web", "default").spec.replicas == 0
    rs = apps.create_namespaced_replica_set("default", client.V1ReplicaSet(
        metadata=client.V1ObjectMeta(name="web-1", owner_references=[client.V1OwnerReference(
            api_version="apps/v1", kind="Deployment", name="web", uid=d.metadata.uid, controller=True,
            block_owner_deletion=True)]),
        spec=client.V1ReplicaSetSpec(selector=client.V1LabelSelector(match_labels={"app": "web"}))))
    st = apps.delete_namespaced_deployment("web", "default")
    assert st["status"] == "Success" and st["details"]["group"] == "apps" and st["details"]["kind"] == "deployments"
    # background propagation: the ReplicaSet went with its owner
    assert apps.list_namespaced_replica_set("default").items == []
    assert rs.metadata.uid not in str(apiserver.store.list("replicasets.apps"))

    storage = client.StorageV1Api(api)
    va = storage.create_volume_attachment(client.V1VolumeAttachment(
        metadata=client.V1ObjectMeta(name="csi-1", finalizers=["external-attacher/driver-longhorn-io"]),
        spec=client.V1VolumeAttachmentSpec(attacher="driver.longhorn.io", node_name="n1",
                                           source=client.V1VolumeAttachmentSource(persistent_volume_name="pv1"))))
    assert va.status is None or va.status.attached is False or va.status.attached is None
    va = storage.patch_volume_attachment_status("csi-1", {"status": {"attached": True}})
    assert va.status.attached is True
    with pytest.raises(ApiException) as ei:
        storage.list_volume_attachment(field_selector="spec.nodeName=n1")
    assert ei.value.status == 400
    assert all(v.spec.node_name == "n1" for v in storage.list_volume_attachment().items)
    va = storage.delete_volume_attachment("csi-1")
    assert isinstance(va, client.V1VolumeAttachment) and va.metadata.deletion_timestamp is not None
    storage.patch_volume_attachment("csi-1", {"metadata": {"finalizers": None}})
    assert storage.list_volume_attachment().items == []
    storage.create_storage_class(client.V1StorageClass(metadata=client.V1ObjectMeta(name="longhorn"),
                                                       provisioner="driver.longhorn.io"))
    assert isinstance(storage.delete_storage_class("longhorn"), client.V1StorageClass)
    storage.create_csi_driver(client.V1CSIDriver(metadata=client.V1ObjectMeta(name="driver.longhorn.io"),
                                                 spec=client.V1CSIDriverSpec(attach_required=True)))
    assert [c.metadata.name for c in storage.list_csi_driver().items] == ["driver.longhorn.io"]

    disc = client.DiscoveryV1Api(api)
    es = disc.create_namespaced_endpoint_slice("default", client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="kubernetes", labels={"kubernetes.io/service-name": "kubernetes"}),
        address_type="IPv4", endpoints=[client.V1Endpoint(addresses=["10.0.0.11"],
                                                           conditions=client.V1EndpointConditions(ready=True))],
        ports=[client.DiscoveryV1EndpointPort(name="https", port=6443, protocol="TCP")]))
    es = disc.patch_namespaced_endpoint_slice("kubernetes", "default", {"endpoints": [
        {"addresses": ["10.0.0.12"], "conditions": {"ready": True}}]})
    assert [e.addresses for e in es.endpoints] == [["10.0.0.12"]]  # replaced whole
    lst = disc.list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=kubernetes")
    assert len(lst.items) == 1
    assert disc.delete_namespaced_endpoint_slice("kubernetes", "default")["status"] == "Success"

    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease("kube-node-lease", client.V1Lease(
        metadata=client.V1ObjectMeta(name="n1"),
        spec=client.V1LeaseSpec(holder_identity="n1", lease_duration_seconds=40,
                                renew_time="2026-01-25T20:00:00.000000Z")))
    lease.spec.renew_time = "2026-01-25T20:00:10.123456Z"
    lease = coord.replace_namespaced_lease("n1", "kube-node-lease", lease)
    assert lease.spec.renew_time.microsecond == 123456
    assert coord.delete_namespaced_lease("n1", "kube-node-lease")["status"] == "Success"


def test_eviction_and_pdb(api, seed, apiserver):
    v1 = client.CoreV1Api(api)
    policy = client.PolicyV1Api(api)
    seed.node("n1")
    seed.pod("default", "web-1", "n1", labels={"app": "web"})
    seed.pod("default", "web-2", "n1", labels={"app": "web"})
    policy.create_namespaced_pod_disruption_budget("default", client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1PodDisruptionBudgetSpec(min_available=1, selector=client.V1LabelSelector(
            match_labels={"app": "web"}))))
    ev = client.V1Eviction(metadata=client.V1ObjectMeta(name="web-1", namespace="default"))
    # the disruption controller has not computed the status yet
    with pytest.raises(ApiException) as ei:
        v1.create_namespaced_pod_eviction("web-1", "default", ev)
    assert ei.value.status == 429 and ei.value.reason == "Too Many Requests"
    assert "Cannot evict pod as it would violate the pod's disruption budget." in ei.value.body
    assert "is still being processed by the server" in ei.value.body
    pdb = policy.patch_namespaced_pod_disruption_budget_status("web", "default", {"status": {
        "observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
        "expectedPods": 2}})
    assert pdb.status.disruptions_allowed == 1
    v1.create_namespaced_pod_eviction("web-1", "default", ev)  # 201; the python client returns the Status
    assert apiserver.store.get("pods", "default", "web-1")["metadata"]["deletionTimestamp"]
    pdb = policy.read_namespaced_pod_disruption_budget("web", "default")
    assert pdb.status.disruptions_allowed == 0 and "web-1" in pdb.status.disrupted_pods
    with pytest.raises(ApiException) as ei:
        v1.create_namespaced_pod_eviction("web-2", "default", client.V1Eviction(
            metadata=client.V1ObjectMeta(name="web-2", namespace="default")))
    assert ei.value.status == 429
    assert "The disruption budget web needs 1 healthy pods and has 2 currently" in ei.value.body
    with pytest.raises(ApiException) as ei:
        v1.create_namespaced_pod_eviction("ghost", "default", client.V1Eviction(
            metadata=client.V1ObjectMeta(name="ghost", namespace="default")))
    assert ei.value.status == 404


def test_custom_objects(api, seed, apiserver):
    seed.namespace("longhorn-system")
    co = client.CustomObjectsApi(api)
    body = {"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
            "metadata": {"name": "pvc-1", "namespace": "longhorn-system"},
            "spec": {"numberOfReplicas": 3, "nodeID": "n1"}, "status": {"state": "attached"}}
    created = co.create_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes", body)
    assert "status" not in created and created["metadata"]["generation"] == 1  # status subresource
    got = co.patch_namespaced_custom_object_status("longhorn.io", "v1beta2", "longhorn-system", "volumes", "pvc-1",
                                                   {"status": {"state": "attached", "currentNodeID": "n1"}})
    assert got["status"]["currentNodeID"] == "n1" and got["metadata"]["generation"] == 1
    got = co.patch_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes", "pvc-1",
                                            {"spec": {"nodeID": ""}})
    assert got["spec"]["nodeID"] == "" and got["metadata"]["generation"] == 2
    lst = co.list_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["pvc-1"] and lst["kind"] == "VolumeList"
    lst = co.list_cluster_custom_object("longhorn.io", "v1beta2", "volumes")
    assert len(lst["items"]) == 1
    # a PUT without resourceVersion is refused for custom resources
    obj = co.get_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes", "pvc-1")
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as ei:
        co.replace_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes", "pvc-1", obj)
    assert ei.value.status == 422
    st = co.delete_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "volumes", "pvc-1")
    assert st["kind"] == "Status" and st["status"] == "Success"
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition()
    assert "volumeattachments.longhorn.io" in [c.metadata.name for c in crds.items]


def test_watch(api, seed, apiserver):
    v1 = client.CoreV1Api(api)
    seed.node("n1")
    seen: list[tuple[str, str]] = []
    started = threading.Event()
    rv = v1.list_namespaced_pod("default").metadata.resource_version

    def run() -> None:
        w = watch.Watch()
        started.set()
        for ev in w.stream(v1.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=5):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    time.sleep(0.2)
    v1.create_namespaced_pod("default", _pod("w1", "n1"))
    v1.patch_namespaced_pod("w1", "default", {"metadata": {"labels": {"x": "1"}}})
    v1.delete_namespaced_pod("w1", "default", grace_period_seconds=0)
    t.join(10)
    assert not t.is_alive()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    # resuming from the first event's version replays the rest
    replay = []
    for ev in watch.Watch().stream(v1.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1):
        replay.append(ev["type"])
    assert replay == ["ADDED", "MODIFIED", "DELETED"]
    # bookmarks (the fixture's server sends one a second) parse as typed objects too
    kinds = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_pod, "default", resource_version=str(apiserver.store.resource_version),
                       allow_watch_bookmarks=True, timeout_seconds=3):
        kinds.append(ev["type"])
        if ev["type"] == "BOOKMARK":
            assert ev["raw_object"]["metadata"]["resourceVersion"] == str(apiserver.store.resource_version)
            w.stop()
    assert kinds == ["BOOKMARK"]


def test_watch_expired_410(api, seed, apiserver):
    v1 = client.CoreV1Api(api)
    store = apiserver.store
    old_rv = store.resource_version
    store._history_max = 5  # compact hard, as etcd does after 5 minutes
    for i in range(10):
        seed.create("configmaps", {"metadata": {"name": f"c{i}", "namespace": "default"}})
    # the apiserver answers 200 and an ERROR event carrying the 410 Status; Watch retries once, then raises
    # (without timeout_seconds: with it, the client swallows the first 410 and just ends the stream)
    result: list = []

    def run() -> None:
        try:
            for _ in watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=str(old_rv)):
                pass
        except ApiException as exc:
            result.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the watch from a compacted resourceVersion did not end"
    assert result and result[0].status == 410
    assert result[0].reason.startswith("Expired: too old resource version")
    # a list from an expired continue token is a 410 too
    page = v1.list_namespaced_config_map("default", limit=2)
    assert len(page.items) == 2 and page.metadata._continue and page.metadata.remaining_item_count == 8
    for i in range(6):  # the history moves past the list's resourceVersion
        seed.create("configmaps", {"metadata": {"name": f"later{i}", "namespace": "default"}})
    with pytest.raises(ApiException) as ei:
        v1.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
    assert ei.value.status == 410 and ei.value.reason == "Gone"


def test_pagination(api, seed):
    v1 = client.CoreV1Api(api)
    for i in range(7):
        seed.create("configmaps", {"metadata": {"name": f"cm-{i}", "namespace": "default"}})
    names, token = [], None
    while True:
        page = v1.list_namespaced_config_map("default", limit=3, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"cm-{i}" for i in range(7)]


def test_dynamic_client(api, seed, apiserver, tmp_path):
    seed.node("n1")
    seed.namespace("longhorn-system")
    dc = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    nodes = dc.resources.get(api_version="v1", kind="Node")
    assert [n.metadata.name for n in nodes.get().items] == ["n1"]
    nodes.patch(name="n1", body={"spec": {"taints": [{"key": "node.kubernetes.io/out-of-service",
                                                       "value": "nodeshutdown", "effect": "NoExecute"}]}})
    assert apiserver.store.get("nodes", None, "n1")["spec"]["taints"][0]["value"] == "nodeshutdown"
    vols = dc.resources.get(api_version="longhorn.io/v1beta2", kind="Volume")
    vols.create(body={"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                      "metadata": {"name": "pvc-1"}, "spec": {"nodeID": "n1"}}, namespace="longhorn-system")
    vols.patch(name="pvc-1", namespace="longhorn-system", body={"spec": {"nodeID": "n2"}},
               content_type="application/merge-patch+json")
    assert vols.get(name="pvc-1", namespace="longhorn-system").spec.nodeID == "n2"
    with pytest.raises(dynamic.exceptions.DynamicApiError) as ei:
        vols.patch(name="pvc-1", namespace="longhorn-system", body={"spec": {"nodeID": "n3"}},
                   content_type="application/strategic-merge-patch+json")
    assert ei.value.status == 415
    vas = dc.resources.get(api_version="storage.k8s.io/v1", kind="VolumeAttachment")
    vas.create(body={"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "va"},
                     "spec": {"attacher": "driver.longhorn.io", "nodeName": "n1",
                              "source": {"persistentVolumeName": "pv"}}})
    # kubernetes.core's delete body, "preconditions": null included
    out = vas.delete(name="va", body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                      "propagationPolicy": "Background", "preconditions": None})
    assert out.kind == "VolumeAttachment"
    with pytest.raises(dynamic.exceptions.NotFoundError):
        vas.get(name="va")
    pods = dc.resources.get(api_version="v1", kind="Pod")
    seed.pod("default", "p", "n1")
    assert pods.get(namespace="default", field_selector="spec.nodeName=n1").items[0].status.phase == "Running"
    evs = [e["type"] for e in pods.watch(namespace="default", timeout=1)]
    assert evs == ["ADDED"]
    with pytest.raises(NotFound):
        apiserver.store.get("pods", "default", "nope")
