"""Longhorn (longhorn-manager + its CSI plugin) as far as node failures and attachments go.

Objects in ``longhorn-system`` (longhorn.io/v1beta2), named as Longhorn names them:

* ``volumes.longhorn.io/<pv name>``: ``spec.numberOfReplicas``, ``spec.nodeID``; ``status.state``
  (creating, detached, attaching, attached, detaching), ``status.currentNodeID`` (set only once fully
  attached), ``status.robustness`` (healthy, degraded, faulted, unknown — unknown while detached or
  while the engine's node is down), ``status.kubernetesStatus``;
* ``volumeattachments.longhorn.io/<volume>``: ``spec.attachmentTickets`` (a ``csi-attacher`` ticket per
  Kubernetes VolumeAttachment, id = its name) and ``status.attachmentTicketStatuses``;
* ``engines.longhorn.io/<volume>-e-0`` and ``replicas.longhorn.io/<volume>-r-<8 hex>``;
* ``nodes.longhorn.io/<node>`` with conditions Ready (False, reason ``KubernetesNodeNotReady`` when
  the Kubernetes node is not Ready, ``ManagerPodDown`` when longhorn-manager is not running there)
  and Schedulable;
* ``settings.longhorn.io``: ``node-down-pod-deletion-policy`` (default ``do-nothing``),
  ``replica-replenishment-wait-interval`` (600 s).

Behaviour (longhorn-manager ``controller/volume_controller.go``, ``volume_attachment_controller.go``,
``kubernetes_pod_controller.go``, ``node_controller.go``):

* ControllerPublishVolume adds the csi-attacher ticket and returns once the volume is attached to
  that node; an RWO volume attached to another node stays there while that node's ticket exists.
* ControllerUnpublishVolume removes the ticket and returns once the volume is no longer attached to
  that node. A detach from a node that is down completes without that node (the engine is marked
  stopped); the replicas on the down node become failed (``spec.failedAt``) and the volume comes back
  ``degraded`` on its next node.
* Replicas on a node that goes down fail; a failed replica is rebuilt on another schedulable node
  after ``replica-replenishment-wait-interval`` (then ``rebuild_seconds``), or reused when its node
  returns.
* ``node-down-pod-deletion-policy`` other than do-nothing: a pod with a deletionTimestamp on a down
  node, owned by a matching workload and using a Longhorn volume, gets its VolumeAttachments deleted
  and is then force-deleted (grace 0).
"""

from __future__ import annotations

import logging
from typing import Any

from .informer import WorkQueue
from .util import LONGHORN_DRIVER, LONGHORN_NS, controller_ref, iso, node_ready, pod_pvc_names, pod_terminating, va_name

log = logging.getLogger(__name__)

LHV = "volumes.longhorn.io"
LHVA = "volumeattachments.longhorn.io"
LHE = "engines.longhorn.io"
LHR = "replicas.longhorn.io"
LHN = "nodes.longhorn.io"
LHS = "settings.longhorn.io"
API = "longhorn.io/v1beta2"

DEFAULT_SETTINGS = {
    "node-down-pod-deletion-policy": "do-nothing",
    "replica-replenishment-wait-interval": "600",
    "replica-soft-anti-affinity": "false",
    "default-replica-count": "3",
}


