"""The default/kubernetes endpoints (lease reconciler) and what CoreDNS / kube-proxy make of them."""

from k8s_twin_helpers import advance_until, container_state, run, settled_twin


def _ips(twin):
    ep = twin.store.get("endpoints", "default", "kubernetes")
    assert len(ep["subsets"]) == 1
    assert ep["subsets"][0]["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]
    assert ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    ips = [a["ip"] for a in ep["subsets"][0]["addresses"]]
    sl = twin.store.get("endpointslices.discovery.k8s.io", "default", "kubernetes")
    assert sl["addressType"] == "IPv4"
    assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert [e["addresses"][0] for e in sl["endpoints"]] == ips
    assert all(e["conditions"] == {"ready": True} for e in sl["endpoints"])
    return ips


def _slices(twin):
    return {s["metadata"]["name"]: (s["addressType"], [e["addresses"][0] for e in s["endpoints"]])
            for s in twin.store.list("endpointslices.discovery.k8s.io", namespace="default",
                                     label_selector="kubernetes.io/service-name=kubernetes")}


def test_service_and_initial_endpoints():
    async def main():
        twin = await settled_twin()
        svc = twin.store.get("services", "default", "kubernetes")
        assert svc["spec"]["clusterIP"] == "10.96.0.1"
        assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]
    run(main())


def test_dead_apiserver_ip_dropped_within_25s():
    async def main():
        twin = await settled_twin()
        twin.power_off("cp-03")
        took = await advance_until(twin, lambda: "192.168.1.73" not in _ips(twin), 60, step=0.5)
        assert took is not None and took <= 25
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72"]
        # and it comes back when the apiserver runs again
        twin.power_on("cp-03")
        took = await advance_until(twin, lambda: "192.168.1.73" in _ips(twin), 120)
        assert took is not None and 45 <= took <= 45 + 11
    run(main())


def test_manual_patch_is_reverted_while_an_apiserver_advertises():
    async def main():
        twin = await settled_twin()
        # the seed story's kubectl patch
        twin.store.patch("endpoints", "default", "kubernetes", {"subsets": [{"addresses": [{"ip": "192.168.1.253"}],
                         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}, "strategic")
        extra = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "kubernetes-manual", "namespace": "default",
                              "labels": {"kubernetes.io/service-name": "kubernetes"}},
                 "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.1.253"]}], "ports": []}
        twin.store.create("endpointslices.discovery.k8s.io", extra)
        assert [a["ip"] for a in twin.store.get("endpoints", "default", "kubernetes")["subsets"][0]["addresses"]] == \
            ["192.168.1.253"]
        took = await advance_until(twin, lambda: [a["ip"] for a in twin.store.get(
            "endpoints", "default", "kubernetes")["subsets"][0]["addresses"]] != ["192.168.1.253"], 30, step=0.5)
        assert took is not None and took <= 10.5
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]
        # the apiserver reads and writes only the slice named kubernetes (endpointsadapter.go): another
        # slice with the label is left alone, whatever it holds
        assert _slices(twin)["kubernetes-manual"] == ("IPv4", ["192.168.1.253"])
    run(main())


def test_dual_stack_apiservers_keep_a_secondary_family_slice():
    """KEP-2438: dual-stack apiservers lease their IPv6 address too and keep a second slice of addressType
    IPv6; the Endpoints and the slice named kubernetes stay IPv4. Deleted, the IPv6 slice comes back."""
    async def main():
        twin = await settled_twin()
        v6 = {"cp-01": "fd00:192:168:1::71", "cp-02": "fd00:192:168:1::72", "cp-03": "fd00:192:168:1::73"}
        twin.dual_stack(v6)
        svc = twin.store.get("services", "default", "kubernetes")
        assert svc["spec"]["ipFamilies"] == ["IPv4", "IPv6"] and svc["spec"]["ipFamilyPolicy"] == "RequireDualStack"
        assert svc["spec"]["clusterIPs"] == ["10.96.0.1", "fd00:10:96::1"]
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]
        assert _slices(twin)["kubernetes-ipv6"] == ("IPv6", sorted(v6.values()))
        twin.store.delete("endpointslices.discovery.k8s.io", "default", "kubernetes-ipv6")
        took = await advance_until(twin, lambda: "kubernetes-ipv6" in _slices(twin), 30, step=0.5)
        assert took is not None and took <= 10.5
        # a dead apiserver's secondary lease expires like its primary one
        twin.power_off("cp-03")
        took = await advance_until(twin, lambda: "fd00:192:168:1::73" not in _slices(twin)["kubernetes-ipv6"][1], 60,
                                   step=0.5)
        assert took is not None and took <= 25
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72"]
    run(main())


