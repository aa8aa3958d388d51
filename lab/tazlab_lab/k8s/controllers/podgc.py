"""Pod garbage collector (pkg/controller/podgc/gc_controller.go), every 20 s.

* gcTerminating: pods with a deletionTimestamp on a node that is not Ready and carries
  ``node.kubernetes.io/out-of-service`` are set to phase Failed and deleted with grace 0
  (non-graceful node shutdown, KEP-2268). Visited through the pods-by-node index of tainted nodes
  only, never by listing every pod.
* gcOrphaned: pods bound to a node that no longer exists (seen twice, 40 s quarantine) are marked
  Failed with a DisruptionTarget condition and force-deleted.
* gcUnscheduledTerminating: terminating pods that were never scheduled are force-deleted.
* gcTerminated: above ``terminated-pod-gc-threshold`` (12500) terminal pods, the oldest go.
"""

from __future__ import annotations

import logging
from typing import Any

from .util import TAINT_OUT_OF_SERVICE, has_taint, iso, node_ready, pod_phase, pod_terminating

log = logging.getLogger(__name__)


class PodGC:
    period = 20.0
    quarantine = 40.0

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any, terminated_threshold: int = 12500):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.threshold = terminated_threshold
        self._timer = None
        self._orphan_seen: dict[str, float] = {}
        self._terminal: set[tuple] = set()
        informer.on("pods", self._on_pod)
        for p in informer.items("pods"):
            self._on_pod("ADDED", p)

    def _on_pod(self, etype: str, pod: dict) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if etype != "DELETED" and pod_phase(pod) in ("Succeeded", "Failed"):
            self._terminal.add(key)
        else:
            self._terminal.discard(key)

    def start(self) -> None:
        self._timer = self.clock.every(self.period, self.gc, name="podgc")

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()

    def gc(self) -> None:
        self._gc_terminated()
        self._gc_terminating()
        self._gc_orphaned()
        self._gc_unscheduled_terminating()

    def _force_delete(self, key: tuple, condition: dict | None = None) -> None:
        pod = self.inf.get("pods", *key)
        if pod is None:
            return
        if pod_phase(pod) not in ("Succeeded", "Failed"):
            p = self.store.get("pods", *key)
            st = p.setdefault("status", {})
            st["phase"] = "Failed"
            if condition:
                st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != condition["type"]] + [condition]
            self.store.update("pods", p)
        try:
            self.store.delete("pods", key[0], key[1], grace_period_seconds=0)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise

    def _gc_terminating(self) -> None:
        for (_, name), node in list(self.inf.cache["nodes"].items()):
            if node_ready(node) or not has_taint(node, TAINT_OUT_OF_SERVICE):
                continue
            for pod in sorted(self.inf.pods_on(name), key=lambda p: p["metadata"]["name"]):
                if pod_terminating(pod):
                    log.info("podgc: force deleting %s/%s on out-of-service node %s",
                             pod["metadata"]["namespace"], pod["metadata"]["name"], name)
                    self._force_delete((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def _gc_orphaned(self) -> None:
        now = self.clock.now()
        nodes = self.inf.cache["nodes"]
        for node_name in list(self.inf.pods_by_node):
            if (None, node_name) in nodes:
                self._orphan_seen.pop(node_name, None)
                continue
            first = self._orphan_seen.setdefault(node_name, now)
            if now - first < self.quarantine:
                continue
            for pod in self.inf.pods_on(node_name):
                cond = {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                        "lastTransitionTime": iso(now), "reason": "DeletionByPodGC",
                        "message": "PodGC: node no longer exists"}
                self._force_delete((pod["metadata"]["namespace"], pod["metadata"]["name"]), cond)

    def _gc_unscheduled_terminating(self) -> None:
        for key in list(self.inf.unscheduled):
            pod = self.inf.get("pods", *key)
            if pod is not None and pod_terminating(pod):
                self._force_delete(key)

    def _gc_terminated(self) -> None:
        excess = len(self._terminal) - self.threshold
        if excess <= 0:
            return
        pods = [self.inf.get("pods", *k) for k in self._terminal]
        pods = sorted((p for p in pods if p), key=lambda p: p["metadata"].get("creationTimestamp") or "")
        for p in pods[:excess]:
            try:
                self.store.delete("pods", p["metadata"]["namespace"], p["metadata"]["name"], grace_period_seconds=0)
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise
