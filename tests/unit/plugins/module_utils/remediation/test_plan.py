import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import (
    NOT_READY, POWERED_OFF, PlanError, match_vms, node_facts, parse_threshold, plan_remediation,
    restore_selection, vm_for_plan)

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


def test_partitioned_running_node_is_fenced_unless_turned_off():
    """STONITH: NotReady past the duration, lease silent, VM running: a candidate (fenced, proven off, freed)."""
    nodes, vms = cluster(partitioned=["worker-new-02"])
    plan = plan_remediation(facts(nodes, vms))
    assert names(plan["remediate"]) == ["worker-new-02"] and plan["remediate"][0]["fence_running"] is True
    off = plan_remediation(facts(nodes, vms), fence_running=False)
    assert off["remediate"] == [] and "fence_running=false" in off["refused"][0]["reason"]
    assert plan_remediation(facts(nodes, vms), allow_running=False)["remediate"] == []  # the old name


def test_running_not_ready_node_whose_kubelet_renews_is_refused():
    nodes, vms = cluster(partitioned=["worker-new-02"])
    lease = {"spec": {"renewTime": "2026-01-25T20:59:50Z"}}  # after NotReady at 20:50: alive
    f = [node_facts(n, NOW, vm=vms[n["metadata"]["name"]],
                    lease=lease if n["metadata"]["name"] == "worker-new-02" else None) for n in nodes]
    plan = plan_remediation(f)
    assert plan["remediate"] == [] and "renewed its lease" in plan["refused"][0]["reason"]
    silent = {"spec": {"renewTime": "2026-01-25T20:49:20Z"}}
    f = [node_facts(n, NOW, vm=vms[n["metadata"]["name"]],
                    lease=silent if n["metadata"]["name"] == "worker-new-02" else None) for n in nodes]
    plan = plan_remediation(f)
    assert names(plan["remediate"]) == ["worker-new-02"]
    assert plan["remediate"][0]["lease_silent_seconds"] == pytest.approx(640, abs=1)


def pve(vmid, name, node, status, uuid, readable=True):
    return {"vmid": vmid, "name": name, "node": node, "status": status, "smbios_uuid": uuid if readable else None,
            "identity_readable": readable}


def test_identity_is_the_smbios_uuid_not_the_name():
    """Unsafe case 1: a stopped duplicate with the same name AND uuid on another host must not make the plan
    fence it; a renamed VM is found by its uuid; a same-name VM with another uuid is no match."""
    nodes = cluster(partitioned=["worker-new-03"])[0]
    vms = [pve(100 + i, n["metadata"]["name"], "pve1", "running", n["status"]["nodeInfo"]["systemUUID"])
           for i, n in enumerate(nodes, start=1)]
    dup = pve(100, "worker-new-03", "pve3", "stopped", "worker-new-03".upper())
    matches = match_vms(nodes, vms + [dup])
    f = [node_facts(n, NOW, vm=vm_for_plan(matches[n["metadata"]["name"]])) for n in nodes]
    plan = plan_remediation(f)
    assert plan["remediate"] == []
    reason = plan["refused"][0]["reason"]
    assert "2 VMs carry the SMBIOS UUID" in reason and "100 on pve3" in reason and "106 on pve1" in reason
    # a VM with the node's name but another UUID: no VM carries the node's UUID (not "host offline")
    other = [v for v in vms if v["name"] != "worker-new-03"] + [pve(100, "worker-new-03", "pve3", "stopped", "OTHER")]
    matches = match_vms(nodes, other)
    f = [node_facts(n, NOW, vm=vm_for_plan(matches[n["metadata"]["name"]])) for n in nodes]
    plan = plan_remediation(f)
    assert plan["remediate"] == [] and "no VM carries the SMBIOS UUID" in plan["refused"][0]["reason"]
    assert "offline" not in plan["refused"][0]["reason"]
    # renamed VM: found by its UUID
    renamed = [dict(v, name="renamed-103") if v["name"] == "worker-new-03" else v for v in vms]
    matches = match_vms(nodes, renamed)
    assert matches["worker-new-03"]["vm"]["vmid"] == 106
    f = [node_facts(n, NOW, vm=vm_for_plan(matches[n["metadata"]["name"]])) for n in nodes]
    assert names(plan_remediation(f)["remediate"]) == ["worker-new-03"]


