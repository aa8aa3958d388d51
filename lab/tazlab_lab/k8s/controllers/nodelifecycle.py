"""Node lifecycle controller and taint-based eviction (kube-controller-manager).

Upstream: ``pkg/controller/nodelifecycle/node_lifecycle_controller.go`` and
``pkg/controller/tainteviction/taint_eviction.go``.

* Every ``node-monitor-period`` (5 s) each node's health is checked: the probe time moves whenever
  the node's Lease is renewed or its Ready heartbeat changes. When no probe arrived for
  ``node-monitor-grace-period`` (50 s by default since 1.32), the node's conditions become
  ``Unknown`` (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status."), its pods are
  marked not Ready, and the taints ``node.kubernetes.io/unreachable`` NoSchedule + NoExecute are put
  on it (``not-ready`` when the kubelet itself reports Ready=False). They go when Ready is True.
* Taint eviction: a pod on a node with NoExecute taints it does not tolerate is deleted at once;
  one that tolerates them for ``tolerationSeconds`` (300 s, injected by DefaultTolerationSeconds) is
  deleted when that time has passed. The deletion is a normal, graceful one (the pod's
  terminationGracePeriodSeconds), after a ``DisruptionTarget`` condition; on a dead node the pod
  then stays Terminating because no kubelet confirms it.
"""

from __future__ import annotations

import logging
from typing import Any

from .informer import WorkQueue
from .util import (TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, iso, node_condition,
                   pod_terminating, toleration_tolerates)

log = logging.getLogger(__name__)


