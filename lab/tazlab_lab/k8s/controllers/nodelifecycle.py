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
                 grace_period: float = 50.0, monitor_period: float = 5.0, eviction_rate: float = 0.1,
                 secondary_eviction_rate: float = 0.01, large_cluster_threshold: int = 50,
                 unhealthy_zone_threshold: float = 0.55):
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
        self.eviction_rate = eviction_rate
        self.secondary_eviction_rate = secondary_eviction_rate
        self.large_cluster_threshold = large_cluster_threshold
        self.unhealthy_zone_threshold = unhealthy_zone_threshold
        self.zone_queue: dict[str, dict[str, float]] = {}
        self.zone_next: dict[str, float] = {}
        self.zone_states: dict[str, str] = {}
        self.all_fully_disrupted = False
        self._pass_timer = None

    def start(self) -> None:
        now = self.clock.now()
        for node in self.inf.items("nodes"):
            self.probe.setdefault(node["metadata"]["name"], now)
            self.taint_q.add(node["metadata"]["name"])
        self._timer = self.clock.every(self.monitor_period, self.monitor, name="node-lifecycle-monitor")
        # nodeEvictionPeriod is 100 ms upstream; a 1 s pass keeps idle cost low and delays by < 1 s
        self._pass_timer = self.clock.every(1.0, self._pass_if_queued, name="node-lifecycle-tainting")

    def _pass_if_queued(self) -> None:
        if any(self.zone_queue.values()):
            self.tainting_pass()

    def stop(self) -> None:
        for t in (self._timer, self._pass_timer):
            if t:
                t.cancel()
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
        self._monitor_health()
        self._handle_disruption()
        self.tainting_pass()

    def _monitor_health(self) -> None:
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

    # -- zones and the rate-limited NoExecute tainting pass ----------------------------------
    @staticmethod
    def zone_of(node: dict) -> str:
        labels = (node.get("metadata") or {}).get("labels") or {}
        region = labels.get("topology.kubernetes.io/region", "")
        zone = labels.get("topology.kubernetes.io/zone", "")
        return f"{region}:\x00:{zone}"

    def _zone_states(self) -> dict[str, str]:
        """ComputeZoneState: Normal, PartialDisruption (>2 and >= 55 % not ready), FullDisruption."""
        counts: dict[str, list[int]] = {}
        for node in self.inf.cache["nodes"].values():
            z = self.zone_of(node)
            c = node_condition(node, "Ready")
            ready = bool(c and c.get("status") == "True")
            counts.setdefault(z, [0, 0])[0 if ready else 1] += 1
        out = {}
        for z, (ready, not_ready) in counts.items():
            if ready == 0 and not_ready > 0:
                out[z] = "FullDisruption"
            elif not_ready > 2 and not_ready / (ready + not_ready) >= self.unhealthy_zone_threshold:
                out[z] = "PartialDisruption"
            else:
                out[z] = "Normal"
        return out

    def _zone_rate(self, zone: str, state: str, size: int) -> float:
        if self.all_fully_disrupted:
            return 0.0
        if state == "PartialDisruption":
            return self.secondary_eviction_rate if size > self.large_cluster_threshold else 0.0
        return self.eviction_rate

    def _handle_disruption(self) -> None:
        states = self._zone_states()
        all_full = bool(states) and all(v == "FullDisruption" for v in states.values())
        if all_full and not self.all_fully_disrupted:
            log.warning("Controller detected that all Nodes are not-Ready. Entering master disruption mode.")
            self.all_fully_disrupted = True
            # markNodeAsReachable on every node: the NoExecute taints go, and no new ones come
            for (_, name) in list(self.inf.cache["nodes"]):
                self._set_no_execute(name, None)
            for q in self.zone_queue.values():
                q.clear()
        elif not all_full and self.all_fully_disrupted:
            log.warning("Controller detected that some Nodes are Ready. Exiting master disruption mode.")
            self.all_fully_disrupted = False
            for (_, name), node in self.inf.cache["nodes"].items():
                self._process_taint_based_eviction(name, node)
        self.zone_states = states

    def _process_taint_based_eviction(self, name: str, node: dict) -> None:
        c = node_condition(node, "Ready")
        status = c.get("status") if c else "Unknown"
        zone = self.zone_of(node)
        have = self._no_execute_key(node)
        if status == "True":
            self.zone_queue.get(zone, {}).pop(name, None)
            if have is not None:
                self._set_no_execute(name, None)
            return
        want = TAINT_UNREACHABLE if status == "Unknown" else TAINT_NOT_READY
        if have == want:
            return
        if have is not None:
            self._set_no_execute(name, want)  # swap straight away, not rate limited
            return
        if self.all_fully_disrupted:
            return
        self.zone_queue.setdefault(zone, {}).setdefault(name, self.clock.now())
        if not self.zone_states:
            self.zone_states = self._zone_states()
        self.tainting_pass()

    def tainting_pass(self) -> None:
        """doNoExecuteTaintingPass: per zone, at most ``rate`` nodes tainted per second."""
        now = self.clock.now()
        sizes: dict[str, int] = {}
        for node in self.inf.cache["nodes"].values():
            z = self.zone_of(node)
            sizes[z] = sizes.get(z, 0) + 1
        for zone, queue in self.zone_queue.items():
            if not queue:
                continue
            rate = self._zone_rate(zone, self.zone_states.get(zone, "Normal"), sizes.get(zone, 0))
            while queue and rate > 0 and now >= self.zone_next.get(zone, -1e18):
                name = next(iter(queue))
                del queue[name]
                node = self.inf.get("nodes", None, name)
                if node is None:
                    continue
                c = node_condition(node, "Ready")
                status = c.get("status") if c else "Unknown"
                if status == "True":
                    continue
                self._set_no_execute(name, TAINT_UNREACHABLE if status == "Unknown" else TAINT_NOT_READY)
                # token bucket, burst 1
                self.zone_next[zone] = max(now, self.zone_next.get(zone, now)) + 1.0 / rate

    @staticmethod
    def _no_execute_key(node: dict) -> str | None:
        for t in (node.get("spec") or {}).get("taints") or []:
            if t.get("effect") == "NoExecute" and t.get("key") in (TAINT_UNREACHABLE, TAINT_NOT_READY):
                return t["key"]
        return None

    def _set_no_execute(self, name: str, key: str | None) -> None:
        node = self.inf.get("nodes", None, name)
        if node is None:
            return
        taints = (node.get("spec") or {}).get("taints") or []
        keep = [t for t in taints if not (t.get("effect") == "NoExecute" and t.get("key") in (TAINT_UNREACHABLE, TAINT_NOT_READY))]
        if key is not None:
            keep.append({"key": key, "effect": "NoExecute", "timeAdded": iso(self.clock.now())})
        if keep == taints:
            return
        n = self.store.get("nodes", None, name)
        n.setdefault("spec", {})["taints"] = keep
        if not keep:
            n["spec"].pop("taints")
        self.store.update("nodes", n)

    # -- taint-node-by-condition (NoSchedule, not rate limited) -------------------------------
    def _sync_taints(self, name: str) -> None:
        node = self.inf.get("nodes", None, name)
        if node is None:
            return
        c = node_condition(node, "Ready")
        status = c.get("status") if c else "Unknown"
        want: set[str] = set()
        if status == "Unknown":
            want.add(TAINT_UNREACHABLE)
        elif status == "False":
            want.add(TAINT_NOT_READY)
        if (node.get("spec") or {}).get("unschedulable"):
            want.add(TAINT_UNSCHEDULABLE)
        managed = {TAINT_UNREACHABLE, TAINT_NOT_READY, TAINT_UNSCHEDULABLE}
        taints = (node.get("spec") or {}).get("taints") or []
        have = {t["key"] for t in taints if t.get("key") in managed and t.get("effect") == "NoSchedule"}
        if have != want:
            keep = [t for t in taints if not (t.get("effect") == "NoSchedule" and t.get("key") in managed
                                              and t["key"] not in want)]
            for key in sorted(want - have):
                keep.append({"key": key, "effect": "NoSchedule"})
            n = self.store.get("nodes", None, name)
            n.setdefault("spec", {})["taints"] = keep
            if not keep:
                n["spec"].pop("taints")
            self.store.update("nodes", n)
            node = self.inf.get("nodes", None, name) or node
        self._process_taint_based_eviction(name, node)


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