def test_unreadable_vm_with_the_nodes_name_blocks_the_match():
    nodes = cluster(partitioned=["worker-new-03"])[0]
    vms = [pve(100 + i, n["metadata"]["name"], "pve1", "running", n["status"]["nodeInfo"]["systemUUID"])
           for i, n in enumerate(nodes, start=1) if n["metadata"]["name"] != "worker-new-03"]
    vms.append(pve(106, "worker-new-03", "pve2", "unknown", None, readable=False))
    matches = match_vms(nodes, vms)
    assert matches["worker-new-03"]["identity"] == "unreadable"
    assert matches["worker-new-01"]["identity"] == "ok"  # an unreadable VM of another name does not block
    f = [node_facts(n, NOW, vm=vm_for_plan(matches[n["metadata"]["name"]])) for n in nodes]
    plan = plan_remediation(f)
    assert plan["remediate"] == [] and "offline" in plan["refused"][0]["reason"]


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
    assert plan["refused"] == [{"node": "cp-02", "reason": (
        "etcd counted by control-plane VM power (Talos not configured, etcd not asked): fencing it would leave 1 of 3 "
        "etcd members up, below quorum (2)")}]
    assert plan["etcd"]["source"] == "counted_vm_power"
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


def members(**states):
    """talos_etcd action=health members: cp name -> healthy | down | unreachable."""
    return {"members": [{"hostname": n, "host": None, "is_learner": False, "healthy": st == "healthy", "state": st,
                         "error": None if st == "healthy" else st} for n, st in sorted(states.items())]}


def test_etcd_guard_asks_etcd_a_running_control_plane_with_a_dead_member_changes_the_answer():
    """cp-01's VM runs but its etcd member is down; cp-02 is partitioned (VM running, unreachable). Counting VM
    power sees 3 members up and fences cp-02; etcd, asked, has only cp-02 and cp-03: fencing cp-02 breaks quorum."""
    nodes, vms = cluster(partitioned=["cp-02"])
    counted = plan_remediation(facts(nodes, vms), only=["cp-02"])
    assert names(counted["remediate"]) == ["cp-02"] and counted["etcd"]["source"] == "counted_vm_power"
    asked = plan_remediation(facts(nodes, vms), only=["cp-02"],
                             etcd=members(**{"cp-01": "down", "cp-02": "unreachable", "cp-03": "healthy"}))
    assert asked["remediate"] == []
    assert asked["refused"] == [{"node": "cp-02", "reason": (
        "etcd (asked through Talos): fencing it would leave 1 of 3 etcd members up, below quorum (2)")}]
    assert asked["etcd"]["source"] == "talos" and asked["etcd"]["control_planes"]["cp-01"] == "down: down"
    # every member healthy but cp-02's unreachable: fencing it leaves 2 of 3, allowed
    ok = plan_remediation(facts(nodes, vms), only=["cp-02"],
                          etcd=members(**{"cp-01": "healthy", "cp-02": "unreachable", "cp-03": "healthy"}))
    assert names(ok["remediate"]) == ["cp-02"]