class NodeLifecycleController:
    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any,
                 grace_period: float = 50.0, monitor_period: float = 5.0):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.probe: dict[str, float] = {}
        self._heartbeat_seen: dict[str, str | None] = {}
        self._timer = None
        informer.on("leases.coordination.k8s.io", self._on_lease)
        informer.on("nodes", self._on_node)
        self.taint_q = WorkQueue(clock, self._sync_taints, "node-taints")

    def start(self) -> None:
        now = self.clock.now()
        for node in self.inf.items("nodes"):
            self.probe.setdefault(node["metadata"]["name"], now)
            self.taint_q.add(node["metadata"]["name"])
        self._timer = self.clock.every(self.monitor_period, self.monitor, name="node-lifecycle-monitor")

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.taint_q.stop()

    def _on_lease(self, etype: str, lease: dict) -> None:
        if lease["metadata"].get("namespace") == "kube-node-lease" and etype != "DELETED":
            self.probe[lease["metadata"]["name"]] = self.clock.now()

    def _on_node(self, etype: str, node: dict) -> None:
        name = node["metadata"]["name"]
        if etype == "DELETED":
            self.probe.pop(name, None)
            return
        c = node_condition(node, "Ready")
        hb = c.get("lastHeartbeatTime") if c else None
        if self._heartbeat_seen.get(name) != hb:
            self._heartbeat_seen[name] = hb
            if c and c.get("status") != "Unknown":
                self.probe[name] = self.clock.now()
        if etype == "ADDED":
            self.probe.setdefault(name, self.clock.now())
        self.taint_q.add(name)

    # -- health ------------------------------------------------------------------------------
    def monitor(self) -> None:
        now = self.clock.now()
        for (_, name), node in list(self.inf.cache["nodes"].items()):
            probe = self.probe.setdefault(name, now)
            if now - probe <= self.grace_period:
                continue
            c = node_condition(node, "Ready")
            if c is not None and c.get("status") == "Unknown":
                continue
            self._mark_unknown(name)

    def _mark_unknown(self, name: str) -> None:
        now = self.clock.now()
        node = self.store.get("nodes", None, name)
        st = node.setdefault("status", {})
        conds = st.setdefault("conditions", [])
        types = {c["type"] for c in conds}
        for ctype in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            if ctype not in types:
                conds.append({"type": ctype, "lastHeartbeatTime": iso(now)})
        for c in conds:
            if c["type"] in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                if c.get("status") != "Unknown":
                    c["lastTransitionTime"] = iso(now)
                c["status"] = "Unknown"
                c["reason"] = "NodeStatusUnknown"
                c["message"] = "Kubelet stopped posting node status."
        self.store.update("nodes", node)
        self.rec.event(node | {"kind": "Node", "apiVersion": "v1"}, "Normal", "NodeNotReady",
                       f"Node {name} status is now: NodeNotReady", "node-controller")
        self._mark_pods_not_ready(name)

    def _mark_pods_not_ready(self, name: str) -> None:
        """nodeutil.MarkPodsNotReady: Ready condition False on every pod of the node."""
        now = self.clock.now()
        for pod in self.inf.pods_on(name):
            if pod_terminating(pod) and not pod.get("status"):
                continue
            conds = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                continue
            p = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            for c in p["status"]["conditions"]:
                if c["type"] == "Ready":
                    c["status"] = "False"
                    c["lastTransitionTime"] = iso(now)
                    c["reason"] = "NodeNotReady"
                    c.pop("message", None)
            self.store.update("pods", p)
            self.rec.event(p, "Warning", "NodeNotReady", "Node is not ready", "node-controller")

    # -- taints (NoExecute tainting pass + taint-node-by-condition) -------------------------
    def _sync_taints(self, name: str) -> None:
        node = self.inf.get("nodes", None, name)
        if node is None:
            return
        c = node_condition(node, "Ready")
        status = c.get("status") if c else "Unknown"
        want: list[tuple[str, str]] = []
        if status == "Unknown":
            want = [(TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")]
        elif status == "False":
            want = [(TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, "NoExecute")]
        if (node.get("spec") or {}).get("unschedulable"):
            want.append((TAINT_UNSCHEDULABLE, "NoSchedule"))
        managed = {TAINT_UNREACHABLE, TAINT_NOT_READY, TAINT_UNSCHEDULABLE}
        taints = (node.get("spec") or {}).get("taints") or []
        have = {(t["key"], t["effect"]) for t in taints if t.get("key") in managed}
        if have == set(want):
            return
        now = iso(self.clock.now())
        keep = [t for t in taints if t.get("key") not in managed or (t["key"], t["effect"]) in want]
        for key, effect in want:
            if (key, effect) not in have:
                t = {"key": key, "effect": effect}
                if effect == "NoExecute":
                    t["timeAdded"] = now
                keep.append(t)
        n = self.store.get("nodes", None, name)
        n.setdefault("spec", {})["taints"] = keep
        if not keep:
            n["spec"].pop("taints")
        self.store.update("nodes", n)


class TaintEvictionController:
    """pkg/controller/tainteviction: deletes pods that do not tolerate a node's NoExecute taints."""

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.scheduled: dict[tuple, tuple[float, Any]] = {}  # pod key -> (created at, timer)
        self._node_taints: dict[str, tuple] = {}
        self.node_q = WorkQueue(clock, self._sync_node, "taint-eviction-node")
        self.pod_q = WorkQueue(clock, self._sync_pod, "taint-eviction-pod")
        informer.on("nodes", self._on_node)
        informer.on("pods", self._on_pod)

    def start(self) -> None:
        for node in self.inf.items("nodes"):
            self._on_node("ADDED", node)

    def stop(self) -> None:
        self.node_q.stop()
        self.pod_q.stop()
        for _, t in self.scheduled.values():
            t.cancel()

    @staticmethod
    def _no_execute(node: dict) -> tuple:
        return tuple(sorted((t.get("key", ""), t.get("value") or "") for t in (node.get("spec") or {}).get("taints") or []
                            if t.get("effect") == "NoExecute"))

    def _on_node(self, etype: str, node: dict) -> None:
        name = node["metadata"]["name"]
        if etype == "DELETED":
            self._node_taints.pop(name, None)
            return
        taints = self._no_execute(node)
        if self._node_taints.get(name) != taints:
            self._node_taints[name] = taints
            self.node_q.add(name)

    def _on_pod(self, etype: str, pod: dict) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if etype == "DELETED" or pod_terminating(pod):
            self._cancel(key)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if node and self._node_taints.get(node):
            self.pod_q.add(key)

    def _cancel(self, key: tuple) -> None:
        s = self.scheduled.pop(key, None)
        if s:
            s[1].cancel()

    def _sync_node(self, name: str) -> None:
        node = self.inf.get("nodes", None, name)
        for pod in self.inf.pods_on(name):
            self._process(pod, node)

    def _sync_pod(self, key: tuple) -> None:
        pod = self.inf.get("pods", *key)
        if pod is None:
            return
        self._process(pod, self.inf.get("nodes", None, pod["spec"].get("nodeName")))

    def _process(self, pod: dict, node: dict | None) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if pod_terminating(pod):
            self._cancel(key)
            return
        taints = [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if not taints:
            self._cancel(key)
            return
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        used = []
        for taint in taints:
            match = [t for t in tolerations if toleration_tolerates(t, taint)]
            if not match:
                self._cancel(key)
                self._evict(key, pod["metadata"]["uid"], node["metadata"]["name"])
                return
            used.extend(match)
        wait = self._min_toleration(used)
        if wait < 0:
            self._cancel(key)
            return
        now = self.clock.now()
        s = self.scheduled.get(key)
        if s is not None:
            created, timer = s
            if abs(timer.when - max(now, created + wait)) < 1e-6:
                return
            timer.cancel()
            self.scheduled[key] = (created, self.clock.call_at(created + wait, self._evict, key, pod["metadata"]["uid"],
                                                               node["metadata"]["name"], name="taint-evict"))
            return
        self.scheduled[key] = (now, self.clock.call_later(wait, self._evict, key, pod["metadata"]["uid"],
                                                          node["metadata"]["name"], name="taint-evict"))

    @staticmethod
    def _min_toleration(tolerations: list[dict]) -> float:
        best = None
        for t in tolerations:
            secs = t.get("tolerationSeconds")
            if secs is None:
                continue
            if secs <= 0:
                return 0.0
            best = secs if best is None else min(best, secs)
        return -1.0 if best is None else float(best)

    def _evict(self, key: tuple, uid: str, node_name: str) -> None:
        self.scheduled.pop(key, None)
        pod = self.inf.get("pods", *key)
        if pod is None or pod["metadata"]["uid"] != uid or pod_terminating(pod):
            return
        now = iso(self.clock.now())
        p = self.store.get("pods", *key)
        conds = p.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
                      "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint"})
        self.store.update("pods", p)
        self.rec.event(p, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key[0]}/{key[1]}",
                       "taint-eviction-controller")
        try:
            self.store.delete("pods", key[0], key[1])
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
