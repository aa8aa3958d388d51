import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import (
    NOT_READY, POWERED_OFF, PlanError, node_facts, parse_threshold, parse_time, plan_remediation)

NOW = parse_time("2026-01-25T21:00:00Z")


def node(name, ready="True", since="2026-01-25T20:00:00Z", cp=False, labels=None, taints=None, uuid=None):
    lab = dict(labels or {})
    if cp:
        lab["node-role.kubernetes.io/control-plane"] = ""
    return {
        "metadata": {"name": name, "labels": lab},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}],
            "nodeInfo": {"systemUUID": uuid or name.upper()},
            "addresses": [{"type": "InternalIP", "address": "192.168.1.%d" % (len(name) + 10)}],
        },
    }


def facts(nodes, vms=None, **kw):
    vms = vms or {}
    return [node_facts(n, NOW, vm=vms.get(n["metadata"]["name"]), **kw) for n in nodes]


def cluster(dead=(), partitioned=(), unknown=(), notready_since="2026-01-25T20:50:00Z"):
    names = ["cp-01", "cp-02", "cp-03", "worker-new-01", "worker-new-02", "worker-new-03", "worker-new-04"]
    nodes, vms = [], {}
    for n in names:
        down = n in dead or n in partitioned or n in unknown
        nodes.append(node(n, ready="Unknown" if down else "True", since=notready_since if down else "2026-01-25T20:00:00Z",
                          cp=n.startswith("cp")))
        vms[n] = {"status": "stopped" if n in dead else "unknown" if n in unknown else "running"}
    return nodes, vms


def names(items):
    return [i["name"] if "name" in i else i["node"] for i in items]


