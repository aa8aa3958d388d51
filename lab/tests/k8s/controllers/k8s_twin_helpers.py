"""Helpers for the controller tests: a settled seed cluster and readable predicates."""

from __future__ import annotations

import asyncio
from typing import Any

from tazlab_lab.k8s.cluster import KubeTwin
from tazlab_lab.k8s.controllers.util import node_condition, parse_ts, pod_ready, pod_terminating


#: every twin a test builds; conftest checks them for controller errors after each test
TWINS: list = []


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def track(twin: KubeTwin) -> KubeTwin:
    TWINS.append(twin)
    return twin


async def settled_twin(scenario: Any = "tazlab", settle: float = 120.0, **kw: Any) -> KubeTwin:
    """The seed cluster with its controllers on the simulated clock, every pod Running."""
    twin = track(KubeTwin(scenario, **kw))
    twin.start_controllers()
    await twin.advance(settle)
    not_running = [p["metadata"]["name"] for p in twin.pods() if not is_running(p)]
    assert not not_running, f"cluster did not settle: {not_running}"
    assert not twin.errors, twin.errors
    return twin


def is_running(pod: dict | None) -> bool:
    return bool(pod) and pod["status"].get("phase") == "Running" and pod_ready(pod) and not pod_terminating(pod)


def container_state(pod: dict) -> str:
    """What kubectl shows in STATUS for a one-container pod."""
    if pod_terminating(pod):
        return "Terminating"
    init = pod["status"].get("initContainerStatuses") or []
    done = sum(1 for c in init if ((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0)
    if init and done < len(init):
        waiting = next(((c.get("state") or {}).get("waiting") or {}).get("reason") for c in init
                       if "terminated" not in (c.get("state") or {}))
        return f"Init:{waiting}" if waiting and waiting != "PodInitializing" else f"Init:{done}/{len(init)}"
    cs = (pod["status"].get("containerStatuses") or [{}])[0]
    state = cs.get("state") or {}
    if "waiting" in state:
        return state["waiting"].get("reason", "Waiting")
    if "running" in state:
        return "Running"
    return pod["status"].get("phase", "Pending")


def ready_status(twin: KubeTwin, node: str) -> str:
    c = node_condition(twin.store.get("nodes", None, node), "Ready")
    return c.get("status") if c else "Unknown"


def taints(twin: KubeTwin, node: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in twin.store.get("nodes", None, node)["spec"].get("taints") or []}


def add_taint(twin: KubeTwin, node: str, key: str, value: str, effect: str) -> None:
    """As ``kubectl taint``: the whole new list in one write."""
    n = twin.store.get("nodes", None, node)
    n["spec"]["taints"] = (n["spec"].get("taints") or []) + [{"key": key, "value": value, "effect": effect}]
    twin.store.update("nodes", n)


def pod_by_uid(twin: KubeTwin, namespace: str, uid: str) -> dict | None:
    return next((p for p in twin.pods(namespace) if p["metadata"]["uid"] == uid), None)


def events(twin: KubeTwin, namespace: str, reason: str, name: str | None = None) -> list[dict]:
    return [e for e in twin.store.list("events", namespace=namespace)
            if e["reason"] == reason and (name is None or e["involvedObject"]["name"] == name)]


async def advance_until(twin: KubeTwin, predicate: Any, timeout: float, step: float = 1.0) -> float | None:
    """Advance until ``predicate()``; return the simulated seconds it took, None on timeout."""
    t0 = twin.clock.now()
    ok = await twin.clock.run_until(predicate, timeout, step)
    return twin.clock.now() - t0 if ok else None


def ts(value: str | None) -> float | None:
    return parse_ts(value)
