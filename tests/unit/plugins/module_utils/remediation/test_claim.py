import time

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import (
    ANNOTATION_ACTOR, ANNOTATION_CORDONED, ClaimError, ClaimService, lease_state, micro_time, plan_claim,
    plan_release)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time

NOW = parse_time("2026-01-25T21:00:00Z")


def node(taints=None, unschedulable=False, annotations=None):
    return {"metadata": {"name": "worker-new-03", "resourceVersion": "7", "annotations": annotations or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable}}


def lease(holder, renewed=NOW - 60, duration=3600):
    return {"metadata": {"name": "tazlab-remediation-worker-new-03", "resourceVersion": "9"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": micro_time(renewed)}}


OURS = {"key": "remediation.tazlab.io/fencing", "value": "true", "effect": "NoSchedule"}


def actions(steps):
    return [s["action"] for s in steps]


def test_fresh_claim_creates_lease_taints_cordons_annotates():
    assert actions(plan_claim(node(), None, "awx", NOW, 3600)) == ["create_lease", "add_taint", "cordon", "annotate"]
    assert actions(plan_claim(node(), None, "awx", NOW, 3600, cordon=False)) == ["create_lease", "add_taint", "annotate"]


def test_claim_held_by_same_actor_is_idempotent():
    held = node(taints=[OURS], unschedulable=True, annotations={ANNOTATION_ACTOR: "awx", ANNOTATION_CORDONED: "true"})
    assert plan_claim(held, lease("awx"), "awx", NOW, 3600) == []


def test_claim_held_by_another_actor_is_refused_until_it_expires():
    with pytest.raises(ClaimError, match="being remediated by human"):
        plan_claim(node(), lease("human"), "awx", NOW, 3600)
    expired = lease("human", renewed=NOW - 7200)
    steps = plan_claim(node(), expired, "awx", NOW, 3600)
    assert actions(steps)[0] == "take_over_lease" and steps[0]["previous_holder"] == "human"
    assert steps[0]["resource_version"] == "9"


def test_release_undoes_only_what_the_claim_did():
    claimed = node(taints=[OURS, {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}],
                   unschedulable=True, annotations={ANNOTATION_ACTOR: "awx", ANNOTATION_CORDONED: "true"})
    assert actions(plan_release(claimed, lease("awx"), "awx", NOW)) == [
        "remove_taint", "uncordon", "remove_annotations", "delete_lease"]
    # cordoned by a human before the claim: stays cordoned
    human = node(taints=[OURS], unschedulable=True, annotations={ANNOTATION_ACTOR: "awx"})
    assert "uncordon" not in actions(plan_release(human, lease("awx"), "awx", NOW))
    assert plan_release(node(), None, "awx", NOW) == []


def test_release_of_another_actors_claim_needs_force():
    with pytest.raises(ClaimError, match="not releasing"):
        plan_release(node(taints=[OURS]), lease("human"), "awx", NOW)
    assert actions(plan_release(node(taints=[OURS]), lease("human"), "awx", NOW, force=True)) == [
        "remove_taint", "delete_lease"]


def test_lease_state_and_bad_input():
    assert lease_state(lease("a"), NOW)[0] == "a"
    assert lease_state(lease("a", renewed=NOW - 4000), NOW)[0] is None
    assert lease_state(None, NOW) == (None, None)
    with pytest.raises(ClaimError):
        plan_claim(node(), None, "", NOW, 3600)
    with pytest.raises(ClaimError):
        plan_claim(node(), None, "awx", NOW, 0)


def test_claim_service_uses_the_clients_leases_api_and_the_apiservers_clock():
    class Client:
        coordination = object()
        server_time = None
    client = Client()
    service = ClaimService(client)
    assert service.leases is client.coordination
    assert abs(service.now() - time.time()) < 5   # no answer yet: the local clock
    client.server_time = NOW
    assert service.now() == NOW