def test_etcd_guard_a_control_plane_that_is_no_member_or_stopped_is_not_counted_up():
    """cp-01 hung (VM running, NotReady) and its member absent from etcd: fencing it costs etcd nothing, where
    counting VM power (cp-03 stopped) would refuse it; a member whose VM is seen stopped is down."""
    nodes, vms = cluster(partitioned=["cp-01"], dead=["cp-03"])
    counted = plan_remediation(facts(nodes, vms), only=["cp-01"])
    assert counted["remediate"] == [] and "below quorum" in counted["refused"][0]["reason"]
    etcd = {"members": [{"hostname": "cp-02", "healthy": True, "state": "healthy", "is_learner": False},
                        {"hostname": "cp-03", "healthy": False, "state": "unreachable", "is_learner": False},
                        {"hostname": "cp-04", "healthy": True, "state": "healthy", "is_learner": False}]}
    asked = plan_remediation(facts(nodes, vms), only=["cp-01"], etcd=etcd)
    assert names(asked["remediate"]) == ["cp-01"], asked["refused"]
    assert asked["etcd"]["control_planes"] == {"cp-01": "not an etcd member", "cp-02": "healthy", "cp-03": "VM stopped"}
    assert asked["etcd"]["up"] == 2 and asked["etcd"]["quorum"] == 2


def test_etcd_that_could_not_be_asked_refuses_control_planes_only():
    nodes, vms = cluster(partitioned=["cp-02", "worker-new-03"])
    plan = plan_remediation(facts(nodes, vms), etcd={"error": "no Talos endpoint gave the etcd member list"})
    assert names(plan["remediate"]) == ["worker-new-03"]
    assert plan["refused"] == [{"node": "cp-02", "reason": (
        "etcd could not be asked through Talos (no Talos endpoint gave the etcd member list): a control plane is "
        "not fenced without knowing etcd's quorum")}]


def test_lease_held_by_another_run_of_the_same_actor():
    nodes, vms = cluster(dead=["worker-new-04"])
    nodes[-1]["spec"]["taints"] = [{"key": "remediation.tazlab.io/fencing", "effect": "NoSchedule"}]
    f = facts(nodes, vms, claims={"worker-new-04": "dr"}, claim_runs={"worker-new-04": "awx-job-17"})
    plan = plan_remediation(f, actor="dr", run="awx-job-18")
    assert plan["remediate"] == [] and "held by run awx-job-17 of dr" in plan["refused"][0]["reason"]
    assert "held by run awx-job-17" in plan["in_remediation"][0]["held_by"]
    # the run itself, an operator's explicit take-over, or a lease handed back: not held
    assert names(plan_remediation(f, actor="dr", run="awx-job-17")["remediate"]) == ["worker-new-04"]
    taken = plan_remediation(f, actor="dr", run="awx-job-18", take_over_run="awx-job-17")
    assert names(taken["remediate"]) == ["worker-new-04"] and taken["in_remediation"][0]["held_by"] is None
    handed_back = facts(nodes, vms, claims={"worker-new-04": "dr"})
    assert names(plan_remediation(handed_back, actor="dr", run="awx-job-18")["remediate"]) == ["worker-new-04"]


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


def test_min_healthy_counts_workers_for_a_worker():
    """3 control planes up, 2 of 4 workers down: 5 of 7 nodes healthy passes 51%, but 2 of 4 workers do not."""
    nodes, vms = cluster(dead=["worker-new-01", "worker-new-02"])
    plan = plan_remediation(facts(nodes, vms), min_healthy="51%")
    assert plan["remediate"] == []
    assert all("workers are healthy" in r["reason"] for r in plan["refused"])
    assert names(plan_remediation(facts(nodes, vms), min_healthy="50%")["remediate"]) == [
        "worker-new-01", "worker-new-02"]


def restore_cluster():
    """worker-new-03 and -04 in remediation; -04's lease held by another live run of the actor."""
    nodes, vms = cluster(dead=["worker-new-03", "worker-new-04"])
    for n in nodes[5:]:
        n["spec"]["taints"] = [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown",
                                "effect": "NoExecute"}]
    f = facts(nodes, vms, claims={"worker-new-04": "dr"}, claim_runs={"worker-new-04": "awx-job-17"})
    return plan_remediation(f, actor="dr", run="awx-job-18"), [n["metadata"]["name"] for n in nodes]


