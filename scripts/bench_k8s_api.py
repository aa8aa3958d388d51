"""Benchmark of the Kubernetes API twin at scale: 1,000 nodes and 30,000 pods.

Measures (wall clock):
  * building the store (nodes + pods through store.create, admission included),
  * starting the HTTPS server,
  * listing all pods through a raw HTTPS GET (first and second time: the JSON of each object is cached),
  * listing all pods through the `kubernetes` Python client (typed V1PodList; includes its model parsing),
  * listing the pods of one node by field selector.

Prints numbers; it is not a test.  Run: .venv/bin/python scripts/bench_k8s_api.py [--nodes N --pods M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from tazlab_lab.clock import SimClock  # noqa: E402
from tazlab_lab.k8s.server import KubeApiServer  # noqa: E402
from tazlab_lab.k8s.store import Store  # noqa: E402


def build(nodes: int, pods: int) -> Store:
    store = Store(SimClock())
    for i in range(20):
        store.create("namespaces", {"metadata": {"name": f"ns-{i}"}})
    for i in range(nodes):
        store.create("nodes", {
            "metadata": {"name": f"node-{i:04d}", "labels": {"kubernetes.io/hostname": f"node-{i:04d}",
                                                             "node-role.kubernetes.io/worker": ""}},
            "spec": {"podCIDR": f"10.{i // 250}.{i % 250}.0/24"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                       "addresses": [{"type": "InternalIP", "address": f"192.168.{i // 250}.{i % 250}"}],
                       "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})
    for i in range(pods):
        app = f"app-{i % 300}"
        store.create("pods", {
            "metadata": {"name": f"{app}-{i:05d}", "namespace": f"ns-{i % 20}",
                         "labels": {"app": app, "pod-template-hash": "5d4f8c7b9"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{app}-5d4f8c7b9",
                                              "uid": f"00000000-0000-4000-8000-{i % 300:012d}", "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"nodeName": f"node-{i % nodes:04d}",
                     "containers": [{"name": "main", "image": f"registry.example/{app}:1.2.3",
                                     "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"data-{i}"}}]},
            "status": {"phase": "Running", "podIP": f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
                       "hostIP": f"192.168.{(i % nodes) // 250}.{(i % nodes) % 250}",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0,
                                              "image": f"registry.example/{app}:1.2.3",
                                              "imageID": "", "started": True,
                                              "state": {"running": {"startedAt": "2026-01-25T19:00:00Z"}}}]}})
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=30000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    store = build(args.nodes, args.pods)
    t_build = time.perf_counter() - t0

    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    server = KubeApiServer(store, host="127.0.0.1", port=0, workdir=workdir)
    t1 = time.perf_counter()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    t_start = time.perf_counter() - t1

    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    ctx.load_cert_chain(str(workdir / "admin.crt"), str(workdir / "admin.key"))

    def raw_get(path: str) -> tuple[float, int, int, float]:
        """-> (seconds to the last byte, bytes, items, seconds including the client's json.loads)"""
        t = time.perf_counter()
        with urllib.request.urlopen(server.url + path, context=ctx, timeout=60) as r:
            body = r.read()
        dt = time.perf_counter() - t
        n = len(json.loads(body)["items"])
        return dt, len(body), n, time.perf_counter() - t

    raw1 = raw_get("/api/v1/pods")
    raw2 = raw_get("/api/v1/pods")
    raw_node = raw_get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0007")

    def table_get(path: str) -> tuple[float, int]:
        req = urllib.request.Request(server.url + path, headers={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, context=ctx, timeout=120) as r:
            body = r.read()
        return time.perf_counter() - t, len(json.loads(body)["rows"])

    tab = table_get("/api/v1/pods")

    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    t_kubectl = None
    if kubectl:
        t = time.perf_counter()
        p = subprocess.run([kubectl, f"--kubeconfig={server.kubeconfig_path}", f"--cache-dir={workdir}/kc",
                            "get", "pods", "-A", "--no-headers"], capture_output=True, text=True, timeout=300,
                           check=False)
        t_kubectl = time.perf_counter() - t
        n_kubectl = len(p.stdout.splitlines())

    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig_path), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        v1 = client.CoreV1Api(api)
        t = time.perf_counter()
        pods = v1.list_pod_for_all_namespaces()
        t_typed = time.perf_counter() - t
        n_typed = len(pods.items)
        t = time.perf_counter()
        resp = v1.list_pod_for_all_namespaces(_preload_content=False)
        data = json.loads(resp.data)
        t_untyped = time.perf_counter() - t
        t = time.perf_counter()
        on_node = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-0007")
        t_node = time.perf_counter() - t

    import os

    load = os.getloadavg()[0]
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)

    print(f"store: {args.nodes} nodes, {args.pods} pods, resourceVersion {store.resource_version}; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"  build store (create with admission)      {t_build:7.2f} s")
    print(f"  start HTTPS server (PKI, JSON cache warm) {t_start:6.2f} s")
    print(f"  start total                              {t_build + t_start:7.2f} s   (target < 20 s)")
    print(f"  raw HTTPS GET /api/v1/pods, 1st          {raw1[0]:7.2f} s   {raw1[2]} items, {raw1[1] / 1e6:.1f} MB"
          f"   (target < 2 s); {raw1[3]:.2f} s with the client's json.loads")
    print(f"  raw HTTPS GET /api/v1/pods, 2nd          {raw2[0]:7.2f} s   {raw2[3]:.2f} s with json.loads")
    print(f"  raw HTTPS GET pods on one node           {raw_node[0] * 1000:7.1f} ms  {raw_node[2]} items")
    print(f"  HTTPS GET /api/v1/pods as Table          {tab[0]:7.2f} s   {tab[1]} rows (what kubectl get asks)")
    if t_kubectl is not None:
        print(f"  kubectl get pods -A ({kubectl})  {t_kubectl:7.2f} s   {n_kubectl} lines")
    print(f"  python client list, no model parsing     {t_untyped:7.2f} s   {len(data['items'])} items")
    print(f"  python client list, typed V1PodList      {t_typed:7.2f} s   {n_typed} items")
    print(f"  python client pods on one node (typed)   {t_node * 1000:7.1f} ms  {len(on_node.items)} items")


if __name__ == "__main__":
    main()
