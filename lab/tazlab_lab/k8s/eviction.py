"""The eviction subresource (``POST .../pods/<name>/eviction``) and its PodDisruptionBudget checks.

``pkg/registry/core/pod/storage/eviction.go`` (EvictionREST.Create): a pod that is Succeeded, Failed,
Pending or already terminating is deleted without looking at budgets; otherwise the one
PodDisruptionBudget matching the pod must allow a disruption (its ``status.disruptionsAllowed`` is
decremented and the pod recorded in ``status.disruptedPods``), more than one budget is refused; the
pod gets the ``DisruptionTarget`` condition, then it is deleted with the eviction's DeleteOptions.

The API server (``server.py``) decodes and checks the Eviction body; everything here runs in one
store transaction (``store.transaction()``), so no other write lands between the budget check and
the delete.
"""

from __future__ import annotations

from typing import Any

from .errors import Forbidden, TooManyRequests
from .objects import jcopy
from .store import Store, delete_kwargs

__all__ = ["evict"]


def evict(store: Store, namespace: str, name: str, options: dict) -> dict | None:
    """Evict the pod; ``options`` are the Eviction's (checked) DeleteOptions.

    Returns None when the pod was evicted, or the ``Status`` object to answer with instead (more than
    one budget: code 500, returned as a Status, not as an error); raises ``ApiError`` (404, 429, 403)."""
    with store.transaction():
        pod = store.get("pods", namespace, name, copy=False)
        phase = (pod.get("status") or {}).get("phase")
        ignore_pdb = phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))
        if not ignore_pdb:
            pdbs = store.pdbs_for_pod(pod)
            if len(pdbs) > 1:  # returned as a Status object, not as an error: no reason, code 500
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "This pod has more than one PodDisruptionBudget, which the "
                                   "eviction subresource does not support.", "code": 500}
            if pdbs:
                check_and_decrement(store, pdbs[0], pod)
        if not options.get("dryRun"):
            add_disruption_condition(store, namespace, name)
        store.delete("pods", namespace, name, **delete_kwargs(options))
    return None


def add_disruption_condition(store: Store, ns: str, name: str) -> None:
    """addConditionAndDeletePod: the DisruptionTarget condition (PodDisruptionConditions, GA in 1.31)."""
    pod = store.get("pods", ns, name)
    status = pod.setdefault("status", {})
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionTarget"), None)
    cond = {"type": "DisruptionTarget", "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == "True"
            and old.get("lastTransitionTime") else store.clock.now_iso(),
            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
    conds.append(cond)
    status["conditions"] = conds
    store.update("pods", pod, subresource="status")


def check_and_decrement(store: Store, pdb: dict, pod: dict) -> None:
    """checkAndDecrement: refuse (429/403) unless the budget allows one more disruption, then spend it."""
    name = pdb["metadata"]["name"]
    st: dict[str, Any] = pdb.get("status") or {}
    msg = "Cannot evict pod as it would violate the pod's disruption budget."
    if st.get("observedGeneration", 0) < pdb["metadata"].get("generation", 0):
        raise TooManyRequests(msg, {"causes": [{"reason": "DisruptionBudget", "message":
                                                f"The disruption budget {name} is still being processed by "
                                                f"the server."}], "retryAfterSeconds": 10})
    if st.get("disruptionsAllowed", 0) < 0:
        raise Forbidden(f"poddisruptionbudgets.policy \"{name}\" is forbidden: pdb disruptions allowed is "
                        f"negative", {"name": name, "group": "policy", "kind": "poddisruptionbudgets"})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or [])
    if not ready:  # an unhealthy pod does not count towards the budget (unhealthyPodEvictionPolicy)
        if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return
        if st.get("desiredHealthy", 0) > 0 and st.get("currentHealthy", 0) >= st.get("desiredHealthy", 0):
            return
    if st.get("disruptionsAllowed", 0) == 0:
        raise TooManyRequests(msg, {"causes": [{"reason": "DisruptionBudget", "message":
                                                f"The disruption budget {name} needs "
                                                f"{st.get('desiredHealthy', 0)} healthy pods and has "
                                                f"{st.get('currentHealthy', 0)} currently"}]})
    new = jcopy(pdb)
    nst = new.setdefault("status", {})
    nst["disruptionsAllowed"] = st.get("disruptionsAllowed", 0) - 1
    nst.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = store.clock.now_iso()
    if nst["disruptionsAllowed"] == 0:
        conds = [c for c in nst.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
        conds.append({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                      "message": "", "observedGeneration": new["metadata"].get("generation", 1),
                      "lastTransitionTime": store.clock.now_iso()})
        nst["conditions"] = conds
    store.update("poddisruptionbudgets.policy", new, subresource="status")