def test_slice_family_follows_the_addresses():
    """endpointsadapter.go: addressType IPv6 only when every address is IPv6; a change is delete + create."""
    async def main():
        twin = await settled_twin()
        before = twin.store.get("endpointslices.discovery.k8s.io", "default", "kubernetes")["metadata"]["uid"]
        for name, ip in (("cp-01", "fd00::71"), ("cp-02", "fd00::72"), ("cp-03", "fd00::73")):
            twin.set_advertise_address(name, ip)
        await twin.advance(30)
        sl = twin.store.get("endpointslices.discovery.k8s.io", "default", "kubernetes")
        assert sl["addressType"] == "IPv6" and sl["metadata"]["uid"] != before
        assert [e["addresses"][0] for e in sl["endpoints"]] == ["fd00::71", "fd00::72", "fd00::73"]
    run(main())


def test_without_quorum_a_stale_address_stays():
    async def main():
        twin = await settled_twin()
        twin.lose_etcd_quorum()
        twin.power_off("cp-03")
        await twin.advance(300)
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]
        # a manual patch is not reverted either: nobody can write
        twin.restore_etcd_quorum()
        took = await advance_until(twin, lambda: "192.168.1.73" not in _ips(twin), 30)
        assert took is not None and took <= 10.5
    run(main())


def test_real_quorum_loss_freezes_endpoints_too():
    async def main():
        twin = await settled_twin()
        twin.power_off("cp-02")
        twin.power_off("cp-03")  # 1 of 3 etcd members: no quorum
        await twin.advance(300)
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]
        assert twin.control_plane.etcd_quorum() is False
    run(main())


def _dns_and_proxy(twin):
    return [p for p in twin.pods("kube-system")
            if p["metadata"]["labels"].get("k8s-app") in ("kube-dns", "kube-proxy")]


def test_coredns_and_kube_proxy_crashloop_after_the_control_plane_moves_and_recover_after_fix_and_restart():
    """Phase 2 of the seed story."""
    async def main():
        twin = await settled_twin()
        assert all(container_state(p) == "Running" for p in _dns_and_proxy(twin))
        # the control plane moves while etcd has no quorum (the others are down): the endpoints keep
        # the old addresses, nothing answers there any more
        twin.lose_etcd_quorum()
        twin.power_off("cp-02")
        twin.power_off("cp-03")
        twin.set_node_address("cp-01", "192.168.1.253")
        twin.set_advertise_address("cp-01", "192.168.1.253")
        await twin.advance(600)
        assert _ips(twin) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]
        pods = [p for p in _dns_and_proxy(twin) if p["spec"]["nodeName"] not in ("cp-02", "cp-03")]
        assert pods
        for p in pods:
            cs = p["status"]["containerStatuses"][0]
            assert cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" or \
                (cs["state"].get("running") and not cs["ready"]), (p["metadata"]["name"], cs)
            assert cs["restartCount"] >= 3 and cs["ready"] is False
            assert cs["lastState"]["terminated"]["reason"] == "Error"
        assert twin.store.get("deployments.apps", "kube-system", "coredns")["status"].get("readyReplicas", 0) == 0
        # the seed story's manual Endpoints patch does not help: kube-proxy reads the EndpointSlice,
        # and the pods keep what they captured at start
        twin.store.patch("endpoints", "default", "kubernetes", {"subsets": [{"addresses": [{"ip": "192.168.1.253"}],
                         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}, "strategic")
        await twin.advance(120)
        assert all(not p["status"]["containerStatuses"][0]["ready"] for p in _dns_and_proxy(twin)
                   if p["spec"]["nodeName"] not in ("cp-02", "cp-03"))
        # the fix: quorum back, the apiserver advertises the new address -> endpoints rewritten
        twin.restore_etcd_quorum()
        twin.power_on("cp-02")
        twin.power_on("cp-03")
        await twin.advance(120)
        assert "192.168.1.253" in _ips(twin) and "192.168.1.71" not in _ips(twin)
        # ... but the pods stay broken until restarted
        still = [p for p in _dns_and_proxy(twin) if not p["status"]["containerStatuses"][0]["ready"]]
        assert still
        # rollout restart coredns (the PATCH kubectl sends) and delete the kube-proxy pods
        twin.store.patch("deployments.apps", "kube-system", "coredns", {"spec": {"template": {"metadata": {
            "annotations": {"kubectl.kubernetes.io/restartedAt": twin.clock.now_iso()}}}}}, "strategic")
        for p in twin.pods("kube-system", "k8s-app=kube-proxy"):
            twin.store.delete("pods", "kube-system", p["metadata"]["name"])
        took = await advance_until(twin, lambda: all(
            container_state(p) == "Running" and p["status"]["containerStatuses"][0]["ready"]
            for p in _dns_and_proxy(twin)) and len(_dns_and_proxy(twin)) == 2 + 7, 300)
        assert took is not None
        d = twin.store.get("deployments.apps", "kube-system", "coredns")
        st = d["status"]
        assert st["observedGeneration"] == d["metadata"]["generation"]
        assert st["updatedReplicas"] == st["replicas"] == st["readyReplicas"] == st["availableReplicas"] == 2
        prog = next(c for c in st["conditions"] if c["type"] == "Progressing")
        assert prog["reason"] == "NewReplicaSetAvailable"
    run(main())
