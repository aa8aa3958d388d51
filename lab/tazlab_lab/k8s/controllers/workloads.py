"""Workload controllers: ReplicaSet, Deployment, StatefulSet, DaemonSet (pkg/controller/...).

The behaviours that matter for node failures, as upstream:

* ReplicaSet counts only *active* pods (not terminal, no deletionTimestamp): a pod evicted from a
  dead node is replaced at once, while the old one stays Terminating.
* Deployment rolls a new ReplicaSet whenever the pod template changes (``kubectl rollout restart``
  patches an annotation into it) with RollingUpdate (maxSurge/maxUnavailable, 25 % by default) or
  Recreate, and keeps the status fields and conditions ``kubectl rollout status`` reads.
* StatefulSet (OrderedReady) never creates a pod while the pod of that ordinal still exists, even
  Terminating on a dead node; it creates PVCs from volumeClaimTemplates.
* DaemonSet adds the default tolerations (not-ready/unreachable NoExecute without
  tolerationSeconds, the pressure and unschedulable NoSchedule ones) but not
  ``node.kubernetes.io/out-of-service``; pods are placed through the scheduler with a required
  ``matchFields metadata.name`` node affinity.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from typing import Any

from .informer import WorkQueue
from .util import (TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY,
                   TAINT_PID_PRESSURE, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, _expr_matches, controller_ref, iso,
                   owner_ref, parse_ts, pod_active, pod_phase, pod_ready, pod_terminating, template_hash, tolerates)

log = logging.getLogger(__name__)

BURST = 500


def _pod_from_template(template: dict, namespace: str, name: str, owner: dict, kind: str) -> dict:
    t = copy.deepcopy(template or {})
    md = t.get("metadata") or {}
    spec = t.get("spec") or {}
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("containers", [{"name": "main", "image": "registry.k8s.io/pause:3.10"}])
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(md.get("labels") or {}),
                     "annotations": dict(md.get("annotations") or {}),
                     "ownerReferences": [owner_ref(owner, kind, "apps/v1")]},
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        x = total * int(value[:-1]) / 100.0
        return int(math.ceil(x)) if round_up else int(math.floor(x))
    return int(value)


def _available(pod: dict, min_ready: int, now: float) -> bool:
    if not pod_ready(pod) or pod_terminating(pod):
        return False
    if min_ready <= 0:
        return True
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            t = parse_ts(c.get("lastTransitionTime"))
            return t is not None and t + min_ready <= now
    return False


class _Base:
    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any, namegen: Any, name: str):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.namegen = namegen
        self.q = WorkQueue(clock, self.sync, name)

    def stop(self) -> None:
        self.q.stop()

    def _create_pod(self, pod: dict, prefix: str | None) -> dict | None:
        for _ in range(5):
            if prefix is not None:
                pod["metadata"]["name"] = prefix + self.namegen.suffix()
                pod["metadata"]["generateName"] = prefix
            try:
                return self.store.create("pods", pod)
            except Exception as exc:
                if getattr(exc, "code", None) == 409 and prefix is not None:
                    continue
                raise
        return None


# -- ReplicaSet ------------------------------------------------------------------------------
class ReplicaSetController(_Base):
    RES = "replicasets.apps"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw, name="replicaset")
        self.inf.on(self.RES, lambda et, o: self.q.add((o["metadata"]["namespace"], o["metadata"]["name"])))
        self.inf.on("pods", self._on_pod)

    def start(self) -> None:
        for rs in self.inf.items(self.RES):
            self.q.add((rs["metadata"]["namespace"], rs["metadata"]["name"]))

    def _on_pod(self, etype: str, pod: dict) -> None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "ReplicaSet":
            self.q.add((pod["metadata"]["namespace"], ref["name"]))

    def sync(self, key: tuple) -> None:
        rs = self.inf.get(self.RES, *key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        uid = rs["metadata"]["uid"]
        pods = self.inf.pods_of(uid)
        active = [p for p in pods if pod_active(p)]
        want = int((rs.get("spec") or {}).get("replicas", 1))
        diff = len(active) - want
        if diff < 0:
            for _ in range(min(-diff, BURST)):
                pod = _pod_from_template(rs["spec"].get("template"), key[0], "", rs, "ReplicaSet")
                created = self._create_pod(pod, key[1] + "-")
                if created:
                    self.rec.event(rs | {"kind": "ReplicaSet", "apiVersion": "apps/v1"}, "Normal", "SuccessfulCreate",
                                   f"Created pod: {created['metadata']['name']}", "replicaset-controller")
        elif diff > 0:
            def rank(p: dict) -> tuple:
                return (bool(p["spec"].get("nodeName")), pod_phase(p) == "Running", pod_ready(p),
                        -(parse_ts(p["metadata"].get("creationTimestamp")) or 0))
            for p in sorted(active, key=rank)[:diff]:
                try:
                    self.store.delete("pods", key[0], p["metadata"]["name"])
                    self.rec.event(rs | {"kind": "ReplicaSet", "apiVersion": "apps/v1"}, "Normal", "SuccessfulDelete",
                                   f"Deleted pod: {p['metadata']['name']}", "replicaset-controller")
                except Exception as exc:
                    if getattr(exc, "code", None) != 404:
                        raise
        self._status(key)

    def _status(self, key: tuple) -> None:
        rs = self.inf.get(self.RES, *key)
        if rs is None:
            return
        now = self.clock.now()
        pods = [p for p in self.inf.pods_of(rs["metadata"]["uid"]) if pod_active(p)]
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds", 0))
        st = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": sum(1 for p in pods if pod_ready(p)),
            "availableReplicas": sum(1 for p in pods if _available(p, min_ready, now)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        terminating = sum(1 for p in self.inf.pods_of(rs["metadata"]["uid"]) if pod_terminating(p))
        if terminating:
            st["terminatingReplicas"] = terminating
        cur = rs.get("status") or {}
        if all(cur.get(k) == v for k, v in st.items()) and set(cur) <= set(st) | {"conditions"}:
            return
        r = self.store.get(self.RES, *key)
        r["status"] = st
        self.store.update(self.RES, r)
        if min_ready > 0 and st["readyReplicas"] != st["availableReplicas"]:
            self.q.add_after(key, min_ready)


# -- Deployment ------------------------------------------------------------------------------
class DeploymentController(_Base):
    RES = "deployments.apps"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw, name="deployment")
        self.inf.on(self.RES, lambda et, o: self.q.add((o["metadata"]["namespace"], o["metadata"]["name"])))
        self.inf.on("replicasets.apps", self._on_rs)
        self.inf.on("pods", self._on_pod)

    def start(self) -> None:
        for d in self.inf.items(self.RES):
            self.q.add((d["metadata"]["namespace"], d["metadata"]["name"]))

    def _on_rs(self, etype: str, rs: dict) -> None:
        ref = controller_ref(rs)
        if ref and ref.get("kind") == "Deployment":
            self.q.add((rs["metadata"]["namespace"], ref["name"]))

    def _on_pod(self, etype: str, pod: dict) -> None:
        # Recreate waits for old pods to be gone: pod deletions matter to the deployment too.
        if etype != "DELETED":
            return
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.inf.get("replicasets.apps", pod["metadata"]["namespace"], ref["name"])
            if rs:
                self._on_rs("MODIFIED", rs)

    def sync(self, key: tuple) -> None:
        d = self.inf.get(self.RES, *key)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        collision = int((d.get("status") or {}).get("collisionCount", 0))
        h = template_hash(template, collision)
        rss = [rs for rs in self.inf.children("replicasets.apps", d["metadata"]["uid"])
               if not rs["metadata"].get("deletionTimestamp")]
        new = next((rs for rs in rss if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        olds = [rs for rs in rss if rs is not new]
        created_new = False
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_surge = _resolve(ru.get("maxSurge", "25%"), replicas, True)
        max_unavail = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
        if max_surge == 0 and max_unavail == 0:
            max_unavail = 1
        if spec.get("paused"):
            self._status(key, d, new, olds, created_new, max_unavail)
            return
        if new is None:
            if strategy == "Recreate":
                init = replicas if not any(self._rs_pods(rs) for rs in olds) else 0
            elif not olds:
                init = replicas
            else:
                total = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
                init = max(0, min(replicas, replicas + max_surge - total))
            new = self._create_rs(d, template, h, init, olds)
            created_new = True
        if strategy == "Recreate":
            active_old = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
            for rs in active_old:
                self._scale(rs, 0, d)
            if any(self._rs_pods(rs) for rs in olds):
                self._scale(new, 0, d)
            else:
                self._scale(new, replicas, d)
        else:
            self._rolling(d, new, olds, replicas, max_surge, max_unavail)
        self._status(key, d, new, olds, created_new, max_unavail)

    def _rs_pods(self, rs: dict) -> list[dict]:
        """Recreate waits until the old pods are gone or terminal (Terminating pods still count)."""
        return [p for p in self.inf.pods_of(rs["metadata"]["uid"]) if pod_phase(p) not in ("Succeeded", "Failed")]

    def _rolling(self, d: dict, new: dict, olds: list[dict], replicas: int, max_surge: int, max_unavail: int) -> None:
        new = self.inf.get("replicasets.apps", new["metadata"]["namespace"], new["metadata"]["name"]) or new
        olds = [self.inf.get("replicasets.apps", o["metadata"]["namespace"], o["metadata"]["name"]) or o for o in olds]
        if not any(int(o["spec"].get("replicas", 0)) for o in olds):
            self._scale(new, replicas, d)
            return
        # scale up the new ReplicaSet within maxSurge
        total = int(new["spec"].get("replicas", 0)) + sum(int(o["spec"].get("replicas", 0)) for o in olds)
        allowed = replicas + max_surge
        if total < allowed and int(new["spec"].get("replicas", 0)) < replicas:
            up = min(replicas, int(new["spec"].get("replicas", 0)) + allowed - total)
            self._scale(new, up, d)
            new = self.inf.get("replicasets.apps", new["metadata"]["namespace"], new["metadata"]["name"]) or new
        # scale down old ReplicaSets while keeping replicas - maxUnavailable available
        min_available = replicas - max_unavail
        all_pods = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in olds + [new])
        new_unavail = int(new["spec"].get("replicas", 0)) - int((new.get("status") or {}).get("availableReplicas", 0))
        max_down = all_pods - min_available - new_unavail
        if max_down <= 0:
            return
        # first the old replicas that are not available anyway
        for o in sorted(olds, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if max_down <= 0:
                break
            spec_r = int(o["spec"].get("replicas", 0))
            unhealthy = spec_r - int((o.get("status") or {}).get("availableReplicas", 0))
            down = min(max_down, max(0, unhealthy), spec_r)
            if down > 0:
                self._scale(o, spec_r - down, d)
                max_down -= down
        olds = [self.inf.get("replicasets.apps", o["metadata"]["namespace"], o["metadata"]["name"]) or o for o in olds]
        new = self.inf.get("replicasets.apps", new["metadata"]["namespace"], new["metadata"]["name"]) or new
        available = sum(int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in olds + [new])
        budget = min(max_down, available - min_available)
        for o in sorted(olds, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if budget <= 0:
                break
            spec_r = int(o["spec"].get("replicas", 0))
            down = min(spec_r, budget)
            if down > 0:
                self._scale(o, spec_r - down, d)
                budget -= down

    def _create_rs(self, d: dict, template: dict, h: str, replicas: int, olds: list[dict]) -> dict:
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        t = copy.deepcopy(template)
        t.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
        sel = copy.deepcopy((d.get("spec") or {}).get("selector") or {"matchLabels": dict(t["metadata"]["labels"])})
        sel.setdefault("matchLabels", {})["pod-template-hash"] = h
        rev = 1 + max([int((o["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                       for o in olds] or [0])
        rs = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-{h}", "namespace": ns, "labels": dict(t["metadata"]["labels"]),
                         "annotations": {"deployment.kubernetes.io/revision": str(rev),
                                         "deployment.kubernetes.io/desired-replicas": str((d.get("spec") or {}).get("replicas", 1))},
                         "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")]},
            "spec": {"replicas": replicas, "selector": sel, "template": t,
                     "minReadySeconds": (d.get("spec") or {}).get("minReadySeconds", 0)},
        }
        created = self.store.create("replicasets.apps", rs)
        dd = self.store.get(self.RES, ns, name)
        dd["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(rev)
        self.store.update(self.RES, dd)
        self.rec.event(dd | {"kind": "Deployment", "apiVersion": "apps/v1"}, "Normal", "ScalingReplicaSet",
                       f"Scaled up replica set {name}-{h} from 0 to {replicas}", "deployment-controller")
        return created

    def _scale(self, rs: dict, n: int, d: dict) -> None:
        cur = self.inf.get("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"])
        if cur is None or int(cur["spec"].get("replicas", 0)) == n:
            return
        old = int(cur["spec"].get("replicas", 0))
        r = self.store.get("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"])
        r["spec"]["replicas"] = n
        self.store.update("replicasets.apps", r)
        verb = "up" if n > old else "down"
        self.rec.event(d | {"kind": "Deployment", "apiVersion": "apps/v1"}, "Normal", "ScalingReplicaSet",
                       f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {n}", "deployment-controller")

    def _status(self, key: tuple, d: dict, new: dict | None, olds: list[dict], created_new: bool, max_unavail: int) -> None:
        d = self.inf.get(self.RES, *key)
        if d is None:
            return
        now = self.clock.now()
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        get = lambda rs: self.inf.get("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs
        new = get(new) if new else None
        olds = [get(o) for o in olds]
        all_rs = olds + ([new] if new else [])
        sget = lambda rs, k: int((rs.get("status") or {}).get(k, 0))
        st_replicas = sum(sget(rs, "replicas") for rs in all_rs)
        updated = sget(new, "replicas") if new else 0
        ready = sum(sget(rs, "readyReplicas") for rs in all_rs)
        available = sum(sget(rs, "availableReplicas") for rs in all_rs)
        cur = d.get("status") or {}
        conds = {c["type"]: dict(c) for c in cur.get("conditions") or []}

        def setc(ctype: str, status: str, reason: str, message: str) -> None:
            c = conds.get(ctype)
            if c and c.get("status") == status and c.get("reason") == reason and c.get("message") == message:
                return
            if c and c.get("status") == status:
                c.update(reason=reason, message=message, lastUpdateTime=iso(now))
            else:
                conds[ctype] = {"type": ctype, "status": status, "lastUpdateTime": iso(now),
                                "lastTransitionTime": iso(now), "reason": reason, "message": message}

        if available >= replicas - max_unavail:
            setc("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            setc("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        deadline = spec.get("progressDeadlineSeconds", 600)
        old_pods = sum(sget(o, "replicas") for o in olds)
        complete = new is not None and updated == replicas and sget(new, "availableReplicas") == replicas and old_pods == 0 \
            and st_replicas == replicas
        new_name = new["metadata"]["name"] if new else ""
        prog = conds.get("Progressing")
        if complete:
            setc("Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{new_name}" has successfully progressed.')
        elif created_new:
            setc("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{new_name}"')
        else:
            progressed = (cur.get("updatedReplicas"), cur.get("readyReplicas"), cur.get("availableReplicas"),
                          cur.get("replicas")) != (updated, ready, available, st_replicas)
            if progressed or prog is None or (prog.get("reason") == "NewReplicaSetAvailable"):
                setc("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{new_name}" is progressing.')
                conds["Progressing"]["lastUpdateTime"] = iso(now)
            elif prog.get("reason") != "ProgressDeadlineExceeded":
                last = parse_ts(prog.get("lastUpdateTime")) or now
                if deadline is not None and now - last > deadline:
                    setc("Progressing", "False", "ProgressDeadlineExceeded",
                         f'ReplicaSet "{new_name}" has timed out progressing.')
                elif deadline is not None:
                    self.q.add_after(key, max(1.0, last + deadline - now + 1))
        st = {"observedGeneration": d["metadata"].get("generation", 1), "replicas": st_replicas,
              "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
              "unavailableReplicas": max(0, replicas - available) if st_replicas or replicas else 0,
              "conditions": [conds[k] for k in ("Available", "Progressing") if k in conds]}
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas", "replicas"):
            if not st[k]:
                st.pop(k)
        if cur.get("collisionCount"):
            st["collisionCount"] = cur["collisionCount"]
        if st == cur:
            return
        dd = self.store.get(self.RES, *key)
        dd["status"] = st
        self.store.update(self.RES, dd)


# -- StatefulSet -----------------------------------------------------------------------------
class StatefulSetController(_Base):
    RES = "statefulsets.apps"
    _ORD = re.compile(r"-(\d+)$")

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw, name="statefulset")
        self.inf.on(self.RES, lambda et, o: self.q.add((o["metadata"]["namespace"], o["metadata"]["name"])))
        self.inf.on("pods", self._on_pod)

    def start(self) -> None:
        for s in self.inf.items(self.RES):
            self.q.add((s["metadata"]["namespace"], s["metadata"]["name"]))

    def _on_pod(self, etype: str, pod: dict) -> None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "StatefulSet":
            self.q.add((pod["metadata"]["namespace"], ref["name"]))

    def _claim(self, vct: dict, sts: str, i: int) -> str:
        return f"{vct['metadata']['name']}-{sts}-{i}"

    def sync(self, key: tuple) -> None:
        s = self.inf.get(self.RES, *key)
        if s is None or s["metadata"].get("deletionTimestamp"):
            return
        ns, name = key
        spec = s.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods: dict[int, dict] = {}
        for p in self.inf.pods_of(s["metadata"]["uid"]):
            m = self._ORD.search(p["metadata"]["name"])
            if m and p["metadata"]["name"] == f"{name}-{m.group(1)}":
                pods[int(m.group(1))] = p
        for i in range(replicas):
            for vct in spec.get("volumeClaimTemplates") or []:
                claim = self._claim(vct, name, i)
                if self.inf.get("persistentvolumeclaims", ns, claim) is None:
                    pvc = copy.deepcopy(vct)
                    pvc["apiVersion"], pvc["kind"] = "v1", "PersistentVolumeClaim"
                    pvc["metadata"] = {"name": claim, "namespace": ns,
                                       "labels": dict((spec.get("selector") or {}).get("matchLabels") or {})}
                    pvc.pop("status", None)
                    self.store.create("persistentvolumeclaims", pvc)
                    self.rec.event(s | {"kind": "StatefulSet", "apiVersion": "apps/v1"}, "Normal", "SuccessfulCreate",
                                   f"create Claim {claim} Pod {name}-{i} in StatefulSet {name} success",
                                   "statefulset-controller")
        for i in range(replicas):
            p = pods.get(i)
            if p is None:
                self._create(s, i, revision)
                if ordered:
                    break
                continue
            if pod_phase(p) in ("Failed", "Succeeded") and not pod_terminating(p):
                self._delete(s, p)
                if ordered:
                    break
                continue
            if ordered and (pod_terminating(p) or not (pod_phase(p) == "Running" and pod_ready(p))):
                break
        else:
            # scale down, highest ordinal first, once everything below is running and ready
            extra = sorted((i for i in pods if i >= replicas), reverse=True)
            if extra:
                p = pods[extra[0]]
                if not pod_terminating(p):
                    self._delete(s, p)
            elif (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
                partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0))
                if not any(pod_terminating(p) for p in pods.values()):
                    for i in sorted(pods, reverse=True):
                        if i < partition:
                            break
                        p = pods[i]
                        if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                            self._delete(s, p)
                            break
        self._status(key, revision)

    def _create(self, s: dict, i: int, revision: str) -> None:
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        spec = s.get("spec") or {}
        pod = _pod_from_template(spec.get("template"), ns, f"{name}-{i}", s, "StatefulSet")
        labels = pod["metadata"]["labels"]
        labels.update({"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                       "apps.kubernetes.io/pod-index": str(i)})
        pod["spec"]["hostname"] = f"{name}-{i}"
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        vols = [v for v in pod["spec"].get("volumes") or []]
        for vct in spec.get("volumeClaimTemplates") or []:
            vols = [v for v in vols if v.get("name") != vct["metadata"]["name"]]
            vols.append({"name": vct["metadata"]["name"],
                         "persistentVolumeClaim": {"claimName": self._claim(vct, name, i)}})
        if vols:
            pod["spec"]["volumes"] = vols
        try:
            self.store.create("pods", pod)
        except Exception as exc:
            if getattr(exc, "code", None) == 409:
                return
            raise
        self.rec.event(s | {"kind": "StatefulSet", "apiVersion": "apps/v1"}, "Normal", "SuccessfulCreate",
                       f"create Pod {name}-{i} in StatefulSet {name} successful", "statefulset-controller")

    def _delete(self, s: dict, p: dict) -> None:
        try:
            self.store.delete("pods", p["metadata"]["namespace"], p["metadata"]["name"])
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
            return
        self.rec.event(s | {"kind": "StatefulSet", "apiVersion": "apps/v1"}, "Normal", "SuccessfulDelete",
                       f"delete Pod {p['metadata']['name']} in StatefulSet {s['metadata']['name']} successful",
                       "statefulset-controller")

    def _status(self, key: tuple, revision: str) -> None:
        s = self.inf.get(self.RES, *key)
        if s is None:
            return
        pods = self.inf.pods_of(s["metadata"]["uid"])
        cur = s.get("status") or {}
        current_rev = cur.get("currentRevision") or revision
        updated = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision)
        st = {"observedGeneration": s["metadata"].get("generation", 1), "replicas": len(pods),
              "readyReplicas": sum(1 for p in pods if pod_ready(p)),
              "availableReplicas": sum(1 for p in pods if pod_ready(p) and not pod_terminating(p)),
              "currentReplicas": sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == current_rev),
              "updatedReplicas": updated, "currentRevision": current_rev, "updateRevision": revision,
              "collisionCount": 0}
        replicas = int((s.get("spec") or {}).get("replicas", 1))
        if updated == replicas and len(pods) == replicas:
            st["currentRevision"] = revision
            st["currentReplicas"] = updated
        if cur == st:
            return
        ss = self.store.get(self.RES, *key)
        ss["status"] = st
        self.store.update(self.RES, ss)


# -- DaemonSet -------------------------------------------------------------------------------
DS_TOLERATIONS = [
    {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": TAINT_DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": TAINT_PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
    {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
]


def daemon_tolerations(spec: dict) -> list[dict]:
    """util.AddOrUpdateDaemonPodTolerations (no out-of-service toleration, as upstream)."""
    tols = list(spec.get("tolerations") or [])
    extra = list(DS_TOLERATIONS)
    if spec.get("hostNetwork"):
        extra.append({"key": TAINT_NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})
    for t in extra:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tols):
            tols.append(dict(t))
    return tols


class DaemonSetController(_Base):
    RES = "daemonsets.apps"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw, name="daemonset")
        self.inf.on(self.RES, lambda et, o: self.q.add((o["metadata"]["namespace"], o["metadata"]["name"])))
        self.inf.on("pods", self._on_pod)
        self.inf.on("nodes", self._on_node)
        self._node_sig: dict[str, Any] = {}
        self._backoff: dict[tuple, float] = {}

    def start(self) -> None:
        for d in self.inf.items(self.RES):
            self.q.add((d["metadata"]["namespace"], d["metadata"]["name"]))

    def _on_pod(self, etype: str, pod: dict) -> None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "DaemonSet":
            self.q.add((pod["metadata"]["namespace"], ref["name"]))

    def _on_node(self, etype: str, node: dict) -> None:
        name = node["metadata"]["name"]
        sig = None if etype == "DELETED" else (
            repr((node.get("spec") or {}).get("taints")), repr((node.get("metadata") or {}).get("labels")),
            (node.get("spec") or {}).get("unschedulable"))
        if self._node_sig.get(name) == sig:
            return
        self._node_sig[name] = sig
        for d in self.inf.items(self.RES):
            self.q.add((d["metadata"]["namespace"], d["metadata"]["name"]))

    @staticmethod
    def _node_of(pod: dict) -> str | None:
        if (pod.get("spec") or {}).get("nodeName"):
            return pod["spec"]["nodeName"]
        terms = (((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                  .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
        for t in terms:
            for f in t.get("matchFields") or []:
                if f.get("key") == "metadata.name" and f.get("values"):
                    return f["values"][0]
        return None

    def should_run(self, template_spec: dict, node: dict) -> tuple[bool, bool]:
        """(shouldRun, shouldContinueRunning) as NodeShouldRunDaemonPod computes them."""
        labels = (node.get("metadata") or {}).get("labels") or {}
        for k, v in (template_spec.get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return False, False
        terms = ((((template_spec.get("affinity") or {}).get("nodeAffinity") or {})
                  .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms"))
        if terms and not any(all(_expr_matches(e, labels) for e in t.get("matchExpressions") or []) for t in terms):
            return False, False
        tols = daemon_tolerations(template_spec)
        taints = (node.get("spec") or {}).get("taints") or []
        fits = all(tolerates(tols, t) for t in taints if t.get("effect") in ("NoSchedule", "NoExecute"))
        cont = all(tolerates(tols, t) for t in taints if t.get("effect") == "NoExecute")
        return fits, cont

    def sync(self, key: tuple) -> None:
        ds = self.inf.get(self.RES, *key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        ns, name = key
        tspec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        h = template_hash((ds.get("spec") or {}).get("template") or {})
        by_node: dict[str, list[dict]] = {}
        for p in self.inf.pods_of(ds["metadata"]["uid"]):
            n = self._node_of(p)
            if n:
                by_node.setdefault(n, []).append(p)
        now = self.clock.now()
        old_ready: list[dict] = []
        unavailable = 0
        for (_, node_name), node in self.inf.cache["nodes"].items():
            run, cont = self.should_run(tspec, node)
            pods = by_node.get(node_name, [])
            live = [p for p in pods if not pod_terminating(p)]
            if run and not pods:
                if self._backoff.get((key, node_name), 0) <= now:
                    self._create(ds, node_name, h)
                unavailable += 1
                continue
            if not cont:
                for p in live:
                    self._delete(p)
                continue
            failed = [p for p in live if pod_phase(p) == "Failed"]
            for p in failed:
                self._delete(p)
                self._backoff[(key, node_name)] = now + 10
                self.q.add_after(key, 10)
            live = [p for p in live if p not in failed]
            if len(live) > 1:
                live.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
                for p in live[1:]:
                    self._delete(p)
                live = live[:1]
            if run or cont:
                if not live or not pod_ready(live[0]):
                    unavailable += 1
                    for p in live:
                        if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != h:
                            self._delete(p)  # old and unavailable: replace right away
                elif (live[0]["metadata"].get("labels") or {}).get("controller-revision-hash") != h:
                    old_ready.append(live[0])
        # RollingUpdate: replace ready old pods while fewer than maxUnavailable are unavailable
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and old_ready:
            nodes_total = sum(1 for n in self.inf.cache["nodes"].values() if self.should_run(tspec, n)[1])
            max_unavail = _resolve((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), nodes_total, True) or 1
            for p in sorted(old_ready, key=lambda p: p["spec"].get("nodeName") or ""):
                if unavailable >= max_unavail:
                    break
                self._delete(p)
                unavailable += 1
        self._status(key, h, tspec)

    def _create(self, ds: dict, node: str, h: str) -> None:
        ns, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        pod = _pod_from_template((ds.get("spec") or {}).get("template"), ns, "", ds, "DaemonSet")
        pod["metadata"]["labels"]["controller-revision-hash"] = h
        pod["metadata"]["labels"]["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
        spec = pod["spec"]
        spec["tolerations"] = daemon_tolerations(spec)
        aff = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
        created = self._create_pod(pod, name + "-")
        if created:
            self.rec.event(ds | {"kind": "DaemonSet", "apiVersion": "apps/v1"}, "Normal", "SuccessfulCreate",
                           f"Created pod: {created['metadata']['name']}", "daemonset-controller")

    def _delete(self, p: dict) -> None:
        try:
            self.store.delete("pods", p["metadata"]["namespace"], p["metadata"]["name"])
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise

    def _status(self, key: tuple, h: str, tspec: dict) -> None:
        ds = self.inf.get(self.RES, *key)
        if ds is None:
            return
        desired = current = ready = updated = miss = 0
        pods = self.inf.pods_of(ds["metadata"]["uid"])
        by_node: dict[str, list[dict]] = {}
        for p in pods:
            n = self._node_of(p)
            if n:
                by_node.setdefault(n, []).append(p)
        for (_, node_name), node in self.inf.cache["nodes"].items():
            run, cont = self.should_run(tspec, node)
            here = by_node.get(node_name, [])
            if run:
                desired += 1
                if here:
                    current += 1
                    if pod_ready(here[0]):
                        ready += 1
                    if (here[0]["metadata"].get("labels") or {}).get("controller-revision-hash") == h:
                        updated += 1
            elif here:
                miss += 1
        st = {"currentNumberScheduled": current, "desiredNumberScheduled": desired, "numberMisscheduled": miss,
              "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": updated,
              "observedGeneration": ds["metadata"].get("generation", 1)}
        if desired - ready:
            st["numberUnavailable"] = desired - ready
        if not ready:
            st.pop("numberAvailable")
        if (ds.get("status") or {}) == st:
            return
        d = self.store.get(self.RES, *key)
        d["status"] = st
        self.store.update(self.RES, d)
