"""Fixtures for the Kubernetes API twin's fidelity tests: a real HTTPS server on loopback, run on its own
event-loop thread so blocking clients (kubectl, the kubernetes Python client) can talk to it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tazlab_lab.clock import SimClock
from tazlab_lab.k8s.server import KubeApiServer
from tazlab_lab.k8s.store import Store

REPO = Path(__file__).resolve().parents[4]


class ApiServerThread:
    """A Store + KubeApiServer on a private event loop in a daemon thread."""

    def __init__(self, workdir: Path, **server_kw: Any):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kube-apiserver-twin", daemon=True)
        self.clock = SimClock()
        self.store = Store(self.clock)
        self.server = KubeApiServer(self.store, host="127.0.0.1", port=0, workdir=workdir, **server_kw)

    def start(self) -> "ApiServerThread":
        self.thread.start()
        self.run(self.server.start())
        return self

    def stop(self) -> None:
        try:
            self.run(self.server.stop(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call a plain function (e.g. a store write) on the server's loop thread and return its result."""
        async def _c() -> Any:
            return fn(*args, **kw)
        return self.run(_c())

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig(self) -> Path:
        return self.server.kubeconfig_path


@pytest.fixture
def apiserver(tmp_path: Path):
    srv = ApiServerThread(tmp_path / "apiserver", bookmark_interval=1.0).start()
    try:
        yield srv
    finally:
        srv.stop()


def _kubectl_120() -> str | None:
    env = os.environ.get("KUBECTL_120")
    if env and os.access(env, os.X_OK):
        return env
    local = REPO / ".cache/tools/kubectl-1.20/usr/bin/kubectl"
    if local.exists():
        return str(local)
    return None


def kubectl_binaries() -> list[tuple[str, str]]:
    """[(label, path)]: kubectl 1.20 always (make tools provides it), plus the machine's kubectl if present."""
    out = []
    k120 = _kubectl_120()
    out.append(("kubectl-1.20", k120 or "MISSING-run-make-tools"))
    system = shutil.which("kubectl", path="/usr/bin:/usr/local/bin")
    if system and os.path.realpath(system) != os.path.realpath(k120 or ""):
        out.append(("kubectl-system", system))
    return out


KUBECTLS = kubectl_binaries()


class Kubectl:
    def __init__(self, binary: str, label: str, apiserver: ApiServerThread, tmp_path: Path):
        self.binary, self.label, self.apiserver = binary, label, apiserver
        self.cache = tmp_path / f"kubectl-cache-{label}"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(apiserver.kubeconfig)}

    def argv(self, *args: str) -> list[str]:
        return [self.binary, f"--cache-dir={self.cache}", "--request-timeout=20s", *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 40) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{self.label} {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)

    def version(self) -> str:
        return subprocess.run([self.binary, "version", "--client"], capture_output=True, text=True).stdout


@pytest.fixture(params=[label for label, _ in KUBECTLS])
def kubectl(request, apiserver, tmp_path):
    path = dict(KUBECTLS)[request.param]
    assert os.access(path, os.X_OK), f"{request.param} not found at {path}: run `make tools` (KUBECTL_120)"
    return Kubectl(path, request.param, apiserver, tmp_path)


# -- seeding objects straight into the store (on the server's loop thread) ------------------------

class Seed:
    def __init__(self, srv: ApiServerThread):
        self.srv = srv
        self.store = srv.store

    def create(self, res: str, obj: dict) -> dict:
        return self.srv.call(self.store.create, res, obj)

    def node(self, name: str, ip: str = "10.0.0.1", taints: list | None = None) -> dict:
        spec = {"podCIDR": "10.244.0.0/24"}
        if taints:
            spec["taints"] = taints
        return self.create("nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": "2026-01-25T20:00:00Z",
                                       "lastTransitionTime": "2026-01-25T19:00:00Z"}],
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Talos (v1.9.5)",
                                    "containerRuntimeVersion": "containerd://2.0.3", "kernelVersion": "6.12.18-talos",
                                    "architecture": "amd64", "operatingSystem": "linux", "machineID": "m",
                                    "systemUUID": "s", "bootID": "b", "kubeProxyVersion": "v1.32.4"}}})

    def pod(self, ns: str, name: str, node: str | None = None, owner: dict | None = None,
            labels: dict | None = None, volumes: list | None = None, phase: str = "Running") -> dict:
        meta: dict = {"name": name, "namespace": ns, "labels": labels or {"app": name}}
        if owner is not None:
            meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                        "controller": True, "blockOwnerDeletion": True}]
        spec: dict = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}
        if node:
            spec["nodeName"] = node
        if volumes:
            spec["volumes"] = volumes
        status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}]}
        if phase == "Running":
            status["podIP"] = "10.244.0.10"
        return self.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                                    "status": status})

    def namespace(self, name: str) -> dict:
        return self.create("namespaces", {"metadata": {"name": name}})

    def deployment(self, ns: str, name: str, replicas: int = 1) -> dict:
        return self.create("deployments.apps", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": f"example/{name}:1.0"}]}}},
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                       "updatedReplicas": replicas, "observedGeneration": 1}})


@pytest.fixture
def seed(apiserver) -> Seed:
    return Seed(apiserver)


class FakeKubelet:
    """A thread that confirms graceful pod deletions on ``node`` (delete with grace 0), as a kubelet does:
    the API-only tests have no controllers, so without it a pod on a node stays Terminating forever."""

    def __init__(self, srv: ApiServerThread, node: str):
        self.srv, self.node = srv, node
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.confirmed: list[str] = []

    def _run(self) -> None:
        from tazlab_lab.k8s.store import NotFound

        store = self.srv.store
        while not self.stop_event.is_set():
            for p in store.list("pods", field_selector=f"spec.nodeName={self.node}", copy=False):
                if p["metadata"].get("deletionTimestamp"):
                    try:
                        self.srv.call(store.delete, "pods", p["metadata"]["namespace"], p["metadata"]["name"],
                                      grace_period_seconds=0)
                        self.confirmed.append(p["metadata"]["name"])
                    except NotFound:
                        pass
            time.sleep(0.05)

    def __enter__(self) -> "FakeKubelet":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.thread.join(5)