class Longhorn:
    attach_seconds = 3.0
    detach_seconds = 2.0
    rebuild_seconds = 60.0

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any, namegen: Any):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.namegen = namegen
        self.attacher = None  # ExternalAttacher, to kick when an attach/detach completes
        self.running_users = None  # pv -> machines running containers that use it (Kubelets.running_users)
        self.world = None
        self.q = WorkQueue(clock, self.sync_volume, "longhorn-volume")
        self.node_q = WorkQueue(clock, self.sync_node, "longhorn-node")
        self.pod_q = WorkQueue(clock, self.sync_pod, "longhorn-pod")
        self.ws_q = WorkQueue(clock, self._sync_workloads_status, "longhorn-kubernetes-status")
        self._ops: dict[str, Any] = {}  # volume -> pending attach/detach timer
        self._rebuild: dict[str, Any] = {}  # replica name -> timer
        informer.on("nodes", lambda et, o: self.node_q.add(o["metadata"]["name"]))
        informer.on("pods", self._on_pod)
        informer.on(LHN, self._on_lh_node)
        informer.on(LHVA, lambda et, o: self.q.add(o["metadata"]["name"]))
        self._node_ready: dict[str, bool] = {}
        self._reps_by_vol: dict[str, set[str]] = {}
        self._rep_count: dict[str, int] = {}
        self._rep_idx: dict[str, tuple[str, str]] = {}
        for r in informer.items(LHR):
            self._on_replica("ADDED", r)
        informer.on(LHR, self._on_replica)

    def _on_replica(self, etype: str, r: dict) -> None:
        name = r["metadata"]["name"]
        old = self._rep_idx.pop(name, None)
        if old:
            self._reps_by_vol.get(old[0], set()).discard(name)
            self._rep_count[old[1]] = self._rep_count.get(old[1], 1) - 1
        if etype == "DELETED":
            return
        vol, node = r["spec"].get("volumeName", ""), r["spec"].get("nodeID", "")
        self._reps_by_vol.setdefault(vol, set()).add(name)
        self._rep_count[node] = self._rep_count.get(node, 0) + 1
        self._rep_idx[name] = (vol, node)

    # -- setup -------------------------------------------------------------------------------
    def install(self, nodes: list[str]) -> None:
        """Create Longhorn's settings and its node objects (what longhorn-manager does at start)."""
        for name, value in DEFAULT_SETTINGS.items():
            if self.inf.get(LHS, LONGHORN_NS, name) is None:
                self.store.create(LHS, {"apiVersion": API, "kind": "Setting",
                                        "metadata": {"name": name, "namespace": LONGHORN_NS}, "value": value})
        for n in nodes:
            if self.inf.get(LHN, LONGHORN_NS, n) is None:
                self.store.create(LHN, {
                    "apiVersion": API, "kind": "Node", "metadata": {"name": n, "namespace": LONGHORN_NS},
                    "spec": {"name": n, "allowScheduling": True, "evictionRequested": False, "tags": [],
                             "disks": {"default-disk-1": {"path": "/var/lib/longhorn/", "allowScheduling": True,
                                                          "storageReserved": 0, "tags": []}}},
                    "status": {"conditions": [], "region": "", "zone": ""},
                })

    def start(self) -> None:
        for n in self.inf.items(LHN):
            self.node_q.add(n["metadata"]["name"])
        for v in self.inf.items(LHV):
            self.q.add(v["metadata"]["name"])

    def stop(self) -> None:
        for q in (self.q, self.node_q, self.pod_q, self.ws_q):
            q.stop()
        for t in list(self._ops.values()) + list(self._rebuild.values()):
            t.cancel()

    def setting(self, name: str) -> str:
        s = self.inf.get(LHS, LONGHORN_NS, name)
        return (s or {}).get("value", DEFAULT_SETTINGS.get(name, ""))

    # -- provisioning (CSI CreateVolume) -----------------------------------------------------
    def provision(self, name: str, pvc: dict, sc: dict) -> None:
        params = sc.get("parameters") or {}
        n = int(params.get("numberOfReplicas", self.setting("default-replica-count") or 3))
        size = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage", "1Gi")
        self.store.create(LHV, {
            "apiVersion": API, "kind": "Volume", "metadata": {"name": name, "namespace": LONGHORN_NS,
                                                                 "labels": {"longhornvolume": name}},
            "spec": {"numberOfReplicas": n, "size": str(_bytes(size)), "frontend": "blockdev", "nodeID": "",
                     "accessMode": "rwx" if "ReadWriteMany" in (pvc["spec"].get("accessModes") or []) else "rwo",
                     "dataLocality": params.get("dataLocality", "disabled"), "staleReplicaTimeout": 30},
            "status": {"state": "detached", "robustness": "unknown", "currentNodeID": "", "frontendDisabled": False,
                       "kubernetesStatus": {"pvName": name, "pvStatus": "Bound", "namespace": pvc["metadata"]["namespace"],
                                            "pvcName": pvc["metadata"]["name"], "workloadsStatus": None}},
        })
        self.store.create(LHVA, {"apiVersion": API, "kind": "VolumeAttachment",
                                 "metadata": {"name": name, "namespace": LONGHORN_NS, "labels": {"longhornvolume": name}},
                                 "spec": {"volume": name, "attachmentTickets": {}},
                                 "status": {"attachmentTicketStatuses": {}}})
        self.store.create(LHE, {"apiVersion": API, "kind": "Engine",
                                "metadata": {"name": f"{name}-e-0", "namespace": LONGHORN_NS,
                                             "labels": {"longhornvolume": name}},
                                "spec": {"volumeName": name, "nodeID": "", "active": True},
                                "status": {"currentState": "stopped", "replicaModeMap": {}}})
        self._schedule_new_volume_replicas(name, n)

    def _schedule_new_volume_replicas(self, name: str, n: int) -> None:
        """A volume that never held data gets its replicas as soon as nodes can take them."""
        used = {r["spec"]["nodeID"] for r in self._replicas(name)}
        for _ in range(n - len(used)):
            node = self._pick_node(used)
            if node is None:
                break
            used.add(node)
            self._create_replica(name, node)

    def _create_replica(self, volume: str, node: str, rebuilding: bool = False) -> str:
        rname = f"{volume}-r-{self.namegen.hex(8)}"
        self.store.create(LHR, {"apiVersion": API, "kind": "Replica",
                                "metadata": {"name": rname, "namespace": LONGHORN_NS,
                                             "labels": {"longhornvolume": volume, "longhornnode": node}},
                                "spec": {"volumeName": volume, "nodeID": node, "failedAt": "", "healthyAt": "" if rebuilding else iso(self.clock.now()),
                                         "active": True, "diskID": "default-disk-1"},
                                "status": {"currentState": "stopped"}})
        return rname

    def _pick_node(self, exclude: set[str]) -> str | None:
        counts = self._rep_count
        best = None
        for (_, name), n in self.inf.cache[LHN].items():
            if name in exclude or not n["spec"].get("allowScheduling", True) or not self._ready(name):
                continue
            score = (counts.get(name, 0), name)
            if best is None or score < best:
                best = score
        return best[1] if best else None

    # -- nodes -------------------------------------------------------------------------------
    def _ready(self, name: str) -> bool:
        v = self._node_ready.get(name)
        if v is not None:
            return v
        return self._compute_ready(name)

    def _compute_ready(self, name: str) -> bool:
        n = self.inf.get(LHN, LONGHORN_NS, name)
        if n is None:
            return False
        for c in (n.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return c.get("status") == "True"
        return node_ready(self.inf.get("nodes", None, name))

    def _manager_running(self, name: str) -> bool | None:
        """None when no longhorn-manager DaemonSet exists (a minimal scenario): not checked."""
        if self.inf.get("daemonsets.apps", LONGHORN_NS, "longhorn-manager") is None:
            return None
        for p in self.inf.pods_on(name):
            if p["metadata"].get("namespace") == LONGHORN_NS and (p["metadata"].get("labels") or {}).get("app") == "longhorn-manager":
                st = p.get("status") or {}
                if st.get("phase") == "Running" and not pod_terminating(p) and any(
                        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
                    return True
        return False

    def sync_node(self, name: str) -> None:
        lhn = self.inf.get(LHN, LONGHORN_NS, name)
        if lhn is None:
            return
        node = self.inf.get("nodes", None, name)
        now = iso(self.clock.now())
        if node is None:
            ready, reason, msg = "False", "KubernetesNodeGone", f"Kubernetes node {name} has been removed"
        elif not node_ready(node):
            ready, reason, msg = "False", "KubernetesNodeNotReady", f"Kubernetes node {name} not ready"
        elif self._manager_running(name) is False:
            ready, reason, msg = "False", "ManagerPodDown", f"Node {name} is down: the manager pod is not running"
        else:
            ready, reason, msg = "True", "", ""
        conds = {c["type"]: c for c in (lhn.get("status") or {}).get("conditions") or []}
        cur = conds.get("Ready")
        if cur and cur.get("status") == ready and cur.get("reason") == reason:
            return
        l = self.store.get(LHN, LONGHORN_NS, name)
        conds = {c["type"]: c for c in (l.get("status") or {}).get("conditions") or []}
        conds["Ready"] = {"type": "Ready", "status": ready, "reason": reason, "message": msg,
                          "lastProbeTime": "", "lastTransitionTime": now}
        sched = "True" if ready == "True" and l["spec"].get("allowScheduling", True) else "False"
        conds["Schedulable"] = {"type": "Schedulable", "status": sched, "reason": "" if sched == "True" else "KubernetesNodeCordoned" if False else reason,
                                "message": "", "lastProbeTime": "", "lastTransitionTime": now}
        l.setdefault("status", {})["conditions"] = [conds[k] for k in sorted(conds)]
        self.store.update(LHN, l)

    def _on_lh_node(self, etype: str, lhn: dict) -> None:
        name = lhn["metadata"]["name"]
        ready = self._compute_ready(name) if etype != "DELETED" else False
        if self._node_ready.get(name) == ready:
            return
        self._node_ready[name] = ready
        # every volume with an engine or replica there re-evaluates; pods there for the policy
        for r in self.inf.items(LHR):
            if r["spec"].get("nodeID") == name:
                self.q.add(r["spec"]["volumeName"])
        for e in self.inf.items(LHE):
            if e["spec"].get("nodeID") == name:
                self.q.add(e["spec"]["volumeName"])
        for v in self.inf.items(LHV):
            if (v.get("status") or {}).get("state") in ("detached",):
                self.q.add(v["metadata"]["name"])
        if not ready:
            for p in self.inf.pods_on(name):
                if pod_terminating(p):
                    self.pod_q.add((p["metadata"]["namespace"], p["metadata"]["name"]))
        else:
            for p in self.inf.pods_on(name):
                if p["metadata"].get("namespace") == LONGHORN_NS:
                    pass

    # -- the volume controller ----------------------------------------------------------------
    def _replicas(self, volume: str) -> list[dict]:
        c = self.inf.cache[LHR]
        return [c[(LONGHORN_NS, n)] for n in sorted(self._reps_by_vol.get(volume, ())) if (LONGHORN_NS, n) in c]

    def sync_volume(self, name: str) -> None:
        vol = self.inf.get(LHV, LONGHORN_NS, name)
        lhva = self.inf.get(LHVA, LONGHORN_NS, name)
        if vol is None or lhva is None:
            return
        st = vol.get("status") or {}
        state = st.get("state", "detached")
        current = st.get("currentNodeID") or ""
        engine_node = (self.inf.get(LHE, LONGHORN_NS, f"{name}-e-0") or {}).get("spec", {}).get("nodeID", "")
        tickets = (lhva.get("spec") or {}).get("attachmentTickets") or {}
        wanted_nodes = [t["nodeID"] for _, t in sorted(tickets.items())]
        reps = self._replicas(name)
        want_n = int(vol["spec"].get("numberOfReplicas", 3))
        if len(reps) < want_n and not any(r["spec"].get("failedAt") for r in reps) and state in ("detached", "creating"):
            self._schedule_new_volume_replicas(name, want_n)
        self._fail_replicas_on_down_nodes(name, vol)
        if name in self._ops:
            return  # an attach or detach is in flight
        if state == "attached":
            if current in wanted_nodes:
                self._update_robustness(name)
                self._ticket_status(name)
                return
            # no ticket for the node it is attached to any more: detach (also from a dead node)
            self._set_volume(name, state="detaching", currentNodeID=current)
            self._ops[name] = self.clock.call_later(self.detach_seconds, self._detached, name, current,
                                                    name="longhorn-detach")
            return
        if state in ("detached", "creating"):
            if not wanted_nodes:
                self._ticket_status(name)
                return
            target = wanted_nodes[0]
            if not self._ready(target):
                self._ticket_status(name)
                return
            healthy = [r for r in self._replicas(name) if not r["spec"].get("failedAt") and self._ready(r["spec"]["nodeID"])]
            if not healthy:
                # all replicas failed: the volume is faulted and cannot attach
                self._set_volume(name, robustness="faulted")
                self._ticket_status(name)
                return
            self._set_volume(name, state="attaching", currentNodeID="", nodeID=target)
            self._ops[name] = self.clock.call_later(self.attach_seconds, self._attached, name, target,
                                                    name="longhorn-attach")
            return

    def _attached(self, name: str, node: str) -> None:
        self._ops.pop(name, None)
        lhva = self.inf.get(LHVA, LONGHORN_NS, name) or {}
        tickets = (lhva.get("spec") or {}).get("attachmentTickets") or {}
        if not any(t["nodeID"] == node for t in tickets.values()) or not self._ready(node):
            self._set_volume(name, state="detached", currentNodeID="", nodeID="", robustness="unknown")
            self.q.add(name)
            return
        e = self.store.get(LHE, LONGHORN_NS, f"{name}-e-0")
        e["spec"]["nodeID"] = node
        reps = self._replicas(name)
        e.setdefault("status", {})["currentState"] = "running"
        e["status"]["replicaModeMap"] = {r["metadata"]["name"]: ("RW" if not r["spec"].get("failedAt") else "ERR")
                                         for r in reps if not r["spec"].get("failedAt")}
        e["status"]["ownerID"] = node
        self.store.update(LHE, e)
        for r in reps:
            if not r["spec"].get("failedAt"):
                self._replica_state(r["metadata"]["name"], "running")
        self._set_volume(name, state="attached", currentNodeID=node, nodeID=node)
        if self.running_users is not None and self.world is not None:
            others = sorted(self.running_users(name) - {node})
            if others:
                # the old writer still runs (a partitioned node, not fenced): two writers, diverging data
                log.warning("split brain: volume %s attached to %s while containers on %s still use it",
                            name, node, others)
                self.world.record("split-brain", volume=name, attachedTo=node, stillWriting=others)
        self._update_robustness(name)
        self._ticket_status(name)
        self._kick(name)

    def _detached(self, name: str, node: str) -> None:
        self._ops.pop(name, None)
        e = self.store.get(LHE, LONGHORN_NS, f"{name}-e-0")
        e["spec"]["nodeID"] = ""
        e.setdefault("status", {})["currentState"] = "stopped"
        e["status"]["replicaModeMap"] = {}
        self.store.update(LHE, e)
        for r in self._replicas(name):
            if not r["spec"].get("failedAt"):
                self._replica_state(r["metadata"]["name"], "stopped")
        self._set_volume(name, state="detached", currentNodeID="", nodeID="", robustness="unknown")
        self._ticket_status(name)
        self._kick(name)
        self.q.add(name)

    def _kick(self, name: str) -> None:
        if self.attacher is None:
            return
        lhva = self.inf.get(LHVA, LONGHORN_NS, name) or {}
        for tid in ((lhva.get("spec") or {}).get("attachmentTickets") or {}):
            self.attacher.kick(tid)
        for va in self.inf.vas_of(name):
            self.attacher.kick(va["metadata"]["name"])

    def _fail_replicas_on_down_nodes(self, name: str, vol: dict) -> None:
        now = self.clock.now()
        st = vol.get("status") or {}
        for r in self._replicas(name):
            node = r["spec"]["nodeID"]
            ready = self._ready(node)
            if not ready and not r["spec"].get("failedAt"):
                rr = self.store.get(LHR, LONGHORN_NS, r["metadata"]["name"])
                rr["spec"]["failedAt"] = iso(now)
                rr["spec"]["lastFailedAt"] = iso(now)
                rr.setdefault("status", {})["currentState"] = "unknown" if st.get("state") == "attached" else "stopped"
                self.store.update(LHR, rr)
                wait = float(self.setting("replica-replenishment-wait-interval") or 600)
                self.q.add_after(name, wait + 0.5)
            elif ready and r["spec"].get("failedAt") and st.get("state") == "attached" \
                    and r["metadata"]["name"] not in self._rebuild:
                # the node is back: reuse the failed replica by rebuilding it
                self._start_rebuild(name, r["metadata"]["name"])
        if st.get("state") == "attached":
            e = self.inf.get(LHE, LONGHORN_NS, f"{name}-e-0")
            enode = ((e or {}).get("spec") or {}).get("nodeID")
            if e is not None and enode and not self._ready(enode) and e["status"].get("currentState") != "unknown":
                # the instance manager of the engine's node cannot be reached
                ee = self.store.get(LHE, LONGHORN_NS, f"{name}-e-0")
                ee["status"]["currentState"] = "unknown"
                self.store.update(LHE, ee)
                self.rec.event(vol, "Warning", "Unknown", f"volume {name} robustness is unknown", "longhorn-volume-controller")
            elif e is not None and enode and self._ready(enode) and e["status"].get("currentState") == "unknown":
                ee = self.store.get(LHE, LONGHORN_NS, f"{name}-e-0")
                ee["status"]["currentState"] = "running"
                self.store.update(LHE, ee)
            self._update_robustness(name)
            self._replenish(name, vol)

    def _replenish(self, name: str, vol: dict) -> None:
        reps = self._replicas(name)
        active = [r for r in reps if not r["spec"].get("failedAt")]
        want = int(vol["spec"].get("numberOfReplicas", 3))
        if len(active) >= want:
            return
        wait = float(self.setting("replica-replenishment-wait-interval") or 600)
        now = self.clock.now()
        from .util import parse_ts
        failed_times = [parse_ts(r["spec"].get("failedAt")) or now for r in reps if r["spec"].get("failedAt")]
        if failed_times and now < min(failed_times) + wait:
            return
        used = {r["spec"]["nodeID"] for r in active}
        if self.setting("replica-soft-anti-affinity") != "true":
            used |= {r["spec"]["nodeID"] for r in reps}
        node = self._pick_node(used)
        if node is None:
            return
        rname = self._create_replica(name, node, rebuilding=True)
        self._start_rebuild(name, rname)

    def _start_rebuild(self, volume: str, rname: str) -> None:
        self._replica_state(rname, "running", rebuilding=True)

        def done() -> None:
            self._rebuild.pop(rname, None)
            r = self.inf.get(LHR, LONGHORN_NS, rname)
            v = self.inf.get(LHV, LONGHORN_NS, volume)
            if r is None or v is None or (v.get("status") or {}).get("state") != "attached" or not self._ready(r["spec"]["nodeID"]):
                return
            rr = self.store.get(LHR, LONGHORN_NS, rname)
            rr["spec"]["failedAt"] = ""
            rr["spec"]["healthyAt"] = iso(self.clock.now())
            rr["status"]["currentState"] = "running"
            self.store.update(LHR, rr)
            # a replica beyond numberOfReplicas that is still failed is cleaned up
            reps = self._replicas(volume)
            active = [x for x in reps if not x["spec"].get("failedAt")]
            if len(active) >= int(v["spec"].get("numberOfReplicas", 3)):
                for x in reps:
                    if x["spec"].get("failedAt") and not self._ready(x["spec"]["nodeID"]) is False:
                        pass
            e = self.store.get(LHE, LONGHORN_NS, f"{volume}-e-0")
            e["status"].setdefault("replicaModeMap", {})[rname] = "RW"
            self.store.update(LHE, e)
            self._update_robustness(volume)

        self._rebuild[rname] = self.clock.call_later(self.rebuild_seconds, done, name="longhorn-rebuild")

    def _replica_state(self, rname: str, state: str, rebuilding: bool = False) -> None:
        r = self.store.get(LHR, LONGHORN_NS, rname)
        r.setdefault("status", {})["currentState"] = state
        if rebuilding:
            r["spec"]["rebuildRetryCount"] = r["spec"].get("rebuildRetryCount", 0)
        self.store.update(LHR, r)

    def _update_robustness(self, name: str) -> None:
        vol = self.inf.get(LHV, LONGHORN_NS, name)
        if vol is None:
            return
        st = vol.get("status") or {}
        if st.get("state") != "attached":
            rob = "unknown"
        elif not self._ready(st.get("currentNodeID") or ""):
            rob = "unknown"  # the engine's node is down: its state cannot be known
        else:
            healthy = [r for r in self._replicas(name) if not r["spec"].get("failedAt") and self._ready(r["spec"]["nodeID"])
                       and r["metadata"]["name"] not in self._rebuild]
            want = int(vol["spec"].get("numberOfReplicas", 3))
            rob = "healthy" if len(healthy) >= want else "degraded" if healthy else "faulted"
        if st.get("robustness") != rob:
            self._set_volume(name, robustness=rob)

    def _set_volume(self, name: str, **status: Any) -> None:
        v = self.store.get(LHV, LONGHORN_NS, name)
        st = v.setdefault("status", {})
        spec_node = status.pop("nodeID", None)
        if spec_node is not None:
            v["spec"]["nodeID"] = spec_node
        st.update(status)
        self.store.update(LHV, v)

    def _ticket_status(self, name: str) -> None:
        lhva = self.inf.get(LHVA, LONGHORN_NS, name)
        vol = self.inf.get(LHV, LONGHORN_NS, name)
        if lhva is None or vol is None:
            return
        st = vol.get("status") or {}
        out = {}
        for tid, t in ((lhva.get("spec") or {}).get("attachmentTickets") or {}).items():
            sat = st.get("state") == "attached" and st.get("currentNodeID") == t["nodeID"]
            cond = {"type": "Satisfied", "status": "True" if sat else "False", "reason": "",
                    "message": "" if sat else (f"the volume is currently attached to different node {st.get('currentNodeID')} "
                                               if st.get("currentNodeID") else ""),
                    "lastProbeTime": "", "lastTransitionTime": iso(self.clock.now())}
            prev = ((lhva.get("status") or {}).get("attachmentTicketStatuses") or {}).get(tid)
            if prev and prev.get("satisfied") == sat:
                out[tid] = prev
            else:
                out[tid] = {"id": tid, "satisfied": sat, "conditions": [cond], "generation": t.get("generation", 0)}
        if ((lhva.get("status") or {}).get("attachmentTicketStatuses") or {}) == out:
            return
        l = self.store.get(LHVA, LONGHORN_NS, name)
        l.setdefault("status", {})["attachmentTicketStatuses"] = out
        self.store.update(LHVA, l)

    # -- CSI ControllerPublish/Unpublish ------------------------------------------------------
    def publish(self, volume: str, node: str, ticket_id: str) -> bool | str | None:
        vol = self.inf.get(LHV, LONGHORN_NS, volume)
        lhva = self.inf.get(LHVA, LONGHORN_NS, volume)
        if vol is None or lhva is None:
            return f"rpc error: code = NotFound desc = volume {volume} not found"
        tickets = (lhva.get("spec") or {}).get("attachmentTickets") or {}
        if ticket_id not in tickets:
            l = self.store.get(LHVA, LONGHORN_NS, volume)
            l["spec"].setdefault("attachmentTickets", {})[ticket_id] = {
                "id": ticket_id, "type": "csi-attacher", "nodeID": node,
                "parameters": {"disableFrontend": "false", "lastAttachedBy": ""}, "generation": 0}
            self.store.update(LHVA, l)
            self.q.add(volume)
        st = vol.get("status") or {}
        if st.get("state") == "attached" and st.get("currentNodeID") == node:
            return True
        if st.get("state") == "attached" and st.get("currentNodeID") and st.get("currentNodeID") != node \
                and vol["spec"].get("accessMode", "rwo") == "rwo":
            return (f"rpc error: code = FailedPrecondition desc = volume {volume} is attached to another node "
                    f"{st['currentNodeID']}: the volume is currently attached to different node {st['currentNodeID']}")
        return None  # in progress

    def unpublish(self, volume: str, node: str, ticket_id: str) -> bool | str | None:
        lhva = self.inf.get(LHVA, LONGHORN_NS, volume)
        vol = self.inf.get(LHV, LONGHORN_NS, volume)
        if lhva is None or vol is None:
            return True
        if ticket_id in ((lhva.get("spec") or {}).get("attachmentTickets") or {}):
            l = self.store.get(LHVA, LONGHORN_NS, volume)
            l["spec"]["attachmentTickets"].pop(ticket_id, None)
            l.setdefault("status", {}).setdefault("attachmentTicketStatuses", {}).pop(ticket_id, None)
            self.store.update(LHVA, l)
            self.q.add(volume)
        st = vol.get("status") or {}
        if st.get("currentNodeID") == node or (st.get("state") in ("attaching", "detaching") and vol["spec"].get("nodeID") == node):
            return None  # the detach is in progress; we kick the attacher when it is done
        return True

    # -- kubernetesStatus (kubernetes_pv_controller) -------------------------------------------
    def _sync_workloads_status(self, key: tuple) -> None:
        pvc = self.inf.get("persistentvolumeclaims", *key)
        name = ((pvc or {}).get("spec") or {}).get("volumeName")
        vol = self.inf.get(LHV, LONGHORN_NS, name) if name else None
        if vol is None:
            return
        ws = []
        last_ref = ""
        for p in sorted(self.inf.pods_using(*key), key=lambda p: p["metadata"]["name"]):
            ref = controller_ref(p) or {}
            ws.append({"podName": p["metadata"]["name"], "podStatus": (p.get("status") or {}).get("phase", "Pending"),
                       "workloadName": ref.get("name", ""), "workloadType": ref.get("kind", "")})
        ks = dict((vol.get("status") or {}).get("kubernetesStatus") or {})
        if not ws and ks.get("workloadsStatus"):
            last_ref = iso(self.clock.now())
        new = dict(ks, workloadsStatus=ws or None)
        if not ws:
            new["lastPodRefAt"] = last_ref or ks.get("lastPodRefAt", "")
        else:
            new["lastPodRefAt"] = ""
        if new == ks:
            return
        self._set_volume(name, kubernetesStatus=new)

    # -- node-down-pod-deletion-policy (kubernetes_pod_controller) ---------------------------
    def _on_pod(self, etype: str, pod: dict) -> None:
        md = pod["metadata"]
        if pod_pvc_names(pod):
            for claim in pod_pvc_names(pod):
                self.ws_q.add((md["namespace"], claim))
        if etype == "DELETED":
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if md.get("namespace") == LONGHORN_NS and (md.get("labels") or {}).get("app") == "longhorn-manager" and node:
            self.node_q.add(node)
        if pod_terminating(pod) and node and not self._node_ready.get(node, True):
            self.pod_q.add((md["namespace"], md["name"]))

    def sync_pod(self, key: tuple) -> None:
        pod = self.inf.get("pods", *key)
        if pod is None or not pod_terminating(pod):
            return
        policy = self.setting("node-down-pod-deletion-policy")
        if policy == "do-nothing":
            return
        node = pod["spec"].get("nodeName")
        lhn = self.inf.get(LHN, LONGHORN_NS, node)
        if lhn is None:
            return
        ready = next((c for c in (lhn.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
        if not ready or ready.get("status") != "False" or ready.get("reason") not in ("KubernetesNodeNotReady", "KubernetesNodeGone"):
            return
        ref = controller_ref(pod)
        kind = (ref or {}).get("kind")
        ok = (kind == "StatefulSet" and policy in ("delete-statefulset-pod", "delete-both-statefulset-and-deployment-pod")) or \
             (kind == "ReplicaSet" and policy in ("delete-deployment-pod", "delete-both-statefulset-and-deployment-pod"))
        if not ok:
            return
        vols = []
        for claim in pod_pvc_names(pod):
            pvc = self.inf.get("persistentvolumeclaims", key[0], claim)
            pv = self.inf.get("persistentvolumes", None, ((pvc or {}).get("spec") or {}).get("volumeName"))
            if pv and ((pv.get("spec") or {}).get("csi") or {}).get("driver") == LONGHORN_DRIVER:
                vols.append(pv["spec"]["csi"]["volumeHandle"])
        if not vols:
            return
        for h in vols:
            try:
                self.store.delete("volumeattachments.storage.k8s.io", None, va_name(h, LONGHORN_DRIVER, node))
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise
        try:
            self.store.delete("pods", key[0], key[1], grace_period_seconds=0)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise


def _bytes(size: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for u, m in sorted(units.items(), key=lambda x: -len(x[0])):
        if size.endswith(u):
            return int(float(size[:-len(u)]) * m)
    return int(size)
