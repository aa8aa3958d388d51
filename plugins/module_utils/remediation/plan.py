# -*- coding: utf-8 -*-
# Copyright (c) 2026, tazlab.resilience contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which nodes to remediate, and which to leave alone: detection and guards as pure functions.

Nothing here talks to an API. ``node_facts`` reads a Node object (as the API returns it) and the
power state of its VM; ``plan_remediation`` applies the guards of the safe order
(recovery-facts: medik8s Node Healthcheck's conditions, minHealthy/maxUnhealthy, one control plane
at a time, etcd quorum, an exclude label, one actor per node) and returns the plan. Modules and
tests call these with plain dicts.
"""

from __future__ import annotations

import re

from ansible_collections.tazlab.resilience.plugins.module_utils import names
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import match_node
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.run import blocking_run

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
OUT_OF_SERVICE_TAINT = names.OUT_OF_SERVICE_TAINT
REMEDIATION_TAINT = names.REMEDIATION_TAINT
#: Exclude labels honoured by default: ours, and medik8s's, which users of NHC already set.
DEFAULT_EXCLUDE_LABELS = names.DEFAULT_EXCLUDE_LABELS

# Why a node is a candidate.
POWERED_OFF = "powered_off"
NOT_READY = "not_ready"
# Why a node is not (yet) acted on.
HEALTHY = "healthy"
PENDING = "unhealthy_below_duration"


class PlanError(ValueError):
    """Bad policy input, reported before anything is read or changed."""


def parse_threshold(value, total, name):
    """An absolute count or a percentage of ``total`` ("40%"), as medik8s writes them."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PlanError("%s must be a number or a percentage, not a boolean" % name)
    if isinstance(value, int):
        if value < 0:
            raise PlanError("%s must not be negative" % name)
        return value
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%", text)
    if match:
        percent = float(match.group(1))
        if percent > 100:
            raise PlanError("%s must be at most 100%%" % name)
        return percent * total / 100.0
    if re.fullmatch(r"\d+", text):
        return int(text)
    raise PlanError("%s must be a count (2) or a percentage (40%%), got %r" % (name, value))


def _condition(node, cond_type):
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond
    return None


def match_vms(nodes, vms):
    """{node name: match} for Node objects and the VM list of proxmox_vm_status (with smbios_uuid).

    Identity is the SMBIOS UUID: each node's VM is the one VM of the whole PVE cluster that carries its
    status.nodeInfo.systemUUID (see proxmox/identity.match_node), never the VM with the same name. A VM
    list without UUIDs (proxmox_vm_status with identities=false) identifies nothing.
    """
    out = {}
    for node in nodes:
        meta = node.get('metadata') or {}
        uuid = ((node.get('status') or {}).get('nodeInfo') or {}).get('systemUUID')
        out[meta.get('name')] = match_node(vms, uuid, meta.get('name'))
    return out


def vm_for_plan(match):
    """The `vm` argument of node_facts for a match: the VM, or a stand-in with unknown power and the reason."""
    if match['identity'] == 'ok':
        return dict(match['vm'], identity='ok', identity_reason=None)
    return {'status': 'unknown', 'identity': match['identity'], 'identity_reason': match['reason'],
            'matches': match['matches'], 'vmid': None, 'node': None, 'name': None}


