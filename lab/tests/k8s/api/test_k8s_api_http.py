"""Raw HTTPS against the API twin: status codes, Status bodies and reason phrases of a real apiserver,
authentication and authorization, discovery shapes, watch wire format."""

from __future__ import annotations

import json
import ssl
import time

import pytest
import requests
import urllib3  # noqa: F401 - the warning filter names it


@pytest.fixture
def http(apiserver):
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override s.verify
    wd = apiserver.server.workdir
    s.cert = (str(wd / "admin.crt"), str(wd / "admin.key"))
    s.verify = str(apiserver.server.ca_path)
    base = apiserver.url

    class H:
        session = s
        url = base

        def __getattr__(self, method):
            def call(path, **kw):
                return s.request(method.upper(), base + path, timeout=10, **kw)
            return call
    yield H()
    s.close()


def _status(resp, code, reason, phrase=None):
    assert resp.status_code == code, resp.text
    if phrase:
        assert resp.reason == phrase
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["reason"] == reason and body["code"] == code
    return body


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_authentication(apiserver):
    url = apiserver.url + "/api/v1/nodes"
    ca = str(apiserver.server.ca_path)
    r = requests.get(url, verify=ca, timeout=10)
    body = _status(r, 401, "Unauthorized", "Unauthorized")
    assert body["message"] == "Unauthorized"
    r = requests.get(url, verify=ca, headers={"Authorization": "Bearer wrong"}, timeout=10)
    _status(r, 401, "Unauthorized")
    r = requests.get(apiserver.url + "/version", verify=ca, timeout=10)
    assert r.status_code == 401
    r = requests.get(url, verify=ca, headers={"Authorization": f"Bearer {apiserver.server.admin_token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["kind"] == "NodeList"
    # TLS without a client certificate (and without verifying the server) is still anonymous: 401
    r = requests.get(url, verify=False, timeout=10)
    assert r.status_code == 401
    # the serving certificate verifies for 127.0.0.1 and localhost
    ctx = ssl.create_default_context(cafile=ca)
    import socket
    with socket.create_connection(("127.0.0.1", apiserver.server.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version()


def test_authorization_reader(apiserver, seed):
    seed.node("n1")
    h = {"Authorization": f"Bearer {apiserver.server.reader_token}"}
    ca = str(apiserver.server.ca_path)
    r = requests.get(apiserver.url + "/api/v1/nodes", headers=h, verify=ca, timeout=10)
    assert r.status_code == 200
    r = requests.patch(apiserver.url + "/api/v1/nodes/n1", headers={**h, "Content-Type":
                       "application/merge-patch+json"}, data='{"spec":{"unschedulable":true}}', verify=ca, timeout=10)
    body = _status(r, 403, "Forbidden", "Forbidden")
    assert body["message"] == ('nodes "n1" is forbidden: User "reader" cannot patch resource "nodes" in API group "" '
                               'at the cluster scope')
    assert body["details"] == {"name": "n1", "kind": "nodes"}
    r = requests.post(apiserver.url + "/api/v1/namespaces/default/pods", headers=h, json={}, verify=ca, timeout=10)
    body = _status(r, 403, "Forbidden")
    assert body["message"] == ('pods is forbidden: User "reader" cannot create resource "pods" in API group "" in '
                               'the namespace "default"')
    assert apiserver.store.get("nodes", None, "n1")["spec"].get("unschedulable") is None


def test_discovery_shapes(http):
    v = http.get("/version").json()
    assert v["major"] == "1" and v["gitVersion"].startswith("v1.")
    api = http.get("/api").json()
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"] and api["serverAddressByClientCIDRs"]
    core = http.get("/api/v1").json()
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by = {r["name"]: r for r in core["resources"]}
    assert by["pods"]["namespaced"] is True and by["pods"]["shortNames"] == ["po"] and "watch" in by["pods"]["verbs"]
    assert by["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                                   "version": "v1", "kind": "Eviction", "verbs": ["create"]}
    assert by["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert by["nodes"]["namespaced"] is False and by["nodes/status"]["kind"] == "Node"
    groups = http.get("/apis").json()
    assert groups["kind"] == "APIGroupList"
    names = {g["name"]: g for g in groups["groups"]}
    for g in ("apps", "storage.k8s.io", "discovery.k8s.io", "coordination.k8s.io", "policy",
              "apiextensions.k8s.io", "longhorn.io"):
        assert g in names
    assert names["longhorn.io"]["preferredVersion"] == {"groupVersion": "longhorn.io/v1beta2", "version": "v1beta2"}
    lh = http.get("/apis/longhorn.io/v1beta2").json()
    lby = {r["name"]: r for r in lh["resources"]}
    assert lby["volumeattachments"]["shortNames"] == ["lhva"] and lby["volumes/status"]
    apps = http.get("/apis/apps").json()
    assert apps["kind"] == "APIGroup" and apps["preferredVersion"]["groupVersion"] == "apps/v1"
    assert http.get("/apis/nope.example.com/v1").status_code == 404
    assert http.get("/openapi/v2").status_code == 404


def test_not_found_and_unknown(http, seed):
    body = _status(http.get("/api/v1/namespaces/default/pods/ghost"), 404, "NotFound", "Not Found")
    assert body["message"] == 'pods "ghost" not found'
    assert body["details"] == {"name": "ghost", "kind": "pods"}
    body = _status(http.get("/apis/apps/v1/namespaces/default/deployments/ghost"), 404, "NotFound")
    assert body["message"] == 'deployments.apps "ghost" not found'
    assert body["details"] == {"name": "ghost", "group": "apps", "kind": "deployments"}
    body = _status(http.get("/api/v1/foos"), 404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"
    _status(http.get("/api/v1/namespaces/default/nodes"), 404, "NotFound")  # cluster-scoped under a namespace
    _status(http.get("/api/v1/pods/x/status"), 404, "NotFound")
    _status(http.put("/api/v1/namespaces/default/pods", json={}), 405, "MethodNotAllowed", "Method Not Allowed")
    _status(http.post("/api/v1/nodes/n1", json={}), 405, "MethodNotAllowed")
    _status(http.post("/api/v1/pods", json={"metadata": {"name": "x"}}), 405, "MethodNotAllowed")
    _status(http.delete("/api/v1/pods"), 405, "MethodNotAllowed")


def test_create_errors(http, seed):
    r = http.post("/api/v1/namespaces/default/configmaps", data=b"{not json",
                  headers={"Content-Type": "application/json"})
    _status(r, 400, "BadRequest", "Bad Request")
    body = _status(http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {}}), 422, "Invalid",
                   "Unprocessable Entity")
    assert body["message"] == ('ConfigMap "" is invalid: metadata.name: Required value: name or generateName is '
                               'required')
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    body = _status(http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "Bad_Name"}}),
                   422, "Invalid")
    assert "a lowercase RFC 1123 subdomain" in body["message"]
    body = _status(http.post("/api/v1/namespaces/default/pods", json={"metadata": {"name": "p"}, "spec": {}}),
                   422, "Invalid")
    assert body["message"] == 'Pod "p" is invalid: spec.containers: Required value'
    assert http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}}).status_code == 201
    body = _status(http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}}),
                   409, "AlreadyExists", "Conflict")
    assert body["message"] == 'configmaps "a" already exists'
    body = _status(http.post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": "b", "namespace": "kube-system"}}), 400, "BadRequest")
    assert "does not match the namespace" in body["message"]
    r = http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"generateName": "gen-"}})
    assert r.status_code == 201 and r.json()["metadata"]["name"].startswith("gen-")
    assert len(r.json()["metadata"]["name"]) == len("gen-") + 5
    # dry run stores nothing
    r = http.post("/api/v1/namespaces/default/configmaps?dryRun=All", json={"metadata": {"name": "dry"}})
    assert r.status_code == 201
    assert http.get("/api/v1/namespaces/default/configmaps/dry").status_code == 404


