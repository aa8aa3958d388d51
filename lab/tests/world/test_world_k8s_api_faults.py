"""`tazlab-lab fault k8s-api`: the Kubernetes API twin answers chosen requests as a failing apiserver does."""

from __future__ import annotations

import json

import pytest
import requests


def _session(world):
    api = world.kube.api
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + api.admin_token
    return api.url, s, api.ca_path


def test_status_faults_carry_the_code_reason_and_retry_after(lab_world):
    url, s, ca = _session(lab_world)
    lab_world.fault("k8s-api", action="status", code=429, retry_after=3, verb="list", path="^/api/v1/nodes$",
                    times=1)
    r = s.get(url + "/api/v1/nodes", verify=str(ca), timeout=10)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3" and r.json()["reason"] == "TooManyRequests"
    assert s.get(url + "/api/v1/nodes", verify=str(ca), timeout=10).status_code == 200  # times=1: used up
    lab_world.fault("k8s-api", action="status", code=503, verb="get", path="/nodes/")
    assert s.get(url + "/api/v1/nodes/cp-01", verify=str(ca), timeout=10).status_code == 503
    cleared = lab_world.fault("k8s-api-clear")["cleared"]
    assert [f["hits"] for f in cleared] == [1, 1]
    assert s.get(url + "/api/v1/nodes/cp-01", verify=str(ca), timeout=10).status_code == 200


def test_dropped_answer_after_commit_keeps_the_write(lab_world):
    url, s, ca = _session(lab_world)
    lab_world.fault("k8s-api", action="drop-after-commit", verb="create", path="/configmaps$", times=1)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lost-answer"}, "data": {"a": "b"}}
    with pytest.raises(requests.ConnectionError):
        s.post(url + "/api/v1/namespaces/default/configmaps", data=json.dumps(body), verify=str(ca), timeout=10,
               headers={"Content-Type": "application/json"})
    assert lab_world.kube.store.get("configmaps", "default", "lost-answer")["data"] == {"a": "b"}
    again = s.post(url + "/api/v1/namespaces/default/configmaps", data=json.dumps(body), verify=str(ca), timeout=10,
                   headers={"Content-Type": "application/json"})
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
    lab_world.fault("k8s-api", action="drop", verb="delete", path="lost-answer", times=1)
    with pytest.raises(requests.ConnectionError):
        s.delete(url + "/api/v1/namespaces/default/configmaps/lost-answer", verify=str(ca), timeout=10)
    assert lab_world.kube.store.get("configmaps", "default", "lost-answer")  # dropped before: nothing done


def test_bad_fault_parameters_are_refused(lab_world):
    with pytest.raises(ValueError):
        lab_world.fault("k8s-api", action="explode")
    with pytest.raises(ValueError):
        lab_world.fault("k8s-api", action="status")
