"""The store's Python API (STORE_API.md) on its own: registry semantics the controllers rely on."""

from __future__ import annotations

import threading

import pytest

from tazlab_lab.clock import SimClock
from tazlab_lab.k8s.store import AlreadyExists, ApiError, Conflict, Invalid, NotFound, Store


@pytest.fixture
def store():
    return Store(SimClock())


def _pod(name, node="n1", ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img:1", "env": [{"name": "A", "value": "1"}]}],
                     **spec},
            "status": {"phase": "Running"}}


def test_create_metadata_and_rv(store):
    rv0 = store.resource_version
    p = store.create("pods", _pod("a"))
    m = p["metadata"]
    assert int(m["resourceVersion"]) == rv0 + 1 == store.resource_version
    assert len(m["uid"]) == 36 and m["creationTimestamp"] == "2026-01-25T20:00:00Z"
    assert p["apiVersion"] == "v1" and p["kind"] == "Pod" and list(p)[:3] == ["apiVersion", "kind", "metadata"]
    assert p["status"]["phase"] == "Running"  # the store keeps what controllers write (HTTP create resets it)
    with pytest.raises(AlreadyExists):
        store.create("pods", _pod("a"))
    with pytest.raises(NotFound) as ei:
        store.create("pods", _pod("a", ns="nope"))
    assert ei.value.message == 'namespaces "nope" not found'
    with pytest.raises(Invalid):
        store.create("configmaps", {"metadata": {"namespace": "default"}})
    # copies: changing what get() returned changes nothing stored
    got = store.get("pods", "default", "a")
    got["metadata"]["labels"]["x"] = "y"
    assert "x" not in store.get("pods", "default", "a", copy=False)["metadata"]["labels"]
    # cluster-scoped objects have no namespace
    n = store.create("nodes", {"metadata": {"name": "n1", "namespace": "ignored"}})
    assert "namespace" not in n["metadata"] and store.get("nodes", None, "n1")["metadata"]["name"] == "n1"


