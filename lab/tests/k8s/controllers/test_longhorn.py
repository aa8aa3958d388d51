"""Longhorn's side: tickets, engines, replicas, robustness through a node loss and its repair."""

from k8s_twin_helpers import add_taint, advance_until, is_running, run, settled_twin
from tazlab_lab.k8s.controllers.util import va_name

NS = "longhorn-system"


def _vol(twin, pv):
    return twin.store.get("volumes.longhorn.io", NS, pv)


def _replicas(twin, pv):
    return [r for r in twin.store.list("replicas.longhorn.io", NS) if r["spec"]["volumeName"] == pv]


def test_objects_of_an_attached_volume():
    async def main():
        twin = await settled_twin()
        pod = twin.store.get("pods", "data", "postgres-0")
        node = pod["spec"]["nodeName"]
        pvc = twin.store.get("persistentvolumeclaims", "data", "data-postgres-0")
        pv = twin.store.get("persistentvolumes", None, pvc["spec"]["volumeName"])
        name = pv["metadata"]["name"]
        assert pv["spec"]["csi"] == {"driver": "driver.longhorn.io", "volumeHandle": name, "fsType": "ext4",
                                     "volumeAttributes": pv["spec"]["csi"]["volumeAttributes"]}
        assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"] and pvc["status"]["phase"] == "Bound"
        assert "external-attacher/driver-longhorn-io" in pv["metadata"]["finalizers"]
        va = twin.store.get("volumeattachments.storage.k8s.io", None, va_name(name, "driver.longhorn.io", node))
        assert va["status"]["attached"] is True and va["spec"]["attacher"] == "driver.longhorn.io"
        lhva = twin.store.get("volumeattachments.longhorn.io", NS, name)
        ticket = lhva["spec"]["attachmentTickets"][va["metadata"]["name"]]
        assert ticket["type"] == "csi-attacher" and ticket["nodeID"] == node
        assert lhva["status"]["attachmentTicketStatuses"][va["metadata"]["name"]]["satisfied"] is True
        vol = _vol(twin, name)
        assert (vol["status"]["state"], vol["status"]["currentNodeID"], vol["status"]["robustness"]) == \
            ("attached", node, "healthy")
        assert vol["status"]["kubernetesStatus"]["pvcName"] == "data-postgres-0"
        reps = _replicas(twin, name)
        assert len(reps) == 3 and len({r["spec"]["nodeID"] for r in reps}) == 3
        assert all(r["status"]["currentState"] == "running" and not r["spec"]["failedAt"] for r in reps)
        engine = twin.store.get("engines.longhorn.io", NS, f"{name}-e-0")
        assert engine["status"]["currentState"] == "running" and set(engine["status"]["replicaModeMap"].values()) == {"RW"}
        settings = {s["metadata"]["name"]: s["value"] for s in twin.store.list("settings.longhorn.io", NS)}
        assert settings["node-down-pod-deletion-policy"] == "do-nothing"
    run(main())


def test_statefulset_with_out_of_service_then_degraded_then_rebuilt():
    async def main():
        twin = await settled_twin()
        node = twin.store.get("pods", "data", "postgres-0")["spec"]["nodeName"]
        name = twin.store.get("persistentvolumeclaims", "data", "data-postgres-0")["spec"]["volumeName"]
        twin.power_off(node)
        await twin.advance(400)
        assert _vol(twin, name)["status"]["robustness"] == "unknown"
        add_taint(twin, node, "node.kubernetes.io/out-of-service", "nodeshutdown", "NoExecute")
        took = await advance_until(twin, lambda: is_running(twin.store.get("pods", "data", "postgres-0")), 90)
        assert took is not None
        new_node = twin.store.get("pods", "data", "postgres-0")["spec"]["nodeName"]
        assert new_node != node
        vol = _vol(twin, name)
        assert (vol["status"]["state"], vol["status"]["currentNodeID"]) == ("attached", new_node)
        assert vol["status"]["robustness"] == "degraded"
        failed = [r for r in _replicas(twin, name) if r["spec"]["failedAt"]]
        assert [r["spec"]["nodeID"] for r in failed] == [node]
        # replica-replenishment-wait-interval (600 s after the failure), then a rebuild elsewhere
        took = await advance_until(twin, lambda: _vol(twin, name)["status"]["robustness"] == "healthy", 900, step=10)
        assert took is not None
        healthy = [r for r in _replicas(twin, name) if not r["spec"]["failedAt"]]
        assert len(healthy) == 3 and node not in {r["spec"]["nodeID"] for r in healthy}
    run(main())


def test_volume_with_every_replica_node_down_cannot_attach():
    async def main():
        twin = await settled_twin()
        name = twin.store.get("persistentvolumeclaims", "data", "data-postgres-0")["spec"]["volumeName"]
        nodes = {r["spec"]["nodeID"] for r in _replicas(twin, name)}
        # scale the StatefulSet down, then lose every node holding a replica
        twin.store.patch("statefulsets.apps", "data", "postgres", {"spec": {"replicas": 0}}, "merge")
        took = await advance_until(twin, lambda: _vol(twin, name)["status"]["state"] == "detached", 120)
        assert took is not None
        for n in nodes:
            twin.power_off(n)
        await twin.advance(120)
        twin.store.patch("statefulsets.apps", "data", "postgres", {"spec": {"replicas": 1}}, "merge")
        await twin.advance(300)
        pod = twin.store.get("pods", "data", "postgres-0")
        assert not is_running(pod)
        assert pod["spec"]["nodeName"] not in nodes
        vol = _vol(twin, name)
        assert vol["status"]["state"] == "detached" and vol["status"]["robustness"] == "faulted"
    run(main())