def node_facts(node, now, vm=None, exclude_labels=DEFAULT_EXCLUDE_LABELS, claims=None, lease=None, claim_runs=None):
    """What the plan needs to know about one node.

    ``node`` is a Node object as a dict; ``now`` the cluster's time (epoch seconds: take it from
    the apiserver's Date header, not the controller's clock); ``vm`` the node's VM as Proxmox shows
    it (``{"status": "running"|"stopped"|"unknown", "vmid", "node", "name"}``) or None when Proxmox
    was not asked (with ``identity``/``identity_reason`` when matched by vm_for_plan); ``claims`` maps
    node names to the holder of their remediation lease (``claim_runs`` to the run recorded on it, see
    run.py); ``lease`` is the node's kubelet Lease
    (kube-node-lease), to tell a silent kubelet from one that still renews.
    """
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = meta.get("labels") or {}
    name = meta.get("name")
    ready = _condition(node, "Ready")
    ready_status = (ready or {}).get("status", "Unknown")
    since = parse_time((ready or {}).get("lastTransitionTime"))
    unhealthy_for = None
    if ready_status != "True":
        unhealthy_for = max(0.0, now - since) if since is not None else None
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    taints = spec.get("taints") or []
    vm_status = None if vm is None else (vm.get("status") or "unknown")
    renew = parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
    kubelet_renews = bool(ready_status != "True" and renew is not None and since is not None and renew > since)
    return {
        "name": name,
        "ready": ready_status,
        "ready_since": (ready or {}).get("lastTransitionTime"),
        "unhealthy_seconds": None if unhealthy_for is None else round(unhealthy_for, 1),
        "control_plane": any(label in labels for label in CONTROL_PLANE_LABELS),
        "system_uuid": (status.get("nodeInfo") or {}).get("systemUUID"),
        "internal_ip": addresses.get("InternalIP"),
        "unschedulable": bool(spec.get("unschedulable")),
        "out_of_service": any(t.get("key") == OUT_OF_SERVICE_TAINT for t in taints),
        "remediation_tainted": any(t.get("key") == REMEDIATION_TAINT for t in taints),
        "excluded_by": next((label for label in exclude_labels if label in labels), None),
        "vm_status": vm_status,
        "vm": vm,
        "vm_identity": None if vm is None else vm.get("identity", "ok"),
        "identity_reason": None if vm is None else vm.get("identity_reason"),
        "lease_renew": ((lease or {}).get("spec") or {}).get("renewTime"),
        "lease_silent_seconds": None if renew is None else round(max(0.0, now - renew), 1),
        "kubelet_renews": kubelet_renews,
        "claimed_by": (claims or {}).get(name),
        "claimed_by_run": (claim_runs or {}).get(name),
    }


ETCD_TALOS = "talos"
ETCD_COUNTED = "counted_vm_power"
ETCD_UNKNOWN = "unknown"
ETCD_NOT_ASKED = "not_asked"
ETCD_SOURCES = {
    ETCD_TALOS: "etcd (asked through Talos)",
    ETCD_COUNTED: "etcd counted by control-plane VM power (Talos not configured, etcd not asked)",
}


def _member_of(cp, members):
    for m in members:
        if m.get("hostname") == cp["name"] or (cp.get("internal_ip") and m.get("host") == cp["internal_ip"]):
            return m
    return None