def test_default_toleration_seconds(store):
    p = store.create("pods", _pod("a", tolerations=[{"operator": "Exists"}]))
    assert p["spec"]["tolerations"] == [{"operator": "Exists"}]  # tolerates everything already
    p = store.create("pods", _pod("b", tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                                      "effect": "NoExecute", "tolerationSeconds": 5}]))
    assert p["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    p = store.create("pods", _pod("c"))
    assert [t["key"] for t in p["spec"]["tolerations"]] == ["node.kubernetes.io/not-ready",
                                                            "node.kubernetes.io/unreachable"]
    # on update it is not applied again
    p["spec"]["tolerations"] = []
    assert store.update("pods", p)["spec"]["tolerations"] == []


def test_update_conflict_and_generation(store):
    d = store.create("deployments.apps", {"metadata": {"name": "d", "namespace": "default"},
                                          "spec": {"replicas": 1, "template": {"spec": {"containers": [
                                              {"name": "c", "image": "i"}]}}}})
    assert d["metadata"]["generation"] == 1
    d2 = dict(d, status={"replicas": 1, "observedGeneration": 1})
    d2 = store.update("deployments.apps", d2)
    assert d2["metadata"]["generation"] == 1 and d2["status"]["replicas"] == 1  # status only: no new generation
    d2["spec"]["replicas"] = 3
    d3 = store.update("deployments.apps", d2)
    assert d3["metadata"]["generation"] == 2
    with pytest.raises(Conflict) as ei:
        store.update("deployments.apps", d2)  # stale resourceVersion
    assert ei.value.message == ('Operation cannot be fulfilled on deployments.apps "d": the object has been modified; '
                                'please apply your changes to the latest version and try again')
    # without a resourceVersion the update is unconditional
    d3["metadata"].pop("resourceVersion")
    d3["metadata"]["labels"] = {"a": "b"}
    assert store.update("deployments.apps", d3)["metadata"]["labels"] == {"a": "b"}
    with pytest.raises(NotFound):
        store.update("nodes", {"metadata": {"name": "ghost"}})


def test_subscribe_events(store):
    seen = []
    store.subscribe(lambda t, res, obj: seen.append((t, res, obj["metadata"]["name"], obj["metadata"]["resourceVersion"])))
    store.create("pods", _pod("a"))
    store.patch("pods", "default", "a", {"metadata": {"labels": {"x": "1"}}}, "strategic")
    store.patch("pods", "default", "a", {"metadata": {"labels": {"x": "1"}}}, "strategic")  # no-op: no event
    store.delete("pods", "default", "a")  # graceful on a node: MODIFIED with a deletionTimestamp
    store.delete("pods", "default", "a", grace_period_seconds=0)
    assert [s[0] for s in seen] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [int(s[3]) for s in seen] == sorted(int(s[3]) for s in seen)
    assert int(seen[-1][3]) == store.resource_version


def test_graceful_pod_deletion(store):
    store.create("pods", _pod("a", terminationGracePeriodSeconds=10))
    obj, gone = store.delete("pods", "default", "a")
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 10
    assert obj["metadata"]["deletionTimestamp"] == "2026-01-25T20:00:10Z"
    obj, gone = store.delete("pods", "default", "a", grace_period_seconds=30)  # longer: nothing changes
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 10
    obj, gone = store.delete("pods", "default", "a", grace_period_seconds=2)  # shorter: shortened
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 2
    obj, gone = store.delete("pods", "default", "a", grace_period_seconds=0)
    assert gone
    # no node, or terminal: grace 0
    store.create("pods", _pod("b", node=None))
    assert store.delete("pods", "default", "b")[1] is True
    c = store.create("pods", _pod("c"))
    c["status"]["phase"] = "Succeeded"
    store.update("pods", c)
    assert store.delete("pods", "default", "c")[1] is True
    # finalizers keep even a grace-0 delete visible
    store.create("pods", {**_pod("d"), "metadata": {"name": "d", "namespace": "default", "finalizers": ["x/y"]}})
    obj, gone = store.delete("pods", "default", "d", grace_period_seconds=0)
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 0
    obj = store.patch("pods", "default", "d", [{"op": "remove", "path": "/metadata/finalizers"}], "json")
    with pytest.raises(NotFound):
        store.get("pods", "default", "d")


def test_preconditions(store):
    c = store.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    with pytest.raises(Conflict):
        store.delete("configmaps", "default", "c", preconditions={"resourceVersion": "1"})
    obj, gone = store.delete("configmaps", "default", "c", preconditions={"uid": c["metadata"]["uid"]})
    assert gone


def test_strategic_merge_patch(store):
    store.create("pods", _pod("a", volumes=[{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}]))
    p = store.patch("pods", "default", "a", {"spec": {"containers": [
        {"name": "c", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]},
        {"name": "side", "image": "side:1"}]}}, "strategic")
    cs = p["spec"]["containers"]
    assert [c["name"] for c in cs] == ["c", "side"] and cs[0]["image"] == "img:1"
    assert cs[0]["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
    p = store.patch("pods", "default", "a", {"spec": {"volumes": [{"name": "v1", "$patch": "delete"}]}}, "strategic")
    assert [v["name"] for v in p["spec"]["volumes"]] == ["v2"]
    p = store.patch("pods", "default", "a", {"metadata": {"finalizers": ["a/b"]}}, "strategic")
    p = store.patch("pods", "default", "a", {"metadata": {"finalizers": ["c/d"]}}, "strategic")
    assert p["metadata"]["finalizers"] == ["a/b", "c/d"]  # a set
    p = store.patch("pods", "default", "a", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/b"]}},
                    "strategic")
    assert p["metadata"]["finalizers"] == ["c/d"]
    p = store.patch("pods", "default", "a", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                    "strategic")
    p = store.patch("pods", "default", "a", {"status": {"conditions": [{"type": "PodScheduled", "status": "True"},
                                                                       {"type": "Ready", "status": "False"}]}},
                    "strategic")
    assert {c["type"]: c["status"] for c in p["status"]["conditions"]} == {"Ready": "False", "PodScheduled": "True"}
    p = store.patch("pods", "default", "a", {"spec": {"tolerations": [{"operator": "Exists"}]}}, "strategic")
    assert p["spec"]["tolerations"] == [{"operator": "Exists"}]  # no merge key: replaced
    p = store.patch("pods", "default", "a", {"metadata": {"labels": {"$patch": "replace", "only": "me"}}},
                    "strategic")
    assert p["metadata"]["labels"] == {"only": "me"}
    p = store.patch("pods", "default", "a", {"metadata": {"labels": {"only": None}}}, "strategic")
    assert "labels" not in p["metadata"] or p["metadata"]["labels"] == {}
    # ownerReferences merge by uid
    p = store.patch("pods", "default", "a", {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u1"}]}}, "strategic")
    p = store.patch("pods", "default", "a", {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "X", "name": "y", "uid": "u2"}]}}, "strategic")
    assert [o["uid"] for o in p["metadata"]["ownerReferences"]] == ["u1", "u2"]
    # node taints and endpoints subsets are replaced whole; service ports merge by port
    store.create("nodes", {"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}})
    n = store.patch("nodes", None, "n1", {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}, "strategic")
    assert n["spec"]["taints"] == [{"key": "b", "effect": "NoExecute"}]
    store.create("services", {"metadata": {"name": "s", "namespace": "default"},
                              "spec": {"ports": [{"name": "a", "port": 80}]}})
    s = store.patch("services", "default", "s", {"spec": {"ports": [{"name": "b", "port": 443}]}}, "strategic")
    assert [p["port"] for p in s["spec"]["ports"]] == [80, 443]
    # $retainKeys
    d = store.create("deployments.apps", {"metadata": {"name": "d", "namespace": "default"},
                                          "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    d = store.patch("deployments.apps", "default", "d", {"spec": {"strategy": {"$retainKeys": ["type"],
                                                                               "type": "Recreate"}}}, "strategic")
    assert d["spec"]["strategy"] == {"type": "Recreate"}


