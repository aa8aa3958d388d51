"""KubeTwin: clock + store + HTTPS API server + controllers + the world, built from a scenario.

Two interfaces, kept apart:

* the **Kubernetes API** (``twin.api``: ``url``, ``ca_path``, ``kubeconfig_path``, ``admin_token``,
  ``reader_token``) — what the collection and kubectl talk to;
* the **control interface** — what a test or the demo uses to change the world, never visible through
  the Kubernetes API: Python methods (``power_off``, ``power_on``, ``reset``, ``shutdown`` (graceful), ``partition``, ``heal``,
  ``set_node_address``, ``set_advertise_address``, ``restart_apiserver``, ``dual_stack``,
  ``lose_etcd_quorum``, ``restore_etcd_quorum``,
  ``advance``, ``start_clock``, ``state``) and the same over JSON on a separate loopback port::

      GET  /state                     -> world, control plane, clock
      POST /nodes/<name>/power-off | power-on | reset | shutdown | partition | heal
      POST /nodes/<name>/address      {"address": "192.168.1.253"}
      POST /apiservers/<name>/advertise {"address": "..."}
      POST /etcd/quorum/lose | /etcd/quorum/restore
      POST /clock/advance             {"seconds": 60}
      POST /clock/start               {"timeScale": 0.1}

Use::

    twin = KubeTwin("tazlab", workdir=tmp_path)
    await twin.start()                    # API server + control endpoint + controllers
    await twin.advance(60)                # the cluster settles: pods Running
    twin.power_off("worker-new-03")
    await twin.advance(400)
    await twin.stop()
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from ..clock import SimClock
from .controllers.controlplane import ControlPlane
from .controllers.informer import EventRecorder, Informer
from .controllers.kubelet import Kubelets
from .controllers.longhorn import LHS, Longhorn
from .controllers.nodelifecycle import NodeLifecycleController, TaintEvictionController
from .controllers.podgc import PodGC
from .controllers.scheduler import Scheduler
from .controllers.util import LONGHORN_DRIVER, LONGHORN_NS, NameGen
from .controllers.volumes import AttachDetachController, ExternalAttacher, PersistentVolumeController
from .controllers.workloads import (DaemonSetController, DeploymentController, ReplicaSetController,
                                    StatefulSetController)
from .controllers.world import KubeWorld
from .scenario import KIND_TO_RES, load_scenario, node_object, pvc_object, storage_class_object
from .store import Store

log = logging.getLogger(__name__)


class KubeTwin:
    def __init__(self, scenario: str | Path | dict = "tazlab", *, clock: SimClock | None = None,
                 workdir: str | Path | None = None, host: str = "127.0.0.1", port: int = 0,
                 control_host: str = "127.0.0.1", control_port: int = 0, seed: int = 1,
                 node_monitor_grace_period: float | None = None, max_wait_for_unmount: float | None = None,
                 boot_seconds: float | None = None):
        for h in (host, control_host):
            if not h.startswith("127.") and h != "localhost":
                raise ValueError("the twin binds loopback only")
        self.scenario = load_scenario(scenario)
        settings = self.scenario.get("settings") or {}
        self.clock = clock or SimClock()
        self.store = Store(self.clock)
        self.host, self.port = host, port
        self.control_host, self.control_port = control_host, control_port
        self.workdir = Path(workdir) if workdir is not None else None
        self.namegen = NameGen(seed)
        self.world = KubeWorld(self.clock, boot_seconds=boot_seconds if boot_seconds is not None
                               else float(settings.get("bootSeconds", 45)))
        self._grace = node_monitor_grace_period if node_monitor_grace_period is not None \
            else float(settings.get("nodeMonitorGracePeriod", 50))
        self._max_wait = max_wait_for_unmount if max_wait_for_unmount is not None \
            else float(settings.get("maxWaitForUnmountDuration", 360))
        self.api = None
        self._control_runner = None
        self.control_url = ""
        self._started = False
        self._load_objects()
        self.inf = Informer(self.store)
        self.rec = EventRecorder(self.store, self.clock, self.namegen)
        self._build_controllers()

    # -- assembly ----------------------------------------------------------------------------
    def _load_objects(self) -> None:
        sc = self.scenario
        for i, n in enumerate(sc["nodes"]):
            self.world.add(n["name"], n["addresses"]["InternalIP"], n["role"])
            self.store.create("nodes", node_object(n, i + 1, self.clock.now_iso()))
        for ns in sc["namespaces"]:
            if ns not in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for c in sc["storageClasses"]:
            self.store.create("storageclasses.storage.k8s.io", storage_class_object(c))
        if sc.get("longhorn") is not None:
            if ("longhorn-system" not in sc["namespaces"]):
                self.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "longhorn-system"}})
            self.store.create("csidrivers.storage.k8s.io", {
                "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": LONGHORN_DRIVER},
                "spec": {"attachRequired": True, "podInfoOnMount": True, "fsGroupPolicy": "ReadWriteOnceWithFSType",
                         "volumeLifecycleModes": ["Persistent"], "requiresRepublish": False, "storageCapacity": False,
                         "seLinuxMount": False}})
        for p in sc["pvcs"]:
            self.store.create("persistentvolumeclaims", pvc_object(p))
        for w in sc["workloads"]:
            self.store.create(KIND_TO_RES[w["kind"]], w)

    def _build_controllers(self) -> None:
        s, c, i, r, g = self.store, self.clock, self.inf, self.rec, self.namegen
        self.control_plane = ControlPlane(s, c, i, self.world, self.scenario["controlPlane"].get("serviceIP", "10.96.0.1"))
        for a in self.scenario["controlPlane"]["apiservers"]:
            self.control_plane.add_apiserver(a["node"], a.get("advertise"))
        self.kubelets = Kubelets(s, c, i, self.world, r, g, apiserver_alive=self.control_plane.apiserver_alive,
                                 register=self._node_registration)
        self.node_lifecycle = NodeLifecycleController(s, c, i, r, grace_period=self._grace)
        self.taint_eviction = TaintEvictionController(s, c, i, r)
        self.scheduler = Scheduler(s, c, i, r)
        self.replicasets = ReplicaSetController(s, c, i, r, g)
        self.deployments = DeploymentController(s, c, i, r, g)
        self.statefulsets = StatefulSetController(s, c, i, r, g)
        self.daemonsets = DaemonSetController(s, c, i, r, g)
        self.longhorn = Longhorn(s, c, i, r, g)
        self.pv_controller = PersistentVolumeController(s, c, i, r, {LONGHORN_DRIVER: self.longhorn})
        self.attach_detach = AttachDetachController(s, c, i, r, max_wait_for_unmount=self._max_wait)
        self.external_attacher = ExternalAttacher(s, c, i, r, self.longhorn, LONGHORN_DRIVER)
        self.longhorn.attacher = self.external_attacher
        self.longhorn.running_users = self.kubelets.running_users
        self.longhorn.world = self.world
        self.pod_gc = PodGC(s, c, i, r)
        self.controllers = [self.control_plane, self.kubelets, self.node_lifecycle, self.taint_eviction,
                            self.scheduler, self.replicasets, self.deployments, self.statefulsets, self.daemonsets,
                            self.longhorn, self.pv_controller, self.attach_detach, self.external_attacher, self.pod_gc]

    def _node_registration(self, name: str) -> dict:
        idx = next(i for i, n in enumerate(self.scenario["nodes"]) if n["name"] == name)
        obj = node_object(self.scenario["nodes"][idx], idx + 1, self.clock.now_iso())
        for a in obj["status"]["addresses"]:
            if a["type"] == "InternalIP":
                a["address"] = self.world[name].address
        return obj

    def start_controllers(self) -> None:
        """Start every controller on the simulated clock (no servers)."""
        if self._started:
            return
        self._started = True
        lh = self.scenario.get("longhorn")
        if lh is not None:
            self.longhorn.install(lh["nodes"])
            for name, value in (lh.get("settings") or {}).items():
                self.set_longhorn_setting(name, value)
        for ctl in self.controllers:
            ctl.start()

    async def start(self, serve: bool = True, control: bool = True) -> "KubeTwin":
        """Controllers, then (``serve``) the HTTPS API server and (``control``) the control endpoint."""
        self.start_controllers()
        if serve:
            from .server import KubeApiServer
            if self.workdir is None:
                import tempfile
                self.workdir = Path(tempfile.mkdtemp(prefix="kube-twin-"))
            workdir = self.workdir
            self.api = KubeApiServer(self.store, self.host, self.port, workdir)
            await self.api.start()
        if control:
            await self._start_control()
        return self

    async def stop(self) -> None:
        for ctl in self.controllers:
            ctl.stop()
        await self.clock.stop()
        if self.api is not None:
            await self.api.stop()
            self.api = None
        if self._control_runner is not None:
            await self._control_runner.cleanup()
            self._control_runner = None

    # -- the control interface (Python) -------------------------------------------------------
    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    def start_clock(self, time_scale: float = 1.0) -> asyncio.Task:
        return self.clock.start(time_scale)

    def power_off(self, node: str) -> None:
        self.world.power_off(node)

    def power_on(self, node: str, boot_seconds: float | None = None) -> None:
        self.world.power_on(node, boot_seconds)

    def reset(self, node: str, boot_seconds: float | None = None) -> None:
        self.world.reset(node, boot_seconds)

    def shutdown(self, node: str, grace: float | None = None, critical_grace: float | None = None) -> float:
        """A graceful shutdown (talosctl shutdown, ACPI): the kubelet's shutdown manager runs, then the
        machine powers off. Returns the simulated seconds until power-off."""
        settings = self.scenario.get("settings") or {}
        g = float(grace if grace is not None else settings.get("shutdownGracePeriod", 30))
        cg = float(critical_grace if critical_grace is not None else settings.get("shutdownGracePeriodCriticalPods", 10))
        delay = self.kubelets.graceful_shutdown(node, g, cg)
        self.clock.call_later(delay, self.world.power_off, node, name=f"shutdown-{node}")
        return delay

    graceful_shutdown = shutdown

    def partition(self, node: str) -> None:
        self.world.partition(node)

    def heal(self, node: str) -> None:
        self.world.heal(node)

    def set_node_address(self, node: str, address: str) -> None:
        """The machine now answers at ``address`` (an IP change); apiservers keep what they advertise."""
        self.world.set_address(node, address)

    def set_advertise_address(self, apiserver: str, address: str) -> None:
        self.control_plane.set_advertise_address(apiserver, address)

    def restart_apiserver(self, apiserver: str) -> None:
        """The kube-apiserver static pod on this control plane is re-created (it advertises the node's address)."""
        self.control_plane.restart_apiserver(apiserver)

    def dual_stack(self, secondary: dict[str, str], service_ip: str = "fd00:10:96::1") -> None:
        """The apiservers restart dual-stack (KEP-2438): each named one also advertises its secondary-family
        address, and the kubernetes Service gets a ClusterIP of each family."""
        self.control_plane.dual_stack(secondary, service_ip)

    def lose_etcd_quorum(self) -> None:
        self.control_plane.lose_etcd_quorum()

    def restore_etcd_quorum(self) -> None:
        self.control_plane.restore_etcd_quorum()

    regain_etcd_quorum = restore_etcd_quorum  # the LabWorld's name for it

    # -- what the LabWorld (tazlab_lab.world) asks of the Kubernetes twin ----------------------
    @property
    def url(self) -> str | None:
        return self.api.url if self.api is not None else None

    server_url = url

    def node_specs(self) -> list[dict]:
        return [{"name": n["name"], "role": n["role"], "system_uuid": n["systemUUID"],
                 "address": n["addresses"]["InternalIP"]} for n in self.scenario["nodes"]]

    def write_kubeconfig(self, path: str | Path) -> None:
        """A copy of the API server's admin kubeconfig (written by ``start()``)."""
        if self.api is None:
            raise RuntimeError("the API server is not started")
        import shutil
        shutil.copyfile(self.api.kubeconfig_path, path)

    def set_longhorn_setting(self, name: str, value: str) -> None:
        try:
            st = self.store.get(LHS, LONGHORN_NS, name)
            st["value"] = str(value)
            self.store.update(LHS, st)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
            self.store.create(LHS, {"apiVersion": "longhorn.io/v1beta2", "kind": "Setting",
                                    "metadata": {"name": name, "namespace": LONGHORN_NS}, "value": str(value)})

    def state(self) -> dict:
        return {"clock": {"now": self.clock.now_iso(), "epoch": self.clock.now(), "timeScale": self.clock.time_scale},
                "nodes": [self.world.state(n) for n in sorted(self.world.machines)],
                "controlPlane": self.control_plane.state(),
                "incidents": list(self.world.incidents),
                "api": {"url": self.api.url if self.api else "",
                        "kubeconfig": str(self.api.kubeconfig_path) if self.api else ""}}

    # -- the control interface (HTTP, JSON, loopback) -----------------------------------------
    async def _start_control(self) -> None:
        from aiohttp import web

        app = web.Application()
        node_actions = {"power-off": self.power_off, "power-on": self.power_on, "reset": self.reset,
                        "shutdown": self.shutdown,
                        "partition": self.partition, "heal": self.heal}

        async def body(request: web.Request) -> dict:
            if not request.can_read_body:
                return {}
            try:
                data = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text=json.dumps({"error": "body is not JSON"}), content_type="application/json")
            return data if isinstance(data, dict) else {}

        def ok(extra: dict | None = None) -> web.Response:
            return web.json_response({"ok": True, **(extra or {}), "state": self.state()})

        async def get_state(request: web.Request) -> web.Response:
            return web.json_response(self.state())

        async def node_action(request: web.Request) -> web.Response:
            name, action = request.match_info["name"], request.match_info["action"]
            if name not in self.world:
                return web.json_response({"error": f"unknown node {name}"}, status=404)
            if action == "address":
                addr = (await body(request)).get("address")
                if not addr:
                    return web.json_response({"error": "address is required"}, status=400)
                self.set_node_address(name, addr)
                return ok()
            fn = node_actions.get(action)
            if fn is None:
                return web.json_response({"error": f"unknown action {action}"}, status=404)
            fn(name)
            return ok()

        async def advertise(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            addr = (await body(request)).get("address")
            if name not in self.control_plane.apiservers:
                return web.json_response({"error": f"unknown apiserver {name}"}, status=404)
            if not addr:
                return web.json_response({"error": "address is required"}, status=400)
            self.set_advertise_address(name, addr)
            return ok()

        async def quorum(request: web.Request) -> web.Response:
            action = request.match_info["action"]
            if action == "lose":
                self.lose_etcd_quorum()
            elif action == "restore":
                self.restore_etcd_quorum()
            else:
                return web.json_response({"error": f"unknown action {action}"}, status=404)
            return ok()

        async def clock_action(request: web.Request) -> web.Response:
            action = request.match_info["action"]
            data = await body(request)
            if action == "advance":
                try:
                    seconds = float(data.get("seconds", 0))
                except (TypeError, ValueError):
                    return web.json_response({"error": "seconds must be a number"}, status=400)
                if seconds < 0:
                    return web.json_response({"error": "time only moves forward"}, status=400)
                await self.advance(seconds)
                return ok()
            if action == "start":
                try:
                    self.start_clock(float(data.get("timeScale", 1.0)))
                except (RuntimeError, ValueError, TypeError) as exc:
                    return web.json_response({"error": str(exc)}, status=409)
                return ok()
            return web.json_response({"error": f"unknown action {action}"}, status=404)

        app.router.add_get("/state", get_state)
        app.router.add_post("/nodes/{name}/{action}", node_action)
        app.router.add_post("/apiservers/{name}/advertise", advertise)
        app.router.add_post("/etcd/quorum/{action}", quorum)
        app.router.add_post("/clock/{action}", clock_action)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.control_host, self.control_port)
        await site.start()
        self._control_runner = runner
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.control_port = sock.getsockname()[1]
        self.control_url = f"http://{self.control_host}:{self.control_port}"

    # -- reading helpers for tests and the demo -------------------------------------------------
    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside controllers (timers, informer handlers, store subscribers)."""
        return list(self.clock.errors) + list(self.inf.errors) + list(self.store.errors)

    def pods(self, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        return self.store.list("pods", namespace=namespace, label_selector=label_selector)

    def events_for(self, namespace: str, name: str) -> list[dict]:
        return [e for e in self.store.list("events", namespace=namespace)
                if (e.get("involvedObject") or {}).get("name") == name]

    # -- provisioning: nodes that join a running twin, an API server that starts late ----------------
    def join_node(self, name: str, address: str, role: str = "worker", system_uuid: str = "",
                  labels: dict | None = None, taints: list | None = None) -> None:
        """A machine the twin did not start with (a new VM): its kubelet registers the Node when it
        boots (``power_on``); a control plane also runs an apiserver. A second call with the same name
        (a replacement) changes what the next registration sends."""
        entry = {"name": name, "role": role, "addresses": {"InternalIP": address},
                 "systemUUID": system_uuid, "labels": dict(labels or {}),
                 "taints": list(taints if taints is not None else (
                     [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
                     if role == "control-plane" else []))}
        nodes = self.scenario["nodes"]
        old = next((i for i, n in enumerate(nodes) if n["name"] == name), None)
        if old is not None:
            # A replacement machine with the old name (new VM, new uuid): what its kubelet registers next.
            nodes[old] = entry
            self.world[name].address = address
            if role == "control-plane" and name in self.control_plane.apiservers:
                self.control_plane.apiservers[name].advertise = address
            return
        nodes.append(entry)
        self.world.add(name, address, role, powered=False)
        kl = self.kubelets
        kl.node_index.setdefault(name, len(kl.node_index) + 1)
        kl._timers.append(self.clock.every(kl.lease_period, kl._heartbeat, name, name=f"kubelet-lease-{name}"))
        if role == "control-plane":
            cp = self.control_plane
            cp.add_apiserver(name, address)
            cp._timers.append(self.clock.every(cp.lease_period, cp.reconcile, name,
                                               name=f"endpoint-reconciler-{name}"))

    async def serve_api(self, host: str, port: int = 0, ca_cert_pem: bytes | None = None,
                        ca_key_pem: bytes | None = None, extra_sans: list[str] | None = None) -> None:
        """Start the HTTPS API server now (a provisioned cluster: once etcd and an apiserver run), with the
        cluster's own Kubernetes CA when given."""
        if self.api is not None:
            return
        from .pki import CertificateAuthority
        from .server import KubeApiServer
        if self.workdir is None:
            import tempfile
            self.workdir = Path(tempfile.mkdtemp(prefix="kube-twin-"))
        ca = CertificateAuthority.from_pem(ca_cert_pem, ca_key_pem) if ca_cert_pem and ca_key_pem else None
        api = KubeApiServer(self.store, host, port, self.workdir, extra_sans=extra_sans, ca=ca)
        await api.start()
        self.api = api
