"""The seed story's node failure, timed on the simulated clock with upstream defaults.

Traefik (one replica, acme.json on a Longhorn RWO PVC) runs on a worker that loses power:

* NotReady (Ready=Unknown, unreachable taints) within node-monitor-grace-period (50 s) + one
  monitor period, after the last lease renewal;
* the pod is marked for deletion 300 s after the taint (tolerationSeconds injected by admission)
  and stays Terminating: no kubelet confirms it;
* the ReplicaSet's replacement is scheduled at once and stays waiting for its volume (kubectl:
  ``Init:0/1`` because of the chart's init container, as the seed story saw; ``ContainerCreating``
  without one) with a FailedAttachVolume Multi-Attach event;
* with Longhorn's default node-down-pod-deletion-policy (do-nothing) nothing else happens: the zombie
  pod keeps the volume desired on the dead node (its containers still "run" in its status), so no
  detach ever starts (Longhorn docs, node-failure: "stuck in ContainerCreating ... if there is no
  intervene"). After the operator force-deletes the zombie (the seed story's fix) the attach/detach
  controller detaches only after maxWaitForUnmountDuration (6 min), then the replacement runs;
* with node.kubernetes.io/out-of-service on the powered-off node, pod GC force-deletes the zombie
  within 20 s and the detach is immediate: the replacement runs within a minute;
* a StatefulSet pod on that node is never replaced without intervention.
"""

from k8s_twin_helpers import (add_taint, advance_until, container_state, events, is_running, pod_by_uid,
                              ready_status, run, settled_twin, taints, ts)
from tazlab_lab.k8s.controllers.util import pod_terminating

UNREACHABLE = ("node.kubernetes.io/unreachable", "NoExecute")


async def _fail_traefik_node():
    twin = await settled_twin()
    old = twin.pods("traefik")[0]
    node = old["spec"]["nodeName"]
    lease = twin.store.get("leases.coordination.k8s.io", "kube-node-lease", node)
    last_renew = ts(lease["spec"]["renewTime"])
    t0 = twin.clock.now()
    twin.power_off(node)
    return twin, old, node, t0, last_renew


async def _until_terminating(twin, old, node, t0, last_renew):
    # NotReady: after the grace period counted from the last heartbeat, within a monitor period
    took = await advance_until(twin, lambda: ready_status(twin, node) == "Unknown", timeout=120)
    assert took is not None
    not_ready_at = twin.clock.now()
    assert 50 <= not_ready_at - last_renew <= 55 + 1
    assert taints(twin, node) >= {UNREACHABLE, ("node.kubernetes.io/unreachable", "NoSchedule")}
    assert is_running(pod_by_uid(twin, "traefik", old["metadata"]["uid"])) is False  # Ready=False now
    assert pod_by_uid(twin, "traefik", old["metadata"]["uid"])["status"]["phase"] == "Running"
    taint_added = ts(next(t for t in twin.store.get("nodes", None, node)["spec"]["taints"]
                          if (t["key"], t["effect"]) == UNREACHABLE)["timeAdded"])
    # Terminating at ~5 min after the taint, not before
    await twin.advance(taint_added + 299 - twin.clock.now())
    assert not pod_terminating(pod_by_uid(twin, "traefik", old["metadata"]["uid"]))
    took = await advance_until(twin, lambda: pod_terminating(pod_by_uid(twin, "traefik", old["metadata"]["uid"])), 10)
    assert took is not None
    terminating_at = twin.clock.now()
    assert 299 <= terminating_at - taint_added <= 301
    zombie = pod_by_uid(twin, "traefik", old["metadata"]["uid"])
    assert zombie["metadata"]["deletionGracePeriodSeconds"] == 60
    assert any(c["type"] == "DisruptionTarget" and c["reason"] == "DeletionByTaintManager"
               for c in zombie["status"]["conditions"])
    return not_ready_at, terminating_at


def _replacement(twin, old):
    return next((p for p in twin.pods("traefik") if p["metadata"]["uid"] != old["metadata"]["uid"]), None)


