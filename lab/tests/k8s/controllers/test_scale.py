"""The generator's big clusters converge, and the hot paths never list every pod."""

import time

from k8s_twin_helpers import run, track
from tazlab_lab.k8s.cluster import KubeTwin
from tazlab_lab.k8s.scenario import generate_scenario
from tazlab_lab.k8s.controllers.util import pod_terminating


def test_generated_cluster_converges_and_survives_a_node_loss_without_full_pod_scans():
    async def main():
        sc = generate_scenario(nodes=120, pods=3000, volumes=240)
        assert len(sc["nodes"]) == 123 and len(sc["pvcs"]) == 240
        twin = track(KubeTwin(sc))
        twin.start_controllers()
        t0 = time.perf_counter()
        await twin.advance(60)
        settle_wall = time.perf_counter() - t0
        pods = twin.store.list("pods", copy=False)
        assert len(pods) >= 3000
        assert all(p["status"].get("phase") == "Running" for p in pods)
        vols = twin.store.list("volumes.longhorn.io", copy=False)
        assert len(vols) == 240 and all(v["status"]["state"] == "attached" and v["status"]["robustness"] == "healthy"
                                        for v in vols)
        # from here on: count every full listing of pods (no namespace, no field selector)
        scans = []
        real_list = twin.store.list

        def counting_list(res, namespace=None, label_selector=None, field_selector=None, copy=True):
            if res == "pods" and namespace is None and field_selector is None:
                scans.append(res)
            return real_list(res, namespace, label_selector, field_selector, copy)

        twin.store.list = counting_list
        victim = "worker-0007"
        on_victim = [p for p in pods if p["spec"]["nodeName"] == victim]
        twin.power_off(victim)
        t1 = time.perf_counter()
        await twin.advance(600)
        fail_wall = time.perf_counter() - t1
        twin.store.list = real_list
        assert scans == []
        after = twin.store.list("pods", field_selector=f"spec.nodeName={victim}")
        stateless = [p for p in on_victim if p["metadata"]["name"].startswith("web-")]
        assert stateless
        # every evicted Deployment pod got a Running replacement elsewhere
        for p in stateless:
            owner = p["metadata"]["ownerReferences"][0]["name"]
            mates = twin.store.list("pods", namespace=p["metadata"]["namespace"],
                                    label_selector=f"app={owner.rsplit('-', 1)[0]}")
            live = [m for m in mates if not pod_terminating(m) and m["status"]["phase"] == "Running"]
            assert len(live) == 10
        assert all(pod_terminating(p) or p["metadata"]["labels"].get("k8s-app") == "kube-proxy"
                   or p["metadata"]["namespace"] == "longhorn-system" for p in after)
        assert not twin.clock.errors
        print(f"\n123 nodes / {len(pods)} pods / 240 volumes: settle 60 s sim in {settle_wall:.1f} s wall; "
              f"node loss + 600 s sim in {fail_wall:.1f} s wall")
    run(main())
