"""Node failure modes as Kubernetes sees them: power loss, partition, reboot, rejoin."""

from k8s_twin_helpers import advance_until, container_state, is_running, ready_status, run, settled_twin, taints, ts
from tazlab_lab.k8s.controllers.util import node_condition, pod_terminating

WORKER = "worker-new-02"


def _node_view(twin, node):
    n = twin.store.get("nodes", None, node)
    conds = {c["type"]: (c["status"], c.get("reason"), c.get("message")) for c in n["status"]["conditions"]}
    pods = {p["metadata"]["name"]: (p["status"]["phase"], p["metadata"].get("deletionTimestamp") is not None,
                                    next(c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready"))
            for p in twin.store.list("pods", field_selector=f"spec.nodeName={node}")}
    return conds, taints(twin, node), pods


def test_partitioned_node_looks_exactly_like_a_dead_one():
    async def main():
        dead = await settled_twin()
        cut = await settled_twin()
        # same seeds, same history: the two clusters are identical before the fault
        assert _node_view(dead, WORKER) == _node_view(cut, WORKER)
        dead.power_off(WORKER)
        cut.partition(WORKER)
        for step in (30, 30, 60, 300):
            await dead.advance(step)
            await cut.advance(step)
            assert _node_view(dead, WORKER) == _node_view(cut, WORKER)
        conds, tnts, pods = _node_view(cut, WORKER)
        assert conds["Ready"] == ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert tnts >= {("node.kubernetes.io/unreachable", "NoExecute"), ("node.kubernetes.io/unreachable", "NoSchedule")}
        assert pods and all(ready == "False" for _, _, ready in pods.values())
        # evicted pods stay Terminating on both: nobody confirms
        assert any(terminating for _, terminating, _ in pods.values())
        # but the partitioned machine still runs its containers (the world knows, Kubernetes does not)
        assert cut.world[WORKER].running and not dead.world[WORKER].running
    run(main())


def test_heal_after_partition_confirms_evictions_and_keeps_containers():
    async def main():
        twin = await settled_twin()
        ds_before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
                     for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")
                     if p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"}
        twin.partition(WORKER)
        await twin.advance(400)  # evicted: Terminating
        assert any(pod_terminating(p) for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}"))
        twin.heal(WORKER)
        took = await advance_until(twin, lambda: ready_status(twin, WORKER) == "True", 30)
        assert took is not None and took <= 10
        await twin.advance(70)  # grace periods of the evicted pods run out, the kubelet confirms
        left = twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")
        assert left and all(not pod_terminating(p) for p in left)
        assert {p["metadata"]["name"] for p in left} == set(ds_before)
        # containers never stopped: no restart
        assert {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"] for p in left} == ds_before
        assert ("node.kubernetes.io/unreachable", "NoExecute") not in taints(twin, WORKER)
    run(main())


def test_power_on_rejoins_and_daemonset_pods_come_back():
    async def main():
        twin = await settled_twin()
        ds_pods = {p["metadata"]["name"] for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")
                   if p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"}
        assert {n.split("-")[0] + "-" + n.split("-")[1] for n in ds_pods} >= {"kube-proxy", "longhorn-manager"} or ds_pods
        twin.power_off(WORKER)
        await twin.advance(900)
        lhn = twin.store.get("nodes.longhorn.io", "longhorn-system", WORKER)
        ready = next(c for c in lhn["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "KubernetesNodeNotReady")
        twin.power_on(WORKER)
        await twin.advance(40)
        assert ready_status(twin, WORKER) == "Unknown"  # still booting (45 s)
        took = await advance_until(twin, lambda: ready_status(twin, WORKER) == "True", 30)
        assert took is not None
        await twin.advance(30)
        pods = twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")
        # the evicted Deployment pods were confirmed deleted; the DaemonSet pods restarted in place
        assert {p["metadata"]["name"] for p in pods} == ds_pods
        for p in pods:
            assert is_running(p), (p["metadata"]["name"], container_state(p))
            assert p["status"]["containerStatuses"][0]["restartCount"] == 1
        assert not taints(twin, WORKER) & {("node.kubernetes.io/unreachable", "NoExecute"),
                                          ("node.kubernetes.io/unreachable", "NoSchedule")}
        lhn = twin.store.get("nodes.longhorn.io", "longhorn-system", WORKER)
        assert next(c for c in lhn["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
        boot = twin.store.get("nodes", None, WORKER)["status"]["nodeInfo"]["bootID"]
        assert boot.endswith("-boot-1")
    run(main())


def test_out_of_service_taint_keeps_daemonset_pods_off_a_returning_node():
    async def main():
        twin = await settled_twin()
        twin.power_off(WORKER)
        await twin.advance(400)
        n = twin.store.get("nodes", None, WORKER)
        n["spec"]["taints"] = n["spec"]["taints"] + [
            {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]
        twin.store.update("nodes", n)
        await twin.advance(60)
        names = {p["metadata"]["name"] for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")}
        # longhorn-manager / csi-plugin do not tolerate out-of-service; kube-proxy tolerates everything
        assert names and all(x.startswith("kube-proxy-") for x in names), names
        twin.power_on(WORKER)
        await twin.advance(120)
        assert ready_status(twin, WORKER) == "True"
        names = {p["metadata"]["name"] for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")}
        assert all(x.startswith("kube-proxy-") for x in names), names
        lhn = twin.store.get("nodes.longhorn.io", "longhorn-system", WORKER)
        ready = next(c for c in lhn["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ManagerPodDown")
        # removing the taint lets the DaemonSets back
        n = twin.store.get("nodes", None, WORKER)
        n["spec"]["taints"] = [t for t in n["spec"]["taints"] if t["key"] != "node.kubernetes.io/out-of-service"]
        twin.store.update("nodes", n)
        await twin.advance(30)
        pods = twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")
        assert any(p["metadata"]["name"].startswith("longhorn-manager-") and is_running(p) for p in pods)
        lhn = twin.store.get("nodes.longhorn.io", "longhorn-system", WORKER)
        assert next(c for c in lhn["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    run(main())


def test_grace_period_is_configurable():
    async def main():
        twin = await settled_twin(node_monitor_grace_period=20)
        lease = twin.store.get("leases.coordination.k8s.io", "kube-node-lease", WORKER)
        assert lease["spec"]["leaseDurationSeconds"] == 40 and lease["spec"]["holderIdentity"] == WORKER
        twin.power_off(WORKER)
        took = await advance_until(twin, lambda: ready_status(twin, WORKER) == "Unknown", 60)
        assert took is not None and took <= 20 + 5
        c = node_condition(twin.store.get("nodes", None, WORKER), "Ready")
        assert c["reason"] == "NodeStatusUnknown"
    run(main())


def test_zone_disruption_modes_stop_taint_based_eviction():
    """Four of seven nodes (one zone) down: PartialDisruption in a small cluster (<= 50 nodes) stops
    new NoExecute taints; every node down: master disruption mode removes them."""
    async def main():
        twin = await settled_twin()
        workers = ["worker-new-01", "worker-new-02", "worker-new-03", "worker-new-04"]
        for w in workers:
            twin.power_off(w)
        await twin.advance(900)
        no_exec = [w for w in workers if ("node.kubernetes.io/unreachable", "NoExecute") in taints(twin, w)]
        assert all(ready_status(twin, w) == "Unknown" for w in workers)
        assert all(("node.kubernetes.io/unreachable", "NoSchedule") in taints(twin, w) for w in workers)
        assert len(no_exec) < len(workers)  # the zone turned PartialDisruption: no more NoExecute taints
        assert set(twin.node_lifecycle.zone_states.values()) == {"PartialDisruption"}
        untainted = [w for w in workers if w not in no_exec]
        for w in untainted:
            pods = twin.store.list("pods", field_selector=f"spec.nodeName={w}")
            assert pods and not any(pod_terminating(p) for p in pods)
        # one node back: 3 of 7 not ready is below 55 %: Normal, the rest get tainted (0.1 node/s)
        twin.power_on(untainted[0])
        await twin.advance(120)
        assert set(twin.node_lifecycle.zone_states.values()) == {"Normal"}
        assert all(("node.kubernetes.io/unreachable", "NoExecute") in taints(twin, w) for w in workers
                   if w != untainted[0])
        # everything down: master disruption mode, NoExecute taints removed
        for n in ["cp-01", "cp-02", "cp-03", untainted[0]]:
            twin.power_off(n)
        await twin.advance(120)
        assert twin.node_lifecycle.all_fully_disrupted
        assert not any(t[1] == "NoExecute" for w in workers for t in taints(twin, w))
    run(main())


def test_eviction_rate_limits_tainting_to_one_node_per_ten_seconds():
    async def main():
        twin = await settled_twin()
        for w in ("worker-new-01", "worker-new-02"):
            twin.power_off(w)
        added = {}
        for _ in range(120):
            await twin.advance(1)
            for w in ("worker-new-01", "worker-new-02"):
                n = twin.store.get("nodes", None, w)
                for t in n["spec"].get("taints") or []:
                    if t["effect"] == "NoExecute":
                        added.setdefault(w, ts(t["timeAdded"]))
        assert len(added) == 2
        assert abs(added["worker-new-01"] - added["worker-new-02"]) >= 10
    run(main())


def test_deleted_node_orphans_are_collected_and_the_kubelet_registers_again_on_boot():
    async def main():
        twin = await settled_twin()
        pods = twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")
        twin.power_off(WORKER)
        await twin.advance(60)
        twin.store.delete("nodes", None, WORKER)
        await twin.advance(20)
        lhn = twin.store.get("nodes.longhorn.io", "longhorn-system", WORKER)
        ready = next(c for c in lhn["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "KubernetesNodeGone")
        # pod GC: orphans (node gone) force-deleted after the 40 s quarantine
        took = await advance_until(twin, lambda: not twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}"), 120)
        assert took is not None and took >= 20
        gone = {p["metadata"]["name"] for p in pods}
        assert not gone & {p["metadata"]["name"] for p in twin.pods()}
        twin.power_on(WORKER)
        took = await advance_until(twin, lambda: ready_status(twin, WORKER) == "True"
                                   if any(n["metadata"]["name"] == WORKER for n in twin.store.list("nodes")) else False, 120)
        assert took is not None
        await twin.advance(60)
        names = {p["metadata"]["name"].rsplit("-", 1)[0] for p in
                 twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")}
        assert {"kube-proxy", "longhorn-manager", "longhorn-csi-plugin"} <= names
    run(main())


def test_out_of_service_on_a_partitioned_node_gives_two_writers():
    """KEP-2268's precondition: the node must be shut down. Tainting a partitioned (running) node moves
    the volume while the old containers still write: the world records the split brain Kubernetes
    cannot see. Fencing (power off) first leaves no such incident."""
    async def main():
        for fence in (False, True):
            twin = await settled_twin()
            node = twin.pods("traefik")[0]["spec"]["nodeName"]
            pv = twin.store.get("persistentvolumeclaims", "traefik", "traefik")["spec"]["volumeName"]
            twin.partition(node)
            await twin.advance(400)
            if fence:
                twin.power_off(node)
            n = twin.store.get("nodes", None, node)
            n["spec"]["taints"] = n["spec"]["taints"] + [
                {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]
            twin.store.update("nodes", n)
            took = await advance_until(twin, lambda: any(is_running(p) for p in twin.pods("traefik")), 120)
            assert took is not None
            split = [i for i in twin.world.incidents if i["kind"] == "split-brain"]
            if fence:
                assert split == []
            else:
                assert split and split[0]["volume"] == pv and split[0]["stillWriting"] == [node]
                assert twin.kubelets.running_users(pv) == {node, twin.pods("traefik")[0]["spec"]["nodeName"]}
                # healing kills the orphaned containers
                twin.heal(node)
                await twin.advance(5)
                assert twin.kubelets.running_users(pv) == {twin.pods("traefik")[0]["spec"]["nodeName"]}
    run(main())


def test_quick_reset_restarts_pods_in_place():
    """A power cycle shorter than the grace period: Kubernetes never sees the node NotReady; every pod
    on it restarts in place (restartCount + 1) with its volume still attached there."""
    async def main():
        twin = await settled_twin()
        node = twin.pods("traefik")[0]["spec"]["nodeName"]
        before = {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"]
                  for p in twin.store.list("pods", field_selector=f"spec.nodeName={node}")}
        twin.reset(node, boot_seconds=20)
        seen_not_ready = False
        for _ in range(120):
            await twin.advance(1)
            seen_not_ready |= ready_status(twin, node) != "True"
        assert not seen_not_ready
        pods = twin.store.list("pods", field_selector=f"spec.nodeName={node}")
        assert {p["metadata"]["uid"] for p in pods} == set(before)
        for p in pods:
            assert is_running(p), (p["metadata"]["name"], container_state(p))
            assert p["status"]["containerStatuses"][0]["restartCount"] == before[p["metadata"]["uid"]] + 1
            assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "Unknown"
        assert len(twin.pods("traefik")) == 1
    run(main())


def test_out_of_service_evicts_daemonset_pods_that_do_not_tolerate_it_and_pod_gc_force_deletes_them():
    """Issue 14 point 5: the taint manager evicts every pod without a matching toleration, DaemonSet pods
    included (their automatic tolerations cover not-ready/unreachable, not out-of-service), and pod GC
    force-deletes them (phase Failed, grace 0) on the not-Ready tainted node. kube-proxy stays: Talos
    deploys it with `{effect: NoExecute, operator: Exists}` (k8stemplates/kube-proxy.go), which tolerates
    the out-of-service taint too - with its Ready condition False, as the node lifecycle controller sets it."""
    async def main():
        twin = await settled_twin()
        on_node = {p["metadata"]["name"]: p for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")}
        ds_names = [n for n in on_node if n.startswith(("longhorn-manager-", "longhorn-csi-plugin-"))]
        assert len(ds_names) == 2, sorted(on_node)
        twin.power_off(WORKER)
        await twin.advance(60)           # NotReady, unreachable taints; nothing evicted yet (300 s)
        n = twin.store.get("nodes", None, WORKER)
        n["spec"]["taints"] = n["spec"]["taints"] + [
            {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]
        twin.store.update("nodes", n)
        await twin.advance(25)           # taint manager at once, pod GC within its 20 s period
        # gone although the kubelet is dead: only a grace-0 delete (pod GC) removes a pod there
        left = {p["metadata"]["name"]: p for p in twin.store.list("pods", field_selector=f"spec.nodeName={WORKER}")}
        assert not any(n in left for n in ds_names), sorted(left)
        assert sorted(left) == [n for n in sorted(on_node) if n.startswith("kube-proxy-")]
        proxy = next(iter(left.values()))
        assert not pod_terminating(proxy)
        assert next(c["status"] for c in proxy["status"]["conditions"] if c["type"] == "Ready") == "False"
    run(main())