def test_default_settings_replacement_stuck_until_force_delete_then_six_minutes():
    async def main():
        twin, old, node, t0, last_renew = await _fail_traefik_node()
        not_ready_at, terminating_at = await _until_terminating(twin, old, node, t0, last_renew)
        await twin.advance(5)
        new = _replacement(twin, old)
        assert new is not None and new["spec"]["nodeName"] not in (node, None)
        assert container_state(new) == "Init:0/1"  # what the seed story saw (the chart's init container)
        multi = events(twin, "traefik", "FailedAttachVolume", new["metadata"]["name"])
        pv = twin.store.get("persistentvolumeclaims", "traefik", "traefik")["spec"]["volumeName"]
        assert multi and multi[0]["message"] == (
            f'Multi-Attach error for volume "{pv}" Volume is already used by pod(s) {old["metadata"]["name"]}')
        assert multi[0]["source"]["component"] == "attachdetach-controller"
        # an hour later nothing has moved: zombie Terminating, volume on the dead node
        await twin.advance(3600)
        assert pod_terminating(pod_by_uid(twin, "traefik", old["metadata"]["uid"]))
        new = _replacement(twin, old)
        assert container_state(new) == "Init:0/1"
        lhv = twin.store.get("volumes.longhorn.io", "longhorn-system", pv)
        assert (lhv["status"]["state"], lhv["status"]["currentNodeID"]) == ("attached", node)
        assert lhv["status"]["robustness"] == "unknown"
        engine = twin.store.get("engines.longhorn.io", "longhorn-system", f"{pv}-e-0")
        assert (engine["spec"]["nodeID"], engine["status"]["currentState"]) == (node, "unknown")
        ws = {w["podName"]: w for w in lhv["status"]["kubernetesStatus"]["workloadsStatus"]}
        assert set(ws) == {old["metadata"]["name"], new["metadata"]["name"]}
        assert ws[new["metadata"]["name"]]["workloadType"] == "ReplicaSet"
        # the kubelet of the new node gives up waiting every 2m3s
        mounts = events(twin, "traefik", "FailedMount", new["metadata"]["name"])
        assert mounts and mounts[0]["message"] == ("Unable to attach or mount volumes: unmounted volumes=[data], "
                                                   "unattached volumes=[data], failed to process volumes=[]: "
                                                   "timed out waiting for the condition")
        assert mounts[0]["source"] == {"component": "kubelet", "host": new["spec"]["nodeName"]}
        assert mounts[0]["count"] > 10
        va = [v for v in twin.store.list("volumeattachments.storage.k8s.io") if v["spec"]["nodeName"] == node]
        assert len(va) == 1 and va[0]["status"]["attached"] is True
        assert va[0]["metadata"]["finalizers"] == ["external-attacher/driver-longhorn-io"]
        # the seed story's fix: force-delete the zombie pod; the 6-minute forced detach follows
        twin.store.delete("pods", "traefik", old["metadata"]["name"], grace_period_seconds=0)
        forced_at = twin.clock.now()
        await twin.advance(5)
        exclusive = [e for e in events(twin, "traefik", "FailedAttachVolume", new["metadata"]["name"])
                     if "exclusively attached" in e["message"]]
        assert exclusive and exclusive[0]["message"] == (
            f'Multi-Attach error for volume "{pv}" Volume is already exclusively attached to one node '
            "and can't be attached to another")
        await twin.advance(forced_at + 359 - twin.clock.now())
        assert not is_running(_replacement(twin, old)), "running before maxWaitForUnmountDuration"
        assert twin.store.get("volumeattachments.storage.k8s.io", None, va[0]["metadata"]["name"])
        took = await advance_until(twin, lambda: is_running(_replacement(twin, old)), timeout=200)
        assert took is not None
        running_at = twin.clock.now()
        # after the detach the kubelet looks again only when its attach-verification back-off (doubling to
        # 2m2s during the Multi-Attach minutes) runs out: Longhorn measured VA deleted 12:34 -> Running 14:50
        assert 360 <= running_at - forced_at <= 360 + 122 + 20
        new = _replacement(twin, old)
        lhv = twin.store.get("volumes.longhorn.io", "longhorn-system", pv)
        assert (lhv["status"]["state"], lhv["status"]["currentNodeID"]) == ("attached", new["spec"]["nodeName"])
        # the replica on the dead node failed: the volume runs degraded until a rebuild
        assert lhv["status"]["robustness"] in ("degraded", "healthy")
        dead = [r for r in twin.store.list("replicas.longhorn.io", "longhorn-system")
                if r["spec"]["volumeName"] == pv and r["spec"]["nodeID"] == node]
        assert dead and all(r["spec"]["failedAt"] for r in dead)
        lhva = twin.store.get("volumeattachments.longhorn.io", "longhorn-system", pv)
        tickets = lhva["spec"]["attachmentTickets"]
        assert [t["nodeID"] for t in tickets.values()] == [new["spec"]["nodeName"]]
        assert all(t["type"] == "csi-attacher" for t in tickets.values())
        assert not [v for v in twin.store.list("volumeattachments.storage.k8s.io") if v["spec"]["nodeName"] == node]
        ok = events(twin, "traefik", "SuccessfulAttachVolume", new["metadata"]["name"])
        assert ok and ok[0]["message"] == f'AttachVolume.Attach succeeded for volume "{pv}" '
        assert not twin.clock.errors
        print(f"\nseed timeline (default): NotReady +{not_ready_at - t0:.0f}s, Terminating +{terminating_at - t0:.0f}s, "
              f"force-deleted +{forced_at - t0:.0f}s, Running +{running_at - t0:.0f}s "
              f"({running_at - forced_at:.0f}s after the force delete)")
    run(main())