def test_restore_without_names_takes_every_node_in_remediation_not_held():
    plan, all_names = restore_cluster()
    for asked in (None, []):
        sel = restore_selection(plan["in_remediation"], all_names, asked)
        assert names(sel["restore"]) == ["worker-new-03"]
        assert list(sel["restore_held"]) == ["worker-new-04"]
        assert "held by run awx-job-17 of dr" in sel["restore_held"]["worker-new-04"]
        assert sel["restore_skipped"] == []
    # the entries are the plan's own facts (what restore_node.yml reads: vm, system_uuid, ...)
    assert sel["restore"][0] is plan["in_remediation"][0]


def test_restore_names_choose_among_the_nodes_in_remediation():
    plan, all_names = restore_cluster()
    sel = restore_selection(plan["in_remediation"], all_names, ["worker-new-03"])
    assert names(sel["restore"]) == ["worker-new-03"] and sel["restore_held"] == {} and sel["restore_skipped"] == []
    sel = restore_selection(plan["in_remediation"], all_names, ["worker-new-04"])
    assert sel["restore"] == [] and list(sel["restore_held"]) == ["worker-new-04"]
    # the plan's order (by name), not the order asked; a name asked twice counts once
    sel = restore_selection(plan["in_remediation"], all_names, ["worker-new-04", "worker-new-03", "worker-new-03"])
    assert names(sel["restore"]) == ["worker-new-03"] and list(sel["restore_held"]) == ["worker-new-04"]


def test_restore_reports_names_it_does_not_restore():
    plan, all_names = restore_cluster()
    sel = restore_selection(plan["in_remediation"], all_names,
                            ["worker-nwe-03", "worker-new-03", "cp-01", "worker-nwe-03"])
    assert names(sel["restore"]) == ["worker-new-03"]
    assert sel["restore_skipped"] == [{"node": "worker-nwe-03", "reason": "not_found"},
                                      {"node": "cp-01", "reason": "not_in_remediation"}]
    # nothing asked is in remediation: nothing restored, nothing held, every name explained
    sel = restore_selection(plan["in_remediation"], all_names, ["cp-01"])
    assert sel == {"restore": [], "restore_held": {},
                   "restore_skipped": [{"node": "cp-01", "reason": "not_in_remediation"}]}


def test_restore_without_an_actor_holds_nothing():
    plan, all_names = restore_cluster()
    f = [dict(x, held_by=None) for x in plan["in_remediation"]]
    sel = restore_selection(f, all_names)
    assert names(sel["restore"]) == ["worker-new-03", "worker-new-04"] and sel["restore_held"] == {}


# -------------------------------------------------------------------------------- etcd deferred (issue #21)

DEFERRED = {"deferred": True}
HEALTHY_ETCD = members(**{"cp-01": "healthy", "cp-02": "healthy", "cp-03": "healthy"})


def without_etcd_view(plan):
    return dict((k, v) for k, v in plan.items() if k != "etcd")


@pytest.mark.parametrize("case", [
    dict(dead=["cp-01"]),                                   # powered off: today remediated with any etcd answer
    dict(partitioned=["cp-02"]),                            # hung/partitioned: fenced when etcd keeps quorum
    dict(dead=["cp-03", "worker-new-02"]),                  # a control plane and a worker
    dict(partitioned=["cp-01", "cp-02"]),                   # two control planes: one at a time
])
def test_deferred_etcd_never_remediates_a_control_plane_and_asks_for_etcd(case):
    nodes, vms = cluster(**case)
    f = facts(nodes, vms)
    plan = plan_remediation(f, etcd=DEFERRED)
    cps = sorted(n for n in case.get("dead", []) + case.get("partitioned", []) if n.startswith("cp"))
    assert not [r for r in plan["remediate"] if r["control_plane"]], plan["remediate"]
    assert plan["etcd_needed"] is True and plan["etcd_needed_for"] == cps
    refused = dict((r["node"], r["reason"]) for r in plan["refused"])
    for cp in cps:
        assert refused[cp].startswith("etcd not asked yet") and "not fenced" in refused[cp], refused
    assert plan["etcd"] == {"source": "not_asked", "members": None, "up": None, "quorum": None, "needed": True,
                            "note": "etcd needed: the etcd guard decides for %s" % ", ".join(cps)}
    # the workers' part of the plan is already final
    asked = plan_remediation(f, etcd=HEALTHY_ETCD)
    assert [r for r in plan["remediate"] if not r["control_plane"]] == \
        [r for r in asked["remediate"] if not r["control_plane"]]


