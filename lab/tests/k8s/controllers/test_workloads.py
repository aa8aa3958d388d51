"""Workload controllers: rollouts, scaling, scheduling constraints, status fields."""

from k8s_twin_helpers import advance_until, events, is_running, run, settled_twin
from tazlab_lab.k8s.controllers.util import pod_terminating


def _restart(twin, res, ns, name):
    twin.store.patch(res, ns, name, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": twin.clock.now_iso()}}}}}, "strategic")


def test_daemonset_rollout_restart_replaces_one_node_at_a_time():
    async def main():
        twin = await settled_twin()
        before = {p["metadata"]["uid"] for p in twin.pods("kube-system", "k8s-app=kube-proxy")}
        assert len(before) == 7
        _restart(twin, "daemonsets.apps", "kube-system", "kube-proxy")
        max_unavailable = 0
        # each old pod takes its grace period (30 s) to go: ~7 x 32 s
        for _ in range(400):
            await twin.advance(1)
            pods = twin.pods("kube-system", "k8s-app=kube-proxy")
            unavailable = 7 - sum(1 for p in pods if is_running(p))
            max_unavailable = max(max_unavailable, unavailable)
            if all(p["metadata"]["uid"] not in before and is_running(p) for p in pods) and len(pods) == 7:
                break
        else:
            raise AssertionError("rollout did not finish")
        assert max_unavailable == 1  # maxUnavailable: 1
        ds = twin.store.get("daemonsets.apps", "kube-system", "kube-proxy")
        st = ds["status"]
        assert st["observedGeneration"] == ds["metadata"]["generation"] == 2
        assert st["desiredNumberScheduled"] == st["updatedNumberScheduled"] == st["numberReady"] == 7
        assert "numberUnavailable" not in st
    run(main())


def test_daemonset_status_on_an_unreachable_node():
    async def main():
        twin = await settled_twin()
        twin.power_off("worker-new-04")
        await twin.advance(120)
        st = twin.store.get("daemonsets.apps", "longhorn-system", "longhorn-manager")["status"]
        # shouldRun is false on a node with unreachable:NoSchedule, the pod keeps running there (misscheduled)
        assert st["desiredNumberScheduled"] == 3 and st["numberMisscheduled"] == 1
        pods = twin.pods("longhorn-system", "app=longhorn-manager")
        assert len(pods) == 4 and not any(pod_terminating(p) for p in pods)
        tol = next(p for p in pods if p["spec"]["nodeName"] == "worker-new-04")["spec"]["tolerations"]
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in tol
        assert not any(t.get("key") == "node.kubernetes.io/out-of-service" for t in tol)
    run(main())


def test_deployment_scaling_anti_affinity_and_failed_scheduling():
    async def main():
        twin = await settled_twin()
        # blog: required anti-affinity on hostname; 4 workers -> at most 4 pods run
        twin.store.patch("deployments.apps", "apps", "blog", {"spec": {"replicas": 5}}, "merge")
        await twin.advance(30)
        pods = twin.pods("apps", "app=blog")
        assert len(pods) == 5
        placed = [p for p in pods if p["spec"].get("nodeName")]
        assert len({p["spec"]["nodeName"] for p in placed}) == len(placed) == 4
        pending = next(p for p in pods if not p["spec"].get("nodeName"))
        cond = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        msg = events(twin, "apps", "FailedScheduling", pending["metadata"]["name"])[0]["message"]
        assert msg.startswith("0/7 nodes are available: ")
        assert "3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane}" in msg
        assert "4 node(s) didn't match pod anti-affinity rules" in msg
        d = twin.store.get("deployments.apps", "apps", "blog")
        assert d["status"]["availableReplicas"] == 4 and d["status"]["unavailableReplicas"] == 1
        # scale back: the pending pod goes first
        twin.store.patch("deployments.apps", "apps", "blog", {"spec": {"replicas": 4}}, "merge")
        await twin.advance(10)
        pods = twin.pods("apps", "app=blog")
        assert len(pods) == 4 and all(is_running(p) for p in pods)
        d = twin.store.get("deployments.apps", "apps", "blog")
        assert next(c for c in d["status"]["conditions"] if c["type"] == "Available")["status"] == "True"
    run(main())


def test_progress_deadline_exceeded_when_a_rollout_cannot_finish():
    async def main():
        twin = await settled_twin()
        twin.store.patch("deployments.apps", "apps", "whoami", {"spec": {"progressDeadlineSeconds": 60, "template": {
            "spec": {"nodeSelector": {"disktype": "ssd"}}}}}, "strategic")
        await twin.advance(30)
        d = twin.store.get("deployments.apps", "apps", "whoami")
        prog = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
        assert prog["status"] == "True"
        # old pods keep serving (maxUnavailable 25% of 3 = 0)
        assert d["status"]["availableReplicas"] == 3
        took = await advance_until(twin, lambda: next(c for c in twin.store.get("deployments.apps", "apps", "whoami")[
            "status"]["conditions"] if c["type"] == "Progressing")["reason"] == "ProgressDeadlineExceeded", 200)
        assert took is not None
        prog = next(c for c in twin.store.get("deployments.apps", "apps", "whoami")["status"]["conditions"]
                    if c["type"] == "Progressing")
        assert prog["status"] == "False" and prog["message"].endswith("has timed out progressing.")
    run(main())


def test_recreate_strategy_waits_for_old_pods():
    async def main():
        twin = await settled_twin()
        old = twin.pods("traefik")[0]
        _restart(twin, "deployments.apps", "traefik", "traefik")
        await twin.advance(1)
        pods = twin.pods("traefik")
        # the old pod is terminating (grace 60 s); no new pod exists yet
        assert [p["metadata"]["uid"] for p in pods] == [old["metadata"]["uid"]] and pod_terminating(pods[0])
        took = await advance_until(twin, lambda: any(is_running(p) and p["metadata"]["uid"] != old["metadata"]["uid"]
                                                     for p in twin.pods("traefik")), 180)
        assert took is not None and took >= 59
    run(main())