def test_out_of_service_taint_replacement_runs_within_a_minute():
    async def main():
        twin, old, node, t0, last_renew = await _fail_traefik_node()
        not_ready_at, terminating_at = await _until_terminating(twin, old, node, t0, last_renew)
        await twin.advance(2)
        assert container_state(_replacement(twin, old)) == "Init:0/1"
        add_taint(twin, node, "node.kubernetes.io/out-of-service", "nodeshutdown", "NoExecute")
        tainted_at = twin.clock.now()
        took = await advance_until(twin, lambda: is_running(_replacement(twin, old)), timeout=60)
        assert took is not None, "replacement not running within one simulated minute"
        assert pod_by_uid(twin, "traefik", old["metadata"]["uid"]) is None  # pod GC force-deleted it
        # the other pods of the dead node went too (non-tolerating ones evicted by the NoExecute taint)
        left = [p for p in twin.store.list("pods", field_selector=f"spec.nodeName={node}")]
        assert all(p["metadata"]["labels"].get("k8s-app") == "kube-proxy" for p in left), \
            [p["metadata"]["name"] for p in left]
        print(f"\nseed timeline (out-of-service): taint at +{tainted_at - t0:.0f}s, Running +{tainted_at - t0 + took:.0f}s "
              f"({took:.0f}s after the taint)")
    run(main())


