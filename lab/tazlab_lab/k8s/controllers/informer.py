"""Shared informer, work queues and event recorder for the twin's controllers.

One ``Informer`` subscribes to the store once and keeps, per resource, a cache of the latest
objects plus a few secondary indexes (pods by node, pods by owner uid, pods by PVC, objects by
controller owner), so controllers never list every pod in a hot path. Handlers registered per
resource run synchronously after each write; they must only enqueue work, never write.

``WorkQueue`` is client-go's workqueue on the simulated clock: keys are de-duplicated, processed in
a timer at the current simulated instant, and re-queued with a delay when the sync fails.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Iterable

from .util import controller_ref, pod_pvc_names

log = logging.getLogger(__name__)

WATCHED = (
    "pods", "nodes", "namespaces", "services", "endpoints", "persistentvolumes",
    "persistentvolumeclaims", "deployments.apps", "replicasets.apps", "statefulsets.apps",
    "daemonsets.apps", "volumeattachments.storage.k8s.io", "endpointslices.discovery.k8s.io",
    "leases.coordination.k8s.io", "volumes.longhorn.io", "volumeattachments.longhorn.io",
    "engines.longhorn.io", "replicas.longhorn.io", "nodes.longhorn.io", "settings.longhorn.io",
)


class Informer:
    def __init__(self, store: Any):
        self.store = store
        self.cache: dict[str, dict[tuple, dict]] = {r: {} for r in WATCHED}
        self.handlers: dict[str, list[Callable[[str, dict], None]]] = defaultdict(list)
        # secondary indexes
        self.pods_by_node: dict[str, set[tuple]] = defaultdict(set)
        self.pods_by_owner: dict[str, set[tuple]] = defaultdict(set)
        self.pods_by_pvc: dict[tuple, set[tuple]] = defaultdict(set)
        self.owned_by: dict[str, dict[str, set[tuple]]] = defaultdict(lambda: defaultdict(set))
        self.unscheduled: set[tuple] = set()
        self.errors: list[BaseException] = []
        self.vas_by_pv: dict[str, set[str]] = defaultdict(set)
        self._va_idx: dict[str, str] = {}
        self._pod_idx: dict[tuple, tuple] = {}
        self._own_idx: dict[tuple, str] = {}
        for res in WATCHED:
            try:
                objs = store.list(res, copy=False)
            except Exception:  # a resource the store does not serve (yet)
                objs = []
            for obj in objs:
                self._apply("ADDED", res, obj)
        store.subscribe(self._on_event)

    # -- reading -----------------------------------------------------------------------------
    def get(self, res: str, namespace: str | None, name: str) -> dict | None:
        return self.cache[res].get((namespace, name))

    def items(self, res: str) -> Iterable[dict]:
        return list(self.cache[res].values())

    def pods_on(self, node: str) -> list[dict]:
        c = self.cache["pods"]
        return [c[k] for k in list(self.pods_by_node.get(node, ())) if k in c]

    def pods_of(self, owner_uid: str) -> list[dict]:
        c = self.cache["pods"]
        return [c[k] for k in list(self.pods_by_owner.get(owner_uid, ())) if k in c]

    def pods_using(self, namespace: str, claim: str) -> list[dict]:
        c = self.cache["pods"]
        return [c[k] for k in list(self.pods_by_pvc.get((namespace, claim), ())) if k in c]

    def children(self, res: str, owner_uid: str) -> list[dict]:
        c = self.cache[res]
        return [c[k] for k in list(self.owned_by[res].get(owner_uid, ())) if k in c]

    def vas_of(self, pv: str) -> list[dict]:
        c = self.cache["volumeattachments.storage.k8s.io"]
        return [c[(None, n)] for n in sorted(self.vas_by_pv.get(pv, ())) if (None, n) in c]

    def on(self, res: str, handler: Callable[[str, dict], None]) -> None:
        self.handlers[res].append(handler)

    # -- feeding -----------------------------------------------------------------------------
    def _on_event(self, etype: str, res: str, obj: dict) -> None:
        if res not in self.cache:
            return
        self._apply(etype, res, obj)
        for h in self.handlers.get(res, ()):
            try:
                h(etype, obj)
            except Exception as exc:  # a handler bug must not break the store write, but is recorded
                log.exception("informer handler for %s failed", res)
                self.errors.append(exc)

    def _apply(self, etype: str, res: str, obj: dict) -> None:
        md = obj.get("metadata") or {}
        key = (md.get("namespace"), md.get("name"))
        if etype == "DELETED":
            self.cache[res].pop(key, None)
        else:
            self.cache[res][key] = obj
        if res == "pods":
            self._index_pod(etype, key, obj)
        else:
            if res == "volumeattachments.storage.k8s.io":
                name = key[1]
                old_pv = self._va_idx.pop(name, None)
                if old_pv is not None:
                    self.vas_by_pv[old_pv].discard(name)
                    if not self.vas_by_pv[old_pv]:
                        del self.vas_by_pv[old_pv]
                pv = ((obj.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
                if pv and etype != "DELETED":
                    self.vas_by_pv[pv].add(name)
                    self._va_idx[name] = pv
            ref = controller_ref(obj)
            old = self._own_idx.pop((res,) + key, None)
            if old:
                self.owned_by[res][old].discard(key)
            if ref and etype != "DELETED":
                self.owned_by[res][ref["uid"]].add(key)
                self._own_idx[(res,) + key] = ref["uid"]

    def _index_pod(self, etype: str, key: tuple, pod: dict) -> None:
        old = self._pod_idx.pop(key, None)
        if old:
            node, owner, pvcs = old
            if node:
                self.pods_by_node[node].discard(key)
                if not self.pods_by_node[node]:
                    del self.pods_by_node[node]
            if owner:
                self.pods_by_owner[owner].discard(key)
                if not self.pods_by_owner[owner]:
                    del self.pods_by_owner[owner]
            for p in pvcs:
                self.pods_by_pvc[p].discard(key)
                if not self.pods_by_pvc[p]:
                    del self.pods_by_pvc[p]
        self.unscheduled.discard(key)
        if etype == "DELETED":
            return
        node = (pod.get("spec") or {}).get("nodeName") or ""
        ref = controller_ref(pod)
        owner = ref["uid"] if ref else ""
        pvcs = tuple((key[0], c) for c in pod_pvc_names(pod))
        if node:
            self.pods_by_node[node].add(key)
        else:
            self.unscheduled.add(key)
        if owner:
            self.pods_by_owner[owner].add(key)
        for p in pvcs:
            self.pods_by_pvc[p].add(key)
        self._pod_idx[key] = (node, owner, pvcs)


class WorkQueue:
    """A de-duplicating queue drained at the current simulated instant."""

    def __init__(self, clock: Any, sync: Callable[[Any], Any], name: str, retry_delay: float = 1.0):
        self.clock = clock
        self.sync = sync
        self.name = name
        self.retry_delay = retry_delay
        self._pending: dict[Any, None] = {}
        self._timer = None
        self._later: dict[Any, Any] = {}
        self.running = True

    def add(self, key: Any) -> None:
        if not self.running:
            return
        self._pending[key] = None
        if self._timer is None:
            self._timer = self.clock.call_later(0, self._drain, name=f"{self.name}-queue")

    def add_after(self, key: Any, delay: float) -> None:
        """Enqueue ``key`` after ``delay`` simulated seconds (the earliest request wins)."""
        if not self.running:
            return
        when = self.clock.now() + max(0.0, delay)
        t = self._later.get(key)
        if t is not None and not t.cancelled and t.when <= when:
            return
        if t is not None:
            t.cancel()

        def fire() -> None:
            self._later.pop(key, None)
            self.add(key)

        self._later[key] = self.clock.call_at(when, fire, name=f"{self.name}-later")

    def _drain(self) -> None:
        self._timer = None
        rounds = 0
        while self._pending and self.running:
            rounds += 1
            batch = list(self._pending)
            self._pending.clear()
            for key in batch:
                try:
                    self.sync(key)
                except Exception as exc:  # conflicts, races with the API: retry like a rate-limited queue
                    reason = getattr(exc, "reason", None)
                    if reason is None:
                        log.exception("%s: sync %s failed", self.name, key)
                        self.clock.errors.append(exc)
                    self.add_after(key, self.retry_delay)
            if rounds > 50:  # something keeps re-adding itself: yield to time
                if self._pending:
                    keys = list(self._pending)
                    self._pending.clear()
                    for k in keys:
                        self.add_after(k, self.retry_delay)
                break

    def stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
        for t in self._later.values():
            t.cancel()


class EventRecorder:
    """client-go's event recorder with its correlator: the same event bumps ``count``."""

    def __init__(self, store: Any, clock: Any, namegen: Any, min_interval: float = 10.0):
        self.store = store
        self.clock = clock
        self.namegen = namegen
        self.min_interval = min_interval
        self._seen: dict[tuple, tuple[str, float, int]] = {}

    def event(self, obj: dict, etype: str, reason: str, message: str, component: str,
              host: str | None = None) -> None:
        md = obj.get("metadata") or {}
        ns = md.get("namespace") or "default"
        involved = {"kind": obj.get("kind") or "", "apiVersion": obj.get("apiVersion") or "v1",
                    "namespace": md.get("namespace") or "", "name": md.get("name"), "uid": md.get("uid"),
                    "resourceVersion": md.get("resourceVersion")}
        if obj.get("kind") is None:
            involved["kind"] = "Pod"
        k = (md.get("uid"), reason, message, component)
        now = self.clock.now()
        from .util import iso, micro_iso
        prev = self._seen.get(k)
        if prev is not None:
            name, last, count = prev
            if now - last < self.min_interval:
                return
            count += 1
            try:
                ev = self.store.get("events", ns, name)
                ev["count"] = count
                ev["lastTimestamp"] = iso(now)
                self.store.update("events", ev)
                self._seen[k] = (name, now, count)
                return
            except Exception:
                pass
        name = f"{md.get('name')}.{self.namegen.hex(16)}"
        ev = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message, "type": etype,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": iso(now), "lastTimestamp": iso(now), "count": 1,
            "eventTime": None, "reportingComponent": component, "reportingInstance": host or "",
        }
        try:
            self.store.create("events", ev)
            self._seen[k] = (name, now, 1)
        except Exception:  # events are best effort, as in client-go
            log.debug("event %s dropped", reason)