def test_merge_and_json_patch(store):
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1", "b": "2"}})
    c = store.patch("configmaps", "default", "c", {"data": {"a": None, "c": "3"}}, "merge")
    assert c["data"] == {"b": "2", "c": "3"}
    with pytest.raises(ApiError) as ei:  # ConfigMap data holds strings: the typed decoder refuses an object
        store.patch("configmaps", "default", "c", {"data": {"x": {"y": 1}}}, "merge")
    assert ei.value.code == 400 and "ConfigMap.data.x of type string" in ei.value.message
    c = store.patch("configmaps", "default", "c", [
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "copy", "from": "/data/b", "path": "/data/d"},
        {"op": "move", "from": "/data/c", "path": "/data/e"},
        {"op": "add", "path": "/metadata/labels", "value": {"a~b/c": "v"}},
        {"op": "replace", "path": "/metadata/labels/a~0b~1c", "value": "w"}], "json")
    assert c["data"] == {"b": "2", "d": "2", "e": "3"} and c["metadata"]["labels"] == {"a~b/c": "w"}
    with pytest.raises(ApiError) as ei:
        store.patch("configmaps", "default", "c", [{"op": "test", "path": "/data/b", "value": "9"}], "json")
    assert ei.value.code == 422
    with pytest.raises(ApiError) as ei:
        store.patch("configmaps", "default", "c", [{"op": "remove", "path": "/data/zzz"}], "json")
    assert ei.value.code == 422
    store.create("namespaces", {"metadata": {"name": "lh"}})
    store.create("settings.longhorn.io", {"metadata": {"name": "s", "namespace": "lh"}, "value": "do-nothing"})
    with pytest.raises(ApiError) as ei:
        store.patch("settings.longhorn.io", "lh", "s", {"value": "x"}, "strategic")
    assert ei.value.code == 415 and ei.value.reason == "UnsupportedMediaType"
    s = store.patch("settings.longhorn.io", "lh", "s", {"value": "delete-both-statefulset-and-deployment-pod"}, "merge")
    assert s["value"] == "delete-both-statefulset-and-deployment-pod" and s["metadata"]["generation"] == 2