def test_statefulset_pod_is_never_replaced_without_intervention():
    async def main():
        twin = await settled_twin()
        old = twin.store.get("pods", "data", "postgres-0")
        node = old["spec"]["nodeName"]
        twin.power_off(node)
        await twin.advance(3600)
        pods = twin.pods("data")
        assert [p["metadata"]["name"] for p in pods] == ["postgres-0"]
        assert pods[0]["metadata"]["uid"] == old["metadata"]["uid"]
        assert pod_terminating(pods[0]) and pods[0]["spec"]["nodeName"] == node
        sts = twin.store.get("statefulsets.apps", "data", "postgres")
        assert sts["status"]["readyReplicas"] == 0 and sts["status"]["replicas"] == 1
        # intervention: force delete -> a new postgres-0 with the same PVC, running after the 6-min detach
        twin.store.delete("pods", "data", "postgres-0", grace_period_seconds=0)
        await twin.advance(5)
        new = twin.store.get("pods", "data", "postgres-0")
        assert new["metadata"]["uid"] != old["metadata"]["uid"] and new["spec"]["nodeName"] != node
        assert new["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-postgres-0"
        assert container_state(new) == "ContainerCreating"
        took = await advance_until(twin, lambda: is_running(twin.store.get("pods", "data", "postgres-0")), 420)
        assert took is not None and took >= 355
    run(main())


def test_longhorn_delete_deployment_pod_policy_frees_the_volume():
    async def main():
        twin = await settled_twin()
        twin.set_longhorn_setting("node-down-pod-deletion-policy", "delete-deployment-pod")
        old = twin.pods("traefik")[0]
        node = old["spec"]["nodeName"]
        t0 = twin.clock.now()
        twin.power_off(node)
        def gone_or_terminating():
            p = pod_by_uid(twin, "traefik", old["metadata"]["uid"])
            return p is None or pod_terminating(p)
        took = await advance_until(twin, gone_or_terminating, 420)
        assert took is not None
        await twin.advance(1)
        # Longhorn deleted the VolumeAttachment and force-deleted the pod once it was Terminating
        assert pod_by_uid(twin, "traefik", old["metadata"]["uid"]) is None
        took = await advance_until(twin, lambda: is_running(_replacement(twin, old)), 600)
        assert took is not None
        print(f"\nLonghorn delete-deployment-pod: Running +{twin.clock.now() - t0:.0f}s after power-off")
        # the StatefulSet is not covered by that policy value
        sts = twin.store.get("pods", "data", "postgres-0")
        if sts["spec"]["nodeName"] == node:
            assert pod_terminating(sts)
    run(main())


def test_seed_story_manual_fix_force_delete_pod_and_volumeattachment():
    """Phase 3 of the seed story: force-delete the zombie pod AND delete the stale VolumeAttachment.
    The external-attacher unpublishes (Longhorn detaches from the dead node and drops the ticket), the
    finalizer goes, and the attach/detach controller's state sync (every 60 s) notices the VA is gone:
    the replacement runs well before the 6-minute timer."""
    async def main():
        twin, old, node, t0, last_renew = await _fail_traefik_node()
        await _until_terminating(twin, old, node, t0, last_renew)
        await twin.advance(120)
        new = _replacement(twin, old)
        assert container_state(new) == "Init:0/1"
        pv = twin.store.get("persistentvolumeclaims", "traefik", "traefik")["spec"]["volumeName"]
        stale = next(v for v in twin.store.list("volumeattachments.storage.k8s.io") if v["spec"]["nodeName"] == node)
        twin.store.delete("pods", "traefik", old["metadata"]["name"], grace_period_seconds=0)
        obj, gone = twin.store.delete("volumeattachments.storage.k8s.io", None, stale["metadata"]["name"],
                                      propagation_policy="Background")
        assert gone is False and obj["metadata"]["deletionTimestamp"]  # the finalizer holds it
        fixed_at = twin.clock.now()
        took = await advance_until(twin, lambda: not any(v["metadata"]["name"] == stale["metadata"]["name"]
                                                         for v in twin.store.list("volumeattachments.storage.k8s.io")), 30)
        assert took is not None and took <= 10  # Longhorn detached without the dead node
        lhv = twin.store.get("volumes.longhorn.io", "longhorn-system", pv)
        assert lhv["status"]["state"] in ("detached", "attaching", "attached")
        took = await advance_until(twin, lambda: is_running(_replacement(twin, old)), 240)
        # the ADC notices within its 60 s sync; the kubelet, after minutes of Multi-Attach, verifies the
        # attachment again only when its back-off (up to 2m2s) runs out (Longhorn: VA deleted -> Running 2m16s)
        assert took is not None and twin.clock.now() - fixed_at <= 60 + 122 + 20
        print(f"\nseed story manual fix: Running {twin.clock.now() - fixed_at:.0f}s after deleting pod + VolumeAttachment")
    run(main())


def test_clearing_volumes_in_use_of_a_dead_node_skips_the_six_minute_wait():
    """The attach/detach controller only waits for a volume the node reports in status.volumesInUse
    (mounted); once a runbook removes it from the dead node's status, the detach is immediate."""
    async def main():
        twin, old, node, t0, last_renew = await _fail_traefik_node()
        await _until_terminating(twin, old, node, t0, last_renew)
        pv = twin.store.get("persistentvolumeclaims", "traefik", "traefik")["spec"]["volumeName"]
        n = twin.store.get("nodes", None, node)
        assert f"kubernetes.io/csi/driver.longhorn.io^{pv}" in n["status"]["volumesInUse"]
        assert any(v["name"].endswith(pv) for v in n["status"]["volumesAttached"])
        twin.store.delete("pods", "traefik", old["metadata"]["name"], grace_period_seconds=0)
        await twin.advance(30)
        assert not is_running(_replacement(twin, old))
        n = twin.store.get("nodes", None, node)
        n["status"]["volumesInUse"] = [v for v in n["status"]["volumesInUse"] if not v.endswith(pv)]
        twin.store.update("nodes", n)
        took = await advance_until(twin, lambda: is_running(_replacement(twin, old)), 200)
        # detached at once; the replacement (waiting since the eviction) starts at its next verification retry
        assert took is not None and took <= 122 + 15
        n = twin.store.get("nodes", None, node)
        assert not any(v["name"].endswith(pv) for v in n["status"].get("volumesAttached") or [])
    run(main())


def test_graceful_shutdown_frees_the_volume_quickly():
    """The contrast: a graceful shutdown (kubelet shutdown manager, KEP-2000) leaves the pod Failed
    and its volume unmounted, so the replacement attaches without any 6-minute wait."""
    async def main():
        twin = await settled_twin()
        old = twin.pods("traefik")[0]
        node = old["spec"]["nodeName"]
        delay = twin.shutdown(node)
        assert delay == 30
        await twin.advance(5)
        c = next(c for c in twin.store.get("nodes", None, node)["status"]["conditions"] if c["type"] == "Ready")
        assert (c["status"], c["reason"], c["message"]) == ("False", "KubeletNotReady", "node is shutting down")
        took = await advance_until(twin, lambda: is_running(_replacement(twin, old)), 180)
        assert took is not None and took <= 60
        print(f"\ngraceful shutdown: replacement Running {took + 5:.0f}s after the shutdown began")
        gone = pod_by_uid(twin, "traefik", old["metadata"]["uid"])
        # the old pod stays as Failed (not Terminating), with the shutdown manager's reason
        assert gone is not None and gone["status"]["phase"] == "Failed" and not pod_terminating(gone)
        assert gone["status"]["reason"] == "Terminated"
        await twin.advance(30)
        assert not twin.world[node].powered
        assert twin.store.get("nodes", None, node)["status"].get("volumesInUse") is None
    run(main())