def test_deferred_etcd_the_second_plan_with_the_answer_is_todays_plan():
    """The caller asks etcd when etcd_needed and plans again: exactly the plan made with the answer from the start."""
    for case, answer in [(dict(dead=["cp-01"]), HEALTHY_ETCD),
                         (dict(partitioned=["cp-02"]), HEALTHY_ETCD),
                         (dict(partitioned=["cp-02"]),
                          members(**{"cp-01": "down", "cp-02": "unreachable", "cp-03": "healthy"})),
                         (dict(partitioned=["cp-02", "worker-new-03"]), {"error": "no Talos endpoint answered"}),
                         (dict(partitioned=["cp-01", "cp-02"]), HEALTHY_ETCD)]:
        nodes, vms = cluster(**case)
        f = facts(nodes, vms)
        first = plan_remediation(f, etcd=DEFERRED)
        assert first["etcd_needed"], case
        second = plan_remediation(f, etcd=answer)
        assert second["etcd_needed"] is False and second["etcd_needed_for"] == []
        assert "needed" not in second["etcd"] and second["etcd"]["source"] in ("talos", "unknown")
    # e.g. a powered-off control plane is remediated once etcd has answered
    nodes, vms = cluster(dead=["cp-01"])
    assert names(plan_remediation(facts(nodes, vms), etcd=HEALTHY_ETCD)["remediate"]) == ["cp-01"]


@pytest.mark.parametrize("case, kw", [
    (dict(dead=["worker-new-03"]), {}),
    (dict(dead=["worker-new-03", "worker-new-04"]), {}),
    (dict(partitioned=["worker-new-02"]), {}),
    (dict(partitioned=["worker-new-02"]), dict(fence_running=False)),
    (dict(dead=["worker-new-01", "worker-new-02", "worker-new-03"]), dict(max_unhealthy="2")),
    (dict(dead=["worker-new-03"], unknown=["worker-new-04"]), {}),
    (dict(), {}),
    # a control plane that is no candidate the etcd guard decides: excluded by the storm guard, or not selected
    (dict(dead=["cp-01", "worker-new-02", "worker-new-03"]), dict(max_unhealthy="2")),
    (dict(dead=["cp-01", "worker-new-03"]), dict(only=["worker-new-03"])),
])
def test_deferred_etcd_without_a_control_plane_to_decide_is_the_plan_with_a_healthy_etcd(case, kw):
    nodes, vms = cluster(**case)
    f = facts(nodes, vms)
    deferred = plan_remediation(f, etcd=DEFERRED, **kw)
    asked = plan_remediation(f, etcd=HEALTHY_ETCD, **kw)
    assert deferred["etcd_needed"] is False and deferred["etcd_needed_for"] == []
    assert without_etcd_view(deferred) == without_etcd_view(asked)
    assert deferred["etcd"] == {"source": "not_asked", "members": None, "up": None, "quorum": None, "needed": False,
                                "note": "etcd not needed: no control plane is a candidate the etcd guard would decide"}


def test_without_talos_the_fallback_is_unchanged_and_needs_no_etcd():
    nodes, vms = cluster(dead=["cp-01"], partitioned=["cp-02"])
    plan = plan_remediation(facts(nodes, vms), only=["cp-02"])
    assert plan["etcd"]["source"] == "counted_vm_power" and plan["etcd_needed"] is False
    assert "below quorum (2)" in plan["refused"][0]["reason"]


def test_deferred_etcd_with_an_answer_is_bad_input():
    for etcd in (dict(HEALTHY_ETCD, deferred=True), {"deferred": True, "error": "x"}):
        with pytest.raises(PlanError, match="deferred"):
            plan_remediation([], etcd=etcd)
