"""kube-scheduler: binds pending pods to nodes.

Filters as the default profile's plugins do: NodeUnschedulable, TaintToleration (NoSchedule and
NoExecute), NodeAffinity (nodeSelector, required nodeAffinity incl. ``matchFields`` on
``metadata.name`` that DaemonSet pods use), InterPodAntiAffinity (required, topologyKey
``kubernetes.io/hostname``), VolumeBinding (unbound immediate PVCs), NodeResourcesFit limited to the
pod count (``status.allocatable.pods``, default 110). Among feasible nodes it picks the one with
the fewest pods (a stand-in for LeastAllocated), ties broken by name. Writes ``Scheduled`` and
``FailedScheduling`` events with the scheduler's message formats. Unschedulable pods are retried
when nodes or pods change, and at least every 60 s.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from .informer import WorkQueue
from .util import (HOSTNAME_LABEL, TAINT_UNSCHEDULABLE, pod_active, pod_pvc_names, pod_terminating,
                   selector_matches, tolerates, _expr_matches)

log = logging.getLogger(__name__)


class Scheduler:
    retry_period = 60.0

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.q = WorkQueue(clock, self._schedule, "scheduler")
        self.unschedulable: set[tuple] = set()
        self.pod_count: Counter = Counter()
        self._timer = None
        self._names: list[str] | None = None
        self._next_start = 0
        self._node_sig: dict[str, Any] = {}
        informer.on("pods", self._on_pod)
        informer.on("nodes", self._on_node)
        informer.on("persistentvolumeclaims", self._on_pvc)

    def start(self) -> None:
        for key in list(self.inf.unscheduled):
            self.q.add(key)
        self._timer = self.clock.every(self.retry_period, self._flush, name="scheduler-flush")

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.q.stop()

    def _on_pod(self, etype: str, pod: dict) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if etype == "DELETED" or pod_terminating(pod):
            self.unschedulable.discard(key)
            if (pod.get("spec") or {}).get("nodeName"):
                self._flush()  # room freed (anti-affinity, pod count)
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            if (pod.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler":
                self.q.add(key)

    def _on_node(self, etype: str, node: dict) -> None:
        if etype != "MODIFIED":
            self._names = None
        name = node["metadata"]["name"]
        sig = None if etype == "DELETED" else (
            repr((node.get("spec") or {}).get("taints")), (node.get("spec") or {}).get("unschedulable"),
            repr(sorted(((node.get("metadata") or {}).get("labels") or {}).items())))
        if self._node_sig.get(name) == sig:
            return
        self._node_sig[name] = sig
        if self.unschedulable:
            self._flush()

    def _on_pvc(self, etype: str, pvc: dict) -> None:
        if self.unschedulable and (pvc.get("status") or {}).get("phase") == "Bound":
            for key in self.inf.pods_by_pvc.get((pvc["metadata"]["namespace"], pvc["metadata"]["name"]), ()):
                if key in self.unschedulable:
                    self.q.add(key)

    def _flush(self) -> None:
        for key in list(self.unschedulable):
            self.q.add(key)

    # -- scheduling --------------------------------------------------------------------------
    def _schedule(self, key: tuple) -> None:
        pod = self.inf.get("pods", *key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or pod_terminating(pod):
            self.unschedulable.discard(key)
            return
        reasons: Counter = Counter()
        # VolumeBinding: every PVC must exist and be bound (Longhorn's class binds immediately)
        for claim in pod_pvc_names(pod):
            pvc = self.inf.get("persistentvolumeclaims", key[0], claim)
            if pvc is None:
                self._fail(pod, key, f'0/{len(self.inf.cache["nodes"])} nodes are available: '
                                     f'persistentvolumeclaim "{claim}" not found.')
                return
            if (pvc.get("status") or {}).get("phase") != "Bound":
                n = len(self.inf.cache["nodes"])
                self._fail(pod, key, f"0/{n} nodes are available: pod has unbound immediate PersistentVolumeClaims. "
                                     f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.")
                return
        best = None
        plan = self._plan(pod)
        nodes = self.inf.cache["nodes"]
        names = self._node_names()
        n = len(names)
        # percentageOfNodesToScore (adaptive): stop once enough feasible nodes were found,
        # starting where the previous cycle stopped.
        want = n if n < 100 else max(100, n * max(5, 50 - n // 125) // 100)
        found = 0
        start = self._next_start % n if n else 0
        for i in range(n):
            name = names[(start + i) % n]
            node = nodes.get((None, name))
            if node is None:
                continue
            why = self._filter(pod, node, plan)
            if why:
                reasons[why] += 1
                continue
            found += 1
            score = (self.pods_on_count(name), name)
            if best is None or score < best[0]:
                best = (score, name)
            if found >= want:
                self._next_start = start + i + 1
                break
        if best is None:
            n = len(nodes)
            detail = ", ".join(f"{c} {r}" for r, c in sorted(reasons.items()))
            self._fail(pod, key, f"0/{n} nodes are available: {detail}. preemption: 0/{n} nodes are available: "
                                 f"{n} Preemption is not helpful for scheduling.")
            return
        self._bind(pod, key, best[1])

    def _node_names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(name for (_, name) in self.inf.cache["nodes"])
        return self._names

    def pods_on_count(self, node: str) -> int:
        return len(self.inf.pods_by_node.get(node, ()))

    def _filter(self, pod: dict, node: dict, plan: tuple | None = None) -> str | None:
        if plan is None:
            plan = self._plan(pod)
        tolerations, selector, req, anti, ns = plan
        nspec = node.get("spec") or {}
        if nspec.get("unschedulable") and not tolerates(tolerations, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}):
            return "node(s) were unschedulable"
        for t in nspec.get("taints") or ():
            if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, t):
                v = f"={t['value']}" if t.get("value") else ""
                return f"node(s) had untolerated taint {{{t['key']}{v}}}" if t.get("key") else "node(s) had untolerated taint"
        labels = (node.get("metadata") or {}).get("labels") or {}
        for k, v in selector:
            if labels.get(k) != v:
                return "node(s) didn't match Pod's node affinity/selector"
        if req and not any(self._term_matches(term, node, labels) for term in req):
            return "node(s) didn't match Pod's node affinity/selector"
        for term in anti:
            namespaces = term.get("namespaces") or [ns]
            for other in self.inf.pods_on(node["metadata"]["name"]):
                if other["metadata"]["namespace"] in namespaces and pod_active(other) \
                        and selector_matches(term.get("labelSelector"), other["metadata"].get("labels")):
                    return "node(s) didn't match pod anti-affinity rules"
        cap = int(((node.get("status") or {}).get("allocatable") or {}).get("pods", 110))
        if self.pods_on_count(node["metadata"]["name"]) >= cap:
            return "Too many pods"
        return None

    @staticmethod
    def _plan(pod: dict) -> tuple:
        """The pod's side of the filters, computed once per scheduling cycle."""
        spec = pod.get("spec") or {}
        aff = spec.get("affinity") or {}
        req = (((aff.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
               .get("nodeSelectorTerms")) or []
        anti = [t for t in ((aff.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or [])
                if t.get("topologyKey") == HOSTNAME_LABEL]
        return (spec.get("tolerations") or [], tuple((spec.get("nodeSelector") or {}).items()), req, anti,
                pod["metadata"]["namespace"])

    @staticmethod
    def _term_matches(term: dict, node: dict, labels: dict) -> bool:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            return False
        for e in exprs:
            if not _expr_matches(e, labels):
                return False
        for f in fields:
            if f.get("key") != "metadata.name" or not _expr_matches(f, {"metadata.name": node["metadata"]["name"]}):
                return False
        return True

    def _fail(self, pod: dict, key: tuple, message: str) -> None:
        self.unschedulable.add(key)
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        conds = (pod.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "PodScheduled" and c.get("message") == message for c in conds):
            p = self.store.get("pods", *key)
            st = p.setdefault("status", {})
            st["phase"] = "Pending"
            st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"] + [
                dict(cond, lastProbeTime=None, lastTransitionTime=self.clock.now_iso())]
            self.store.update("pods", p)
        self.rec.event(pod, "Warning", "FailedScheduling", message, "default-scheduler")

    def _bind(self, pod: dict, key: tuple, node: str) -> None:
        """POST pods/binding: sets spec.nodeName and the PodScheduled condition."""
        p = self.store.get("pods", *key)
        if p["spec"].get("nodeName"):
            return
        p["spec"]["nodeName"] = node
        st = p.setdefault("status", {})
        st.setdefault("phase", "Pending")
        st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"] + [
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": self.clock.now_iso()}]
        self.store.update("pods", p)
        self.unschedulable.discard(key)
        self.rec.event(p, "Normal", "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {node}",
                       "default-scheduler")