def etcd_guard_view(control_planes, etcd=None):
    """What the etcd guard counts: members, quorum, the control planes whose etcd member is up, and the source.

    With Talos (``etcd`` has ``members``): the voting members, and as up those healthy or unreachable from
    here (a partitioned member may still serve etcd to its peers) unless their VM is seen stopped.
    Without: every control plane is a member, up when its VM runs (or, without Proxmox facts, when it is
    Ready). ``etcd`` with an ``error``: unknown (no member counted up). ``etcd`` with ``deferred``
    (Talos configured, etcd not asked yet): not asked, no member counted up (no control plane is fenced).
    """
    if etcd and etcd.get("deferred"):
        return {"source": ETCD_NOT_ASKED, "members": None, "up": None, "quorum": None, "up_nodes": []}
    if etcd and etcd.get("error"):
        return {"source": ETCD_UNKNOWN, "error": etcd["error"], "members": None, "up": None, "quorum": None,
                "up_nodes": []}
    if etcd and etcd.get("members") is not None:
        voters = [m for m in etcd["members"] if not m.get("is_learner")]
        quorum = len(voters) // 2 + 1 if voters else 0
        by_cp = dict((cp["name"], _member_of(cp, voters)) for cp in control_planes)
        vm_stopped = set(cp["name"] for cp in control_planes if cp["vm_status"] == "stopped")
        stopped = set(id(m) for name, m in by_cp.items() if m is not None and name in vm_stopped)

        def possibly_up(m):
            # healthy, or unreachable from here (it may still serve etcd to its peers), unless its VM is off
            state = m.get("state") or ("healthy" if m.get("healthy") else "down")
            return id(m) not in stopped and state in ("healthy", "unreachable")
        up = [name for name, m in by_cp.items() if m is not None and possibly_up(m)]
        details = dict((name, "not an etcd member" if m is None else "VM stopped" if id(m) in stopped else
                        (m.get("state") or ("healthy" if m.get("healthy") else "down"))
                        + ("" if not m.get("error") else ": %s" % m["error"]))
                       for name, m in by_cp.items())
        return {"source": ETCD_TALOS, "members": len(voters), "up": len([m for m in voters if possibly_up(m)]),
                "healthy": len([m for m in voters if m.get("healthy")]), "quorum": quorum,
                "control_planes": details, "up_nodes": up}
    members = len(control_planes)
    up = [f["name"] for f in control_planes
          if f["vm_status"] == "running" or (f["vm_status"] in (None, "unknown") and f["ready"] == "True")]
    return {"source": ETCD_COUNTED, "members": members, "up": len(up),
            "quorum": members // 2 + 1 if members else 0, "up_nodes": up}


def plan_remediation(facts, unhealthy_seconds=300, max_unhealthy=None, min_healthy=None,
                     fence_running=True, only=None, actor=None, allow_running=None, proxmox_quorate=None,
                     run=None, take_over_run=None, etcd=None):
    """Decide which nodes to remediate now.

    A node is a candidate when its VM is seen stopped (it is already powered off: no need to wait
    for NotReady), or when it has not been Ready for ``unhealthy_seconds``. Candidates are then
    refused, each with its reason, when:

    * it carries an exclude label;
    * no VM, or more than one VM, carries its SMBIOS UUID (identity is the UUID, never the name);
    * its power state is unknown (a Proxmox host offline: nothing can be confirmed);
    * its VM is running although the node is not Ready (hung or partitioned) and either
      ``fence_running`` is false, or its kubelet still renews its lease (alive and talking to the API
      server). Otherwise such a node IS a candidate: it is fenced (STONITH) through Proxmox, proven off,
      then freed: the out-of-band path works when the node's own network does not;
    * another actor holds its remediation lease, or another run of ``actor`` that may still be going
      (``run``: this run's identity; see run.py);
    * more nodes are unhealthy than ``max_unhealthy``, or fewer are healthy than ``min_healthy``
      (a storm, or the remediator itself cut off: acting would make it worse);
    * it is a control plane and another control plane is already being remediated or planned
      (one at a time), or fencing it would leave etcd without quorum.

    The etcd guard asks etcd when ``etcd`` is given: the answer of talos_etcd ``action=health``
    (``{"members": [{hostname, host, is_learner, healthy}], ...}``; a member is the control plane whose
    name is its hostname or whose InternalIP is its client URL's host), or ``{"error": msg}`` when Talos is
    configured but etcd could not be asked (then no control plane is fenced). Without it the guard falls
    back to counting control planes whose VM runs (``etcd.source`` says which one was used).

    ``etcd={"deferred": True}`` plans before etcd is asked (Talos configured, the question saved for when it
    matters): a control plane that only the etcd guard could still let through is refused ("etcd not asked
    yet") and named in ``etcd_needed_for`` (``etcd_needed`` true): the caller asks etcd and plans again with
    its answer. Workers never depend on etcd, so with ``etcd_needed`` false the plan is the one etcd's answer
    would give, apart from ``etcd`` (``source: not_asked``, ``needed: false``).

    Returns a dict with ``remediate`` (facts of the nodes to act on, in order), ``in_remediation``
    (facts of the nodes that carry the out-of-service or the remediation taint: what a restore brings
    back), ``refused``
    (``{"node", "reason"}``), ``pending``, ``etcd_needed``/``etcd_needed_for``, and the counts the guards used.
    """
    if unhealthy_seconds is None or unhealthy_seconds < 0:
        raise PlanError("unhealthy_seconds must be zero or more")
    if etcd and etcd.get("deferred") and (etcd.get("members") is not None or etcd.get("error")):
        raise PlanError("etcd: deferred means etcd was not asked; it cannot come with members or an error")
    if allow_running is not None:  # the old name of fence_running
        fence_running = bool(allow_running)
    total = len(facts)
    max_unhealthy_n = parse_threshold(max_unhealthy, total, "max_unhealthy")
    min_healthy_n = parse_threshold(min_healthy, total, "min_healthy")
    only = set(only or [])
    unknown = sorted(only - {f["name"] for f in facts})
    if unknown:
        raise PlanError("nodes not found in the cluster: %s" % ", ".join(unknown))

    healthy, candidates, pending, refused = [], [], [], []
    for f in sorted(facts, key=lambda x: x["name"]):
        if f["vm_status"] == "stopped" and f.get("vm_identity") in (None, "ok"):
            candidates.append(dict(f, reason=POWERED_OFF))
        elif f["ready"] == "True":
            healthy.append(f)
        elif f["unhealthy_seconds"] is None or f["unhealthy_seconds"] >= unhealthy_seconds:
            candidates.append(dict(f, reason=NOT_READY))
            if f["vm_status"] == "running":
                candidates[-1]["fence_running"] = True
        else:
            pending.append({"node": f["name"], "reason": PENDING,
                            "unhealthy_seconds": f["unhealthy_seconds"]})

    unhealthy_count = len(candidates) + len(pending)
    storm = None
    if max_unhealthy_n is not None and unhealthy_count > max_unhealthy_n:
        storm = ("%d nodes are unhealthy, more than max_unhealthy (%s): remediating now could make "
                 "things worse (a storm, or this controller cut off from the cluster)"
                 % (unhealthy_count, max_unhealthy))
    elif min_healthy_n is not None and len(healthy) < min_healthy_n:
        storm = ("only %d of %d nodes are healthy, fewer than min_healthy (%s)"
                 % (len(healthy), total, min_healthy))
    # For a worker, min_healthy counts workers: healthy control planes run no workload, so they must not
    # make a worker storm look safe (the etcd guard below protects the control planes).
    workers = [f for f in facts if not f["control_plane"]]
    worker_storm = storm
    if storm is None and workers and min_healthy is not None and min_healthy != "":
        min_workers = parse_threshold(min_healthy, len(workers), "min_healthy")
        healthy_workers = len([f for f in healthy if not f["control_plane"]])
        if healthy_workers < min_workers:
            worker_storm = ("only %d of %d workers are healthy, fewer than min_healthy (%s): remediating a "
                            "worker now could leave the workloads nowhere to go"
                            % (healthy_workers, len(workers), min_healthy))

    control_planes = [f for f in facts if f["control_plane"]]
    etcd_view = etcd_guard_view(control_planes, etcd)
    etcd_members, quorum, etcd_up = etcd_view["members"], etcd_view["quorum"], set(etcd_view["up_nodes"])
    cp_in_remediation = [f["name"] for f in control_planes
                         if f["out_of_service"] or f["remediation_tainted"]]

    remediate, etcd_needed = [], []
    for c in candidates:
        name = c["name"]
        reason = None
        if only and name not in only:
            continue
        vm = c.get("vm") or {}
        if c["excluded_by"]:
            reason = "excluded by the label %s" % c["excluded_by"]
        elif proxmox_quorate is False and c["vm_status"] is not None:
            reason = ("the Proxmox cluster has no quorum: its view of VM %s is not authoritative and its HA "
                      "manager may act on it elsewhere, so power cannot be confirmed; nothing is fenced or freed"
                      % vm.get("vmid"))
        elif c.get("vm_identity") not in (None, "ok"):
            reason = "%s: nothing is fenced or freed" % c["identity_reason"]
        elif c["vm_status"] == "unknown":
            reason = ("the power state of its VM %s on %s is unknown (that Proxmox host is offline or "
                      "unreachable): it cannot be confirmed off, so nothing is fenced or freed"
                      % (vm.get("vmid"), vm.get("node")))
        elif c["reason"] == NOT_READY and c["vm_status"] == "running" and not fence_running:
            reason = ("not Ready but its VM %s is running (hung, or a network partition, where the node can "
                      "still write to its volumes); fencing running nodes is turned off (fence_running=false)"
                      % vm.get("vmid"))
        elif c["reason"] == NOT_READY and c["vm_status"] == "running" and c.get("kubelet_renews"):
            reason = ("not Ready but its kubelet renewed its lease at %s, after the node went NotReady at %s: "
                      "it is alive and talks to the API server; not fenced" % (c["lease_renew"], c["ready_since"]))
        elif actor and blocking_run(c["claimed_by"], c.get("claimed_by_run"), actor, run, take_over_run):
            reason = blocking_run(c["claimed_by"], c.get("claimed_by_run"), actor, run, take_over_run)
        elif storm:
            reason = storm
        elif worker_storm and not c["control_plane"]:
            reason = worker_storm
        elif c["control_plane"]:
            others = [n for n in cp_in_remediation if n != name]
            others += [r["name"] for r in remediate if r["control_plane"]]
            running_now = name in etcd_up
            left_up = (etcd_view["up"] or 0) - (1 if running_now else 0)
            if others:
                reason = ("another control plane is being remediated (%s): one at a time"
                          % ", ".join(sorted(set(others))))
            elif etcd_view["source"] == ETCD_NOT_ASKED:
                # only the etcd guard is left to decide: never fenced on a plan made without etcd's answer
                reason = ("etcd not asked yet (the plan was made with etcd deferred): a control plane is not "
                          "fenced without knowing etcd's quorum; ask etcd and plan again")
                etcd_needed.append(name)
            elif etcd_view["source"] == ETCD_UNKNOWN:
                reason = ("etcd could not be asked through Talos (%s): a control plane is not fenced without "
                          "knowing etcd's quorum" % etcd_view["error"])
            elif running_now and left_up < quorum:
                reason = ("%s: fencing it would leave %d of %d etcd members up, below quorum (%d)"
                          % (ETCD_SOURCES[etcd_view["source"]], left_up, etcd_members, quorum))
        if reason:
            refused.append({"node": name, "reason": reason})
        else:
            remediate.append(c)

    # held_by: why this actor/run must not touch it now (another actor, or another live run of the actor):
    # what a restore checks before its first write.
    in_remediation = [dict(f, reason="in_remediation",
                           held_by=blocking_run(f["claimed_by"], f.get("claimed_by_run"), actor, run, take_over_run)
                           if actor else None)
                      for f in sorted(facts, key=lambda x: x["name"])
                      if f["out_of_service"] or f["remediation_tainted"]]
    return {
        "remediate": remediate,
        "in_remediation": in_remediation,
        "refused": refused,
        "pending": pending,
        "healthy": len(healthy),
        "unhealthy": unhealthy_count,
        "total": total,
        "etcd": _etcd_result(etcd_view, etcd_needed),
        "etcd_needed": bool(etcd_needed),
        "etcd_needed_for": etcd_needed,
    }


def _etcd_result(etcd_view, etcd_needed):
    """The etcd view a plan returns; not asked, it says whether the answer is needed and why."""
    out = dict((k, v) for k, v in etcd_view.items() if k != "up_nodes")
    if etcd_view["source"] == ETCD_NOT_ASKED:
        out["needed"] = bool(etcd_needed)
        out["note"] = ("etcd needed: the etcd guard decides for %s" % ", ".join(etcd_needed) if etcd_needed else
                       "etcd not needed: no control plane is a candidate the etcd guard would decide")
    return out


# Why a node asked for in a restore is not restored (restore_selection's ``restore_skipped``).
NOT_FOUND = "not_found"
NOT_IN_REMEDIATION = "not_in_remediation"


def restore_selection(in_remediation, node_names, restore_nodes=None):
    """Which of the nodes in remediation a restore brings back, and which it must leave alone.

    ``in_remediation`` is plan_remediation's list (each with ``held_by``: why this actor/run must not touch
    it now, or None); ``node_names`` every node name of the cluster; ``restore_nodes`` the names asked for
    (None or empty: every node in remediation). Returns:

    * ``restore`` - the entries of ``in_remediation`` asked for and not held, in the plan's order (by name);
    * ``restore_held`` - {name: holder} for those asked for but held by another actor or another live run;
    * ``restore_skipped`` - ``{"node", "reason"}`` for each name asked for that is not restored for another
      reason: ``not_found`` (no node of that name in the cluster: a typo?) or ``not_in_remediation``
      (it carries neither taint: restored already, or never remediated). Names are reported once, in the
      order given.
    """
    asked = []
    for name in restore_nodes or []:
        if name not in asked:
            asked.append(name)
    wanted = [f for f in in_remediation if not asked or f["name"] in asked]
    tainted = set(f["name"] for f in in_remediation)
    known = set(node_names)
    skipped = [{"node": name, "reason": NOT_FOUND if name not in known else NOT_IN_REMEDIATION}
               for name in asked if name not in tainted]
    return {
        "restore": [f for f in wanted if f.get("held_by") is None],
        "restore_held": dict((f["name"], f["held_by"]) for f in wanted if f.get("held_by") is not None),
        "restore_skipped": skipped,
    }