def test_update_conflict(http, seed, apiserver):
    seed.create("endpoints", {"metadata": {"name": "kubernetes", "namespace": "default"},
                              "subsets": [{"addresses": [{"ip": "10.0.0.11"}], "ports": [{"port": 6443}]}]})
    ep = http.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    stale = json.loads(json.dumps(ep))
    ep["subsets"][0]["addresses"] = [{"ip": "10.0.0.12"}]
    r = http.put("/api/v1/namespaces/default/endpoints/kubernetes", json=ep)
    assert r.status_code == 200 and int(r.json()["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    body = _status(http.put("/api/v1/namespaces/default/endpoints/kubernetes", json=stale), 409, "Conflict", "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on endpoints "kubernetes": the object has been '
                               'modified; please apply your changes to the latest version and try again')
    assert body["details"] == {"name": "kubernetes", "kind": "endpoints"}
    # PATCH does not check unless the patch carries a resourceVersion
    r = http.patch("/api/v1/namespaces/default/endpoints/kubernetes", data=json.dumps({"metadata": {"labels": {"a": "b"}}}),
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200
    r = http.patch("/api/v1/namespaces/default/endpoints/kubernetes",
                   data=json.dumps({"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}}),
                   headers={"Content-Type": "application/merge-patch+json"})
    _status(r, 409, "Conflict")
    # a no-op write keeps the resourceVersion and emits nothing
    rv = apiserver.store.resource_version
    cur = http.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    r = http.put("/api/v1/namespaces/default/endpoints/kubernetes", json=cur)
    assert r.json()["metadata"]["resourceVersion"] == cur["metadata"]["resourceVersion"]
    assert apiserver.store.resource_version == rv
    body = _status(http.put("/api/v1/namespaces/default/endpoints/other", json=cur), 400, "BadRequest")
    assert body["message"] == "the name of the object (kubernetes) does not match the name on the URL (other)"
    # PUT to a missing node is a 404 (nodes cannot be created by update); endpoints can
    _status(http.put("/api/v1/nodes/ghost", json={"metadata": {"name": "ghost"}}), 404, "NotFound")
    r = http.put("/api/v1/namespaces/default/endpoints/new", json={"metadata": {"name": "new"}})
    assert r.status_code == 201


def test_patch_errors(http, seed):
    seed.node("n1")
    seed.namespace("longhorn-system")
    seed.create("volumes.longhorn.io", {"metadata": {"name": "v", "namespace": "longhorn-system"}, "spec": {}})
    url = "/apis/longhorn.io/v1beta2/namespaces/longhorn-system/volumes/v"
    body = _status(http.patch(url, data='{"spec":{"x":1}}',
                              headers={"Content-Type": "application/strategic-merge-patch+json"}),
                   415, "UnsupportedMediaType", "Unsupported Media Type")
    assert body["message"] == ("the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/apply-patch+yaml")
    assert http.patch(url, data='{"spec":{"x":1}}',
                      headers={"Content-Type": "application/merge-patch+json"}).json()["spec"] == {"x": 1}
    r = http.patch("/api/v1/nodes/n1", data='{"spec":', headers={"Content-Type": "application/merge-patch+json"})
    _status(r, 400, "BadRequest")
    r = http.patch("/api/v1/nodes/n1", data='{"spec":{}}', headers={"Content-Type": "text/plain"})
    _status(r, 415, "UnsupportedMediaType")
    r = http.patch("/api/v1/nodes/n1", data='[{"op":"test","path":"/spec/unschedulable","value":true}]',
                   headers={"Content-Type": "application/json-patch+json"})
    _status(r, 422, "Invalid")
    r = http.patch("/api/v1/nodes/n1", data='{"op":"add"}', headers={"Content-Type": "application/json-patch+json"})
    _status(r, 400, "BadRequest")
    r = http.patch("/api/v1/nodes/n1", data='[{"op":"add","path":"/metadata/labels/x","value":"y"},'
                                            '{"op":"replace","path":"/spec/podCIDR","value":"10.1.0.0/24"}]',
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["metadata"]["labels"]["x"] == "y"
    r = http.patch("/api/v1/namespaces/default/pods/ghost", data="{}",
                   headers={"Content-Type": "application/strategic-merge-patch+json"})
    _status(r, 404, "NotFound")
    r = http.patch("/api/v1/nodes/n1", data="{}", headers={"Content-Type": "application/apply-patch+yaml"})
    _status(r, 415, "UnsupportedMediaType")


def test_selectors(http, seed):
    seed.node("n1")
    seed.node("n2")
    seed.pod("default", "a", "n1", labels={"app": "web", "tier": "front"})
    seed.pod("default", "b", "n2", labels={"app": "web"})
    seed.pod("default", "c", None, labels={"app": "db"}, phase="Pending")

    def names(path):
        r = http.get(path)
        assert r.status_code == 200, r.text
        return [i["metadata"]["name"] for i in r.json()["items"]]

    assert names("/api/v1/pods?labelSelector=app%3Dweb") == ["a", "b"]
    assert names("/api/v1/pods?labelSelector=app%20in%20(db,x)") == ["c"]
    assert names("/api/v1/pods?labelSelector=app%3D%3Dweb,tier") == ["a"]
    assert names("/api/v1/pods?labelSelector=!tier") == ["b", "c"]
    assert names("/api/v1/pods?labelSelector=app%20notin%20(web)") == ["c"]
    assert names("/api/v1/pods?labelSelector=app!%3Dweb") == ["c"]
    assert names("/api/v1/pods?fieldSelector=spec.nodeName%3Dn2") == ["b"]
    assert names("/api/v1/pods?fieldSelector=spec.nodeName%3D") == ["c"]
    assert names("/api/v1/pods?fieldSelector=status.phase!%3DRunning") == ["c"]
    assert names("/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Da") == ["a"]
    assert names("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse") == ["n1", "n2"]
    body = _status(http.get("/apis/storage.k8s.io/v1/volumeattachments?fieldSelector=spec.nodeName%3Dn1"),
                   400, "BadRequest", "Bad Request")
    assert body["message"] == ('"spec.nodeName" is not a known field selector: only "metadata.name", '
                               '"metadata.namespace"')
    body = _status(http.get("/api/v1/pods?fieldSelector=spec.bogus%3D1"), 400, "BadRequest")
    assert body["message"] == "field label not supported: spec.bogus"
    _status(http.get("/api/v1/pods?labelSelector=app%20in%20(a"), 400, "BadRequest")


def test_delete_semantics(http, seed, apiserver):
    store = apiserver.store
    seed.node("n1")
    seed.pod("default", "p", "n1")
    # kubernetes.core's body with "preconditions": null
    r = http.delete("/api/v1/namespaces/default/pods/p", json={
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Background",
        "preconditions": None})
    assert r.status_code == 200 and r.json()["kind"] == "Pod"
    _status(http.delete("/api/v1/namespaces/default/pods/p"), 404, "NotFound")
    # query parameters work as well as a body (the Python client sends either)
    seed.pod("default", "q", "n1")
    r = http.delete("/api/v1/namespaces/default/pods/q?gracePeriodSeconds=5")
    assert r.json()["metadata"]["deletionGracePeriodSeconds"] == 5
    # preconditions
    cm = seed.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    body = _status(http.delete("/api/v1/namespaces/default/configmaps/c", json={"preconditions": {"uid": "other"}}),
                   409, "Conflict")
    assert body["message"] == (f'Operation cannot be fulfilled on configmaps "c": Precondition failed: UID in '
                               f'precondition: other, UID in object meta: {cm["metadata"]["uid"]}')
    r = http.delete("/api/v1/namespaces/default/configmaps/c",
                    json={"preconditions": {"uid": cm["metadata"]["uid"],
                                            "resourceVersion": cm["metadata"]["resourceVersion"]}})
    assert r.status_code == 200
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": "c", "kind": "configmaps", "uid": cm["metadata"]["uid"]}}
    _status(http.delete("/api/v1/namespaces/default/configmaps/x", data=b"{bad"), 400, "BadRequest")
    _status(http.delete("/api/v1/namespaces/default/pods/q", json={"propagationPolicy": "Sideways"}), 422, "Invalid")
    # finalizers: 200 with the object and a deletionTimestamp, then gone when the last finalizer goes
    seed.create("configmaps", {"metadata": {"name": "f", "namespace": "default", "finalizers": ["example.com/x"]}})
    r = http.delete("/api/v1/namespaces/default/configmaps/f")
    assert r.status_code == 200 and r.json()["kind"] == "ConfigMap" and r.json()["metadata"]["deletionTimestamp"]
    body = _status(http.patch("/api/v1/namespaces/default/configmaps/f",
                              data='{"metadata":{"finalizers":["example.com/x","example.com/y"]}}',
                              headers={"Content-Type": "application/merge-patch+json"}), 422, "Invalid")
    assert "no new finalizers can be added if the object is being deleted" in body["message"]
    http.patch("/api/v1/namespaces/default/configmaps/f", data='{"metadata":{"finalizers":null}}',
               headers={"Content-Type": "application/merge-patch+json"})
    _status(http.get("/api/v1/namespaces/default/configmaps/f"), 404, "NotFound")
    # deletecollection
    for i in range(3):
        seed.create("configmaps", {"metadata": {"name": f"dc{i}", "namespace": "default", "labels": {"g": "1"}}})
    r = http.delete("/api/v1/namespaces/default/configmaps?labelSelector=g%3D1")
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    assert store.list("configmaps", "default", label_selector="g=1") == []


def test_owner_gc_policies(http, seed, apiserver):
    store = apiserver.store
    seed.node("n1")

    def family(name):
        d = seed.deployment("default", name)
        rs = seed.create("replicasets.apps", {
            "metadata": {"name": f"{name}-1", "namespace": "default", "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": d["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"selector": {"matchLabels": {"app": name}}}})
        seed.pod("default", f"{name}-1-x", "n1", owner=rs)
        seed.pod("default", f"{name}-1-y", None, owner=rs, phase="Pending")
        return d, rs

    # Orphan: dependents stay, their ownerReferences go
    family("orph")
    r = http.delete("/apis/apps/v1/namespaces/default/deployments/orph", json={"propagationPolicy": "Orphan"})
    assert r.status_code == 200
    rs = store.get("replicasets.apps", "default", "orph-1")
    assert not rs["metadata"].get("ownerReferences")
    with pytest.raises(Exception):
        store.get("deployments.apps", "default", "orph")
    # Foreground: the owner waits (foregroundDeletion) while a dependent is still terminating
    family("fg")
    r = http.delete("/apis/apps/v1/namespaces/default/deployments/fg", json={"propagationPolicy": "Foreground"})
    assert r.status_code == 200 and r.json()["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert store.get("pods", "default", "fg-1-x")["metadata"]["deletionTimestamp"]
    with pytest.raises(Exception):
        store.get("pods", "default", "fg-1-y")  # unscheduled: gone at once
    assert store.get("deployments.apps", "default", "fg")["metadata"]["deletionTimestamp"]
    apiserver.call(store.delete, "pods", "default", "fg-1-x", grace_period_seconds=0)  # the kubelet confirms
    assert [d["metadata"]["name"] for d in store.list("deployments.apps")] == ["orph"] or \
        "fg" not in [d["metadata"]["name"] for d in store.list("deployments.apps")]
    assert "fg-1" not in [x["metadata"]["name"] for x in store.list("replicasets.apps")]
    # Background (the default): owner gone now, dependents deleted after it
    family("bg")
    r = http.delete("/apis/apps/v1/namespaces/default/deployments/bg")
    assert r.json()["kind"] == "Status"
    assert "bg-1" not in [x["metadata"]["name"] for x in store.list("replicasets.apps")]
    assert store.get("pods", "default", "bg-1-x")["metadata"]["deletionTimestamp"]  # terminating on its node


def test_eviction_bodies(http, seed, apiserver):
    seed.node("n1")
    seed.pod("default", "a", "n1")
    seed.pod("default", "b", "n1")
    for name, av in (("a", "policy/v1beta1"), ("b", "policy/v1")):
        r = http.post(f"/api/v1/namespaces/default/pods/{name}/eviction", json={
            "apiVersion": av, "kind": "Eviction", "metadata": {"name": name, "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 0} if name == "b" else None})
        assert r.status_code == 201, r.text
        assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    a = apiserver.store.get("pods", "default", "a")
    assert a["metadata"]["deletionTimestamp"]
    assert {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}.items() <= [c for c in a["status"]["conditions"]
                                                             if c["type"] == "DisruptionTarget"][0].items()
    assert apiserver.store.list("pods", field_selector="metadata.name=b") == []
    r = http.post("/api/v1/namespaces/default/pods/a/eviction", json={
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}})
    _status(r, 400, "BadRequest")
    assert apiserver.store.requests[("create", "pods/eviction")] == 3
    # two budgets over one pod: a Status with code 500 and no reason
    seed.pod("default", "c", "n1", labels={"app": "c"})
    for n in ("p1", "p2"):
        seed.create("poddisruptionbudgets.policy", {"metadata": {"name": n, "namespace": "default"},
                                                    "spec": {"maxUnavailable": 1, "selector": {}}})
    r = http.post("/api/v1/namespaces/default/pods/c/eviction", json={"metadata": {"name": "c"}})
    assert r.status_code == 500 and "reason" not in r.json()
    assert r.json()["message"] == ("This pod has more than one PodDisruptionBudget, which the eviction subresource "
                                   "does not support.")


def _watch_lines(http, path, n, timeout=10):
    out = []
    with http.session.get(http.url + path, stream=True, timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers.get("Transfer-Encoding") == "chunked"
        for line in r.iter_lines():
            if line:
                out.append(json.loads(line))
            if len(out) >= n:
                break
    return out


def test_watch_wire(http, seed, apiserver):
    seed.create("configmaps", {"metadata": {"name": "x", "namespace": "default"}})
    rv0 = apiserver.store.resource_version
    seed.create("configmaps", {"metadata": {"name": "y", "namespace": "default"}})
    seed.create("configmaps", {"metadata": {"name": "x", "namespace": "kube-system"}})
    # no resourceVersion: the current state as ADDED events
    evs = _watch_lines(http, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "x"), ("ADDED", "y")]
    # from a resourceVersion: only what happened after, filtered by field selector (kubectl 1.20's wait)
    evs = _watch_lines(http, f"/api/v1/configmaps?watch=true&resourceVersion={rv0}&timeoutSeconds=1"
                             f"&fieldSelector=metadata.name%3Dx", 1)
    assert [(e["type"], e["object"]["metadata"]["namespace"]) for e in evs] == [("ADDED", "kube-system")]
    # timeoutSeconds ends the stream
    t0 = time.monotonic()
    with http.session.get(http.url + f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion="
                          f"{apiserver.store.resource_version}&timeoutSeconds=1", stream=True, timeout=10) as r:
        assert list(r.iter_lines()) == []
    assert 0.8 < time.monotonic() - t0 < 5
    # bookmarks (the fixture's server sends one per second)
    evs = _watch_lines(http, f"/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true"
                             f"&resourceVersion={apiserver.store.resource_version}&timeoutSeconds=5", 1)
    assert evs[0]["type"] == "BOOKMARK"
    assert evs[0]["object"]["kind"] == "ConfigMap"
    assert evs[0]["object"]["metadata"]["resourceVersion"] == str(apiserver.store.resource_version)
    # a label change that leaves the selector is a DELETED for that watch
    seed.create("configmaps", {"metadata": {"name": "l", "namespace": "default", "labels": {"k": "v"}}})
    rv1 = apiserver.store.resource_version
    apiserver.call(apiserver.store.patch, "configmaps", "default", "l", {"metadata": {"labels": {"k": "w"}}}, "merge")
    evs = _watch_lines(http, f"/api/v1/namespaces/default/configmaps?watch=true&labelSelector=k%3Dv"
                             f"&resourceVersion={rv1}&timeoutSeconds=2", 1)
    assert evs[0]["type"] == "DELETED" and evs[0]["object"]["metadata"]["labels"] == {"k": "w"}
    # too old: an ERROR event carrying 410 Expired
    apiserver.store._history_max = 1
    seed.create("configmaps", {"metadata": {"name": "z1", "namespace": "default"}})
    seed.create("configmaps", {"metadata": {"name": "z2", "namespace": "default"}})
    evs = _watch_lines(http, f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv0}", 1)
    assert evs[0]["type"] == "ERROR"
    assert evs[0]["object"]["code"] == 410 and evs[0]["object"]["reason"] == "Expired"
    assert evs[0]["object"]["message"].startswith(f"too old resource version: {rv0} (")


def test_list_shapes_and_table_accept(http, seed):
    seed.node("n1")
    r = http.get("/api/v1/nodes?limit=500", headers={"Accept": "application/json, */*"})
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "NodeList" and body["apiVersion"] == "v1" and body["metadata"]["resourceVersion"]
    assert body["items"][0]["metadata"]["name"] == "n1"
    # items of a typed list carry no TypeMeta (a custom resource list's items do)
    assert "kind" not in body["items"][0] and "apiVersion" not in body["items"][0]
    assert list(body["items"][0])[:2] == ["metadata", "spec"]
    seed.namespace("longhorn-system")
    seed.create("settings.longhorn.io", {"metadata": {"name": "s", "namespace": "longhorn-system"}, "value": "x"})
    cr = http.get("/apis/longhorn.io/v1beta2/namespaces/longhorn-system/settings").json()
    assert cr["kind"] == "SettingList" and cr["items"][0]["kind"] == "Setting"
    # single objects and watch events do carry it
    assert http.get("/api/v1/nodes/n1").json()["kind"] == "Node"
    lst = http.get("/apis/apps/v1/deployments").json()
    assert lst == {"kind": "DeploymentList", "apiVersion": "apps/v1",
                   "metadata": {"resourceVersion": lst["metadata"]["resourceVersion"]}, "items": []}


def test_namespace_routes(http, seed):
    r = http.get("/api/v1/namespaces/default/status")
    assert r.status_code == 200 and r.json()["kind"] == "Namespace" and r.json()["status"]["phase"] == "Active"
    assert r.json()["metadata"]["labels"] == {"kubernetes.io/metadata.name": "default"}
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": "tmp"}}).status_code == 201
    r = http.delete("/api/v1/namespaces/tmp")
    assert r.status_code == 200 and r.json()["kind"] == "Namespace" and r.json()["status"]["phase"] == "Terminating"
    _status(http.get("/api/v1/namespaces/tmp"), 404, "NotFound")
    body = _status(http.post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": "c", "resourceVersion": "5"}}), 400, "BadRequest")
    assert body["message"] == "resourceVersion should not be set on objects to be created"
    _status(http.post("/api/v1/namespaces", json={"metadata": {"name": "Not_Valid"}}), 422, "Invalid")


def test_table_shapes(http, seed, apiserver):
    seed.node("n1")
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io," \
             "application/json"
    t = http.get("/api/v1/nodes", headers={"Accept": accept}).json()
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"]["resourceVersion"] == str(apiserver.store.resource_version)
    assert [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0] == ["Name", "Status", "Roles", "Age",
                                                                                 "Version"]
    assert t["rows"][0]["cells"][:2] == ["n1", "Ready"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert t["rows"][0]["object"]["metadata"]["name"] == "n1"
    t = http.get("/api/v1/nodes/n1", headers={"Accept": "application/json;as=Table;v=v1beta1;g=meta.k8s.io"}).json()
    assert t["apiVersion"] == "meta.k8s.io/v1beta1" and len(t["rows"]) == 1
    # a watch asked for as Table carries Table objects, column definitions with the first event only
    seed.node("n2")
    with http.session.get(http.url + "/api/v1/nodes?watch=true&timeoutSeconds=1",
                          headers={"Accept": accept}, stream=True, timeout=10) as r:
        evs = [json.loads(x) for x in r.iter_lines() if x]
    assert [e["object"]["kind"] for e in evs] == ["Table", "Table"]
    assert evs[0]["object"]["columnDefinitions"] and evs[1]["object"]["columnDefinitions"] is None
    assert [e["object"]["rows"][0]["cells"][0] for e in evs] == ["n1", "n2"]


def test_update_validation(http, seed):
    seed.node("n1")
    seed.node("n2")
    p = http.post("/api/v1/namespaces/default/pods", json={
        "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [
            {"name": "c", "image": "a:1", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}]}}).json()
    assert p["spec"]["priority"] == 0 and p["status"]["qosClass"] == "Burstable"
    merge = {"Content-Type": "application/merge-patch+json"}
    body = _status(http.patch("/api/v1/namespaces/default/pods/p", data='{"spec":{"nodeName":"n2"}}', headers=merge),
                   422, "Invalid")
    assert "pod updates may not change fields other than" in body["message"]
    r = http.patch("/api/v1/namespaces/default/pods/p", headers=merge,
                   data=json.dumps({"spec": {"containers": [{"name": "c", "image": "a:2", "resources": {
                       "requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}]}}))
    assert r.status_code == 200 and r.json()["spec"]["containers"][0]["image"] == "a:2"
    seed.create("volumeattachments.storage.k8s.io", {
        "metadata": {"name": "va"}, "spec": {"attacher": "driver.longhorn.io", "nodeName": "n1",
                                             "source": {"persistentVolumeName": "pv"}}})
    body = _status(http.patch("/apis/storage.k8s.io/v1/volumeattachments/va", headers=merge,
                              data='{"spec":{"nodeName":"n2"}}'), 422, "Invalid")
    assert body["message"].startswith('VolumeAttachment "va" is invalid: spec: Invalid value:')
    assert body["message"].endswith("field is immutable")
    seed.deployment("default", "d")
    body = _status(http.patch("/apis/apps/v1/namespaces/default/deployments/d", headers=merge,
                              data='{"spec":{"selector":{"matchLabels":{"app":"other"}}}}'), 422, "Invalid")
    assert "spec.selector" in body["message"]


def test_aggregated_discovery(http):
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
    r = http.get("/apis", headers={"Accept": accept})
    assert r.headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    doc = r.json()
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    lh = groups["longhorn.io"]["versions"][0]
    assert lh["version"] == "v1beta2" and lh["freshness"] == "Current"
    vol = [x for x in lh["resources"] if x["resource"] == "volumes"][0]
    assert vol["responseKind"] == {"group": "longhorn.io", "version": "v1beta2", "kind": "Volume"}
    assert vol["scope"] == "Namespaced" and vol["shortNames"] == ["lhv"]
    core = http.get("/api", headers={"Accept": accept}).json()
    pods = [x for x in core["items"][0]["versions"][0]["resources"] if x["resource"] == "pods"][0]
    ev = [s for s in pods["subresources"] if s["subresource"] == "eviction"][0]
    assert ev["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"} and ev["verbs"] == ["create"]
    # without the aggregated media type: the legacy documents
    assert http.get("/apis").json()["kind"] == "APIGroupList"


def test_date_header_is_the_clusters_clock(http, apiserver):
    """A real apiserver's Date header and the times it writes into objects share one clock; the twin's is
    the simulated one, so a client that judges an object's age by the Date header sees coherent ages."""
    import email.utils

    def server_date():
        resp = http.get("/version")
        assert resp.status_code == 200
        return email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()

    assert abs(server_date() - apiserver.clock.now()) <= 1
    apiserver.run(apiserver.clock.advance(3600))
    assert abs(server_date() - apiserver.clock.now()) <= 1
    created = http.post("/api/v1/namespaces", json={"metadata": {"name": "dated"}})
    assert created.status_code == 201
    stamp = created.json()["metadata"]["creationTimestamp"]
    assert abs(server_date() - email.utils.parsedate_to_datetime(created.headers["Date"]).timestamp()) <= 1
    assert stamp.startswith(apiserver.clock.now_iso()[:13])  # same simulated hour as the Date header


BAD_BODIES = [b'', b'null', b'[]', b'"x"', b'1', b'{"metadata":"x"}', b'{"metadata":{"name":5}}',
              b'{"metadata":{"labels":{"a":1}}}', b'{"metadata":{"name":"x","ownerReferences":"z"}}',
              b'{"metadata":{"name":"x","finalizers":"z"}}', b'{"metadata":{"name":"x"},"spec":"s"}',
              b'{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","resources":"r"}]}}',
              b'{"metadata":{"name":"p"},"spec":{"tolerations":"t"}}', b'{"metadata":{"ownerReferences":[{"uid":"u"},5]}}',
              b'[{"op":"replace","path":5,"value":1}]', b'{"$patch":"delete"}', b'{"spec":{"containers":[1]}}',
              b'{"status":{"conditions":[1]}}', b'{"gracePeriodSeconds":"x"}', b'{"preconditions":{"uid":5}}',
              b'{"metadata":{"name":"p"},"deleteOptions":{"gracePeriodSeconds":"x"}}', b'{"spec":{"resourceAttributes":5}}']


def test_malformed_bodies_never_500(http, seed, apiserver):
    """Garbage in any verb gets a 4xx Status and never corrupts the store."""
    seed.node("n1")
    seed.pod("default", "p", "n1")
    seed.namespace("lh")
    seed.create("volumes.longhorn.io", {"metadata": {"name": "v", "namespace": "lh"}, "spec": {}})
    urls = ["/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/p",
            "/api/v1/namespaces/default/pods/p/status", "/api/v1/namespaces/default/pods/p/eviction",
            "/api/v1/nodes/n1", "/apis/longhorn.io/v1beta2/namespaces/lh/volumes/v",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
    types = ["application/json", "application/merge-patch+json", "application/strategic-merge-patch+json",
             "application/json-patch+json"]
    seen = set()
    for url in urls:
        for body in BAD_BODIES:
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                for ctype in (types if method == "PATCH" else types[:1]):
                    r = http.session.request(method, http.url + url, data=body, headers={"Content-Type": ctype},
                                             timeout=10)
                    assert r.status_code < 500, (method, url, body, r.text)
                    assert r.headers["Content-Type"].startswith("application/json")
                    if r.status_code >= 400:
                        assert r.json()["kind"] == "Status"
                    seen.add(r.status_code)
    assert {400, 404, 405, 415, 422} <= seen
    # every stored object still serialises, lists and indexes still agree
    store = apiserver.store
    for res in ("pods", "nodes", "volumes.longhorn.io", "namespaces"):
        for e in store.list_entries(res)[0]:
            assert json.loads(e.raw) == e.obj
    assert [p["metadata"]["name"] for p in store.list("pods", field_selector="spec.nodeName=n1")] == \
        [p["metadata"]["name"] for p in store.list("pods") if p["spec"].get("nodeName") == "n1"]