def test_node_facts_reads_the_node_and_time():
    f = node_facts(node("w1", ready="Unknown", since="2026-01-25T20:55:00.123456789Z",
                        taints=[{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]), NOW)
    assert f["ready"] == "Unknown"
    assert f["unhealthy_seconds"] == pytest.approx(299.9, abs=0.2)
    assert f["out_of_service"] and not f["remediation_tainted"]
    assert f["system_uuid"] == "W1" and f["vm_status"] is None
    assert node_facts(node("w2"), NOW)["unhealthy_seconds"] is None


def test_powered_off_vm_is_a_candidate_before_not_ready():
    nodes, vms = cluster()
    vms["worker-new-03"]["status"] = "stopped"  # still Ready: heartbeats have not expired yet
    plan = plan_remediation(facts(nodes, vms))
    assert names(plan["remediate"]) == ["worker-new-03"]
    assert plan["remediate"][0]["reason"] == POWERED_OFF


def test_not_ready_only_after_the_duration():
    nodes, vms = cluster(dead=["worker-new-03"])
    for v in vms.values():
        v["status"] = "running"
    vms["worker-new-03"] = None  # Proxmox not asked
    f = facts(nodes, vms)
    assert plan_remediation(f, unhealthy_seconds=900)["pending"][0]["node"] == "worker-new-03"
    plan = plan_remediation(f, unhealthy_seconds=300)
    assert names(plan["remediate"]) == ["worker-new-03"] and plan["remediate"][0]["reason"] == NOT_READY


def test_partitioned_running_node_is_refused_unless_allowed():
    nodes, vms = cluster(partitioned=["worker-new-02"])
    plan = plan_remediation(facts(nodes, vms))
    assert plan["remediate"] == []
    assert "network partition" in plan["refused"][0]["reason"]
    assert names(plan_remediation(facts(nodes, vms), allow_running=True)["remediate"]) == ["worker-new-02"]


def test_unknown_power_state_is_refused_even_with_allow_running():
    nodes, vms = cluster(unknown=["worker-new-01"])
    plan = plan_remediation(facts(nodes, vms), allow_running=True)
    assert plan["remediate"] == [] and "unknown" in plan["refused"][0]["reason"]


def test_exclude_labels_ours_and_medik8s():
    nodes, vms = cluster(dead=["worker-new-01", "worker-new-02"])
    nodes[3]["metadata"]["labels"]["remediation.medik8s.io/exclude-from-remediation"] = "true"
    plan = plan_remediation(facts(nodes, vms))
    assert names(plan["remediate"]) == ["worker-new-02"]
    assert "exclude-from-remediation" in plan["refused"][0]["reason"]


def test_max_unhealthy_and_min_healthy_storm_guards():
    nodes, vms = cluster(dead=["worker-new-01", "worker-new-02", "worker-new-03"])
    f = facts(nodes, vms)
    assert len(plan_remediation(f)["remediate"]) == 3
    plan = plan_remediation(f, max_unhealthy=2)
    assert plan["remediate"] == [] and len(plan["refused"]) == 3 and "max_unhealthy" in plan["refused"][0]["reason"]
    assert plan_remediation(f, max_unhealthy="50%")["remediate"] != []  # 3 <= 3.5
    plan = plan_remediation(f, min_healthy="60%")  # 4 healthy < 4.2
    assert plan["remediate"] == [] and "min_healthy" in plan["refused"][0]["reason"]


def test_one_control_plane_at_a_time():
    nodes, vms = cluster(dead=["cp-01", "cp-02"])
    plan = plan_remediation(facts(nodes, vms))
    assert names(plan["remediate"]) == ["cp-01"]
    assert "one at a time" in plan["refused"][0]["reason"]
    # A control plane already carrying the out-of-service taint counts as being remediated.
    nodes, vms = cluster(dead=["cp-01", "cp-02"])
    nodes[0]["spec"]["taints"] = [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]
    plan = plan_remediation(facts(nodes, vms), only=["cp-02"])
    assert plan["remediate"] == [] and "cp-01" in plan["refused"][0]["reason"]


def test_fencing_a_running_control_plane_that_would_break_quorum_is_refused():
    nodes, vms = cluster(dead=["cp-01"], partitioned=["cp-02"])
    plan = plan_remediation(facts(nodes, vms), allow_running=True, only=["cp-02"])
    # cp-01 is off: etcd has cp-02 and cp-03 up (2 of 3, quorum 2); fencing cp-02 leaves 1.
    assert plan["remediate"] == []
    assert plan["refused"] == [{"node": "cp-02", "reason": "fencing it would leave 1 of 3 etcd members up, below quorum (2)"}]
    nodes, vms = cluster(partitioned=["cp-02"])
    vms["cp-03"]["status"] = "unknown"
    nodes[2]["status"]["conditions"][0]["status"] = "Unknown"
    nodes[2]["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-25T20:59:00Z"
    plan = plan_remediation(facts(nodes, vms), allow_running=True, only=["cp-02"])
    assert plan["remediate"] == [] and "below quorum (2)" in plan["refused"][0]["reason"]
    # A powered-off control plane does not count against quorum: fencing it changes nothing.
    nodes, vms = cluster(dead=["cp-03"])
    assert names(plan_remediation(facts(nodes, vms))["remediate"]) == ["cp-03"]


def test_lease_held_by_another_actor():
    nodes, vms = cluster(dead=["worker-new-04"])
    f = facts(nodes, vms, claims={"worker-new-04": "awx-job-17"})
    plan = plan_remediation(f, actor="awx-job-18")
    assert plan["remediate"] == [] and "awx-job-17" in plan["refused"][0]["reason"]
    assert names(plan_remediation(f, actor="awx-job-17")["remediate"]) == ["worker-new-04"]


def test_bad_input_is_rejected_before_anything():
    nodes, vms = cluster()
    with pytest.raises(PlanError, match="not found"):
        plan_remediation(facts(nodes, vms), only=["nope"])
    with pytest.raises(PlanError):
        parse_threshold("abc", 7, "max_unhealthy")
    with pytest.raises(PlanError):
        parse_threshold("150%", 7, "min_healthy")
    with pytest.raises(PlanError):
        plan_remediation(facts(nodes, vms), unhealthy_seconds=-1)
    assert parse_threshold("2", 7, "x") == 2 and parse_threshold(None, 7, "x") is None


def test_in_remediation_lists_tainted_nodes_for_a_restore():
    nodes, vms = cluster(dead=["worker-new-03"])
    nodes[5]["spec"]["taints"] = [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]
    nodes[6]["spec"]["taints"] = [{"key": "remediation.tazlab.io/fencing", "value": "true", "effect": "NoSchedule"}]
    plan = plan_remediation(facts(nodes, vms))
    assert names(plan["in_remediation"]) == ["worker-new-03", "worker-new-04"]
    assert plan["in_remediation"][0]["system_uuid"] == "WORKER-NEW-03"