def test_selectors_and_indexes(store):
    store.create("nodes", {"metadata": {"name": "n1"}})
    store.create("nodes", {"metadata": {"name": "n2"}, "spec": {"unschedulable": True}})
    store.create("pods", _pod("a", node="n1"))
    store.create("pods", _pod("b", node="n2"))
    p = store.get("pods", "default", "b")
    p["spec"]["nodeName"] = "n1"  # the index follows a change of spec.nodeName
    store.update("pods", p)
    assert [x["metadata"]["name"] for x in store.list("pods", field_selector="spec.nodeName=n1")] == ["a", "b"]
    assert store.list("pods", field_selector="spec.nodeName=n2") == []
    assert [x["metadata"]["name"] for x in store.list("nodes", field_selector="spec.unschedulable=true")] == ["n2"]
    assert [x["metadata"]["name"] for x in store.list("pods", field_selector="metadata.namespace=default,"
                                                                            "status.phase=Running")] == ["a", "b"]
    assert [x["metadata"]["name"] for x in store.list("pods", label_selector="app notin (a)")] == ["b"]
    with pytest.raises(ApiError) as ei:
        store.list("volumeattachments.storage.k8s.io", field_selector="spec.nodeName=n1")
    assert ei.value.code == 400
    assert ei.value.message == '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"'
    objs = store.list("pods", copy=False)
    assert objs[0] is store.get("pods", "default", "a", copy=False)


def test_namespace_deletion(store):
    store.create("namespaces", {"metadata": {"name": "x"}})
    store.create("nodes", {"metadata": {"name": "n1"}})
    store.create("pods", _pod("a", ns="x"))
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "x"}})
    obj, gone = store.delete("namespaces", None, "x")
    assert not gone and obj["status"]["phase"] == "Terminating"
    assert store.list("configmaps", "x") == []
    with pytest.raises(ApiError) as ei:
        store.create("configmaps", {"metadata": {"name": "d", "namespace": "x"}})
    assert ei.value.code == 403
    store.delete("pods", "x", "a", grace_period_seconds=0)  # the kubelet confirms the last pod
    with pytest.raises(NotFound):
        store.get("namespaces", None, "x")


def test_thread_safety(store):
    store.create("nodes", {"metadata": {"name": "n1"}})
    errors = []

    def writer(k):
        try:
            for i in range(200):
                store.create("pods", _pod(f"p{k}-{i}"))
                store.delete("pods", "default", f"p{k}-{i}", grace_period_seconds=0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.list("pods") == []
    evs = store.events_since(0)
    assert [e.rv for e in evs] == sorted(e.rv for e in evs)



def test_transaction_keeps_other_threads_out(store):
    """``with store.transaction():`` a read and the write that follows it see no other thread's write in
    between (what the eviction subresource relies on); re-entrant for the store's own methods."""
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}, "data": {"n": "0"}})
    inside, written = threading.Event(), []

    def other():
        inside.wait(5)
        cm = store.get("configmaps", "default", "c")
        cm["data"]["n"] = "other"
        store.update("configmaps", cm)
        written.append(store.resource_version)

    t = threading.Thread(target=other)
    t.start()
    with store.transaction() as tx:
        assert tx is store
        cm = store.get("configmaps", "default", "c")
        inside.set()
        t.join(0.2)
        assert t.is_alive() and written == []   # the other writer waits for the transaction
        cm["data"]["n"] = str(int(cm["data"]["n"]) + 1)
        store.update("configmaps", cm)           # no Conflict: nothing changed since the read
    t.join(5)
    assert written and store.get("configmaps", "default", "c")["data"]["n"] == "other"

def test_history_compacts_after_five_minutes():
    wall = [1000.0]
    store = Store(SimClock(), history_clock=lambda: wall[0])
    store.create("configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    rv = store.resource_version
    store.create("configmaps", {"metadata": {"name": "b", "namespace": "default"}})
    assert [e.entry.obj["metadata"]["name"] for e in store.events_since(rv)] == ["b"]
    wall[0] += 301
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    with pytest.raises(ApiError) as ei:
        store.events_since(rv)
    assert ei.value.code == 410 and ei.value.reason == "Expired"
    assert [e.entry.obj["metadata"]["name"] for e in store.events_since(store.resource_version - 1)] == ["c"]
