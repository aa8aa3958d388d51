"""The kubelets: one per machine of the world, acting only while that machine is alive.

What a kubelet does here, as upstream (pkg/kubelet):

* renews its node Lease in ``kube-node-lease`` every 10 s (``leaseDurationSeconds`` 40) and posts
  node status: on change, and at least every 5 min (``nodeStatusReportFrequency``);
* reports ``status.volumesInUse`` for the volumes its pods want mounted, waits until the
  attach/detach controller lists a volume in ``status.volumesAttached`` before mounting it, and
  shows the pod ``ContainerCreating`` meanwhile;
* starts containers (phase Running, Ready, containerStatuses with restartCount), restarts them after
  a reboot (restartCount + 1), confirms graceful deletions (delete with grace 0) once the pod's grace
  period has passed and its volumes are unmounted;
* pods annotated ``lab.tazlab.io/apiserver-client: "true"`` (CoreDNS, kube-proxy) capture the
  ``kubernetes`` EndpointSlice addresses when the pod starts; if none of them is a live apiserver
  the container exits and goes into CrashLoopBackOff (10 s doubling to 5 min), and only a new pod
  (rollout restart, deletion) captures the addresses again;
* does nothing at all while its machine is off, booting or partitioned.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .util import (LONGHORN_DRIVER, iso, micro_iso, node_condition, pod_pvc_names, pod_terminating)

log = logging.getLogger(__name__)

APISERVER_CLIENT = "lab.tazlab.io/apiserver-client"


def unique_volume_name(driver: str, handle: str) -> str:
    return f"kubernetes.io/csi/{driver}^{handle}"


class _PodRuntime:
    __slots__ = ("boot_id", "captured", "crash_timer", "backoff", "started", "kill_timer", "start_timer",
                 "restart", "killed", "node", "pvs", "verify_delay", "verify_at", "verify_timer")

    def __init__(self, boot_id: int):
        self.boot_id = boot_id
        self.captured: set[str] | None = None
        self.crash_timer = None
        self.backoff = 0.0
        self.started = False
        self.kill_timer = None
        self.start_timer = None
        self.restart = False
        self.killed = False
        self.node = ""
        self.pvs: tuple[str, ...] = ()
        # VerifyControllerAttachedVolume back-off (nestedpendingoperations): next try not before verify_at
        self.verify_delay = 0.0
        self.verify_at: float | None = None
        self.verify_timer = None


class Kubelets:
    lease_period = 10.0
    lease_duration = 40
    status_report_period = 300.0
    container_start_seconds = 2.0
    crash_after_seconds = 5.0
    backoff_initial = 10.0
    backoff_max = 300.0
    mount_timeout = 123.0  # podAttachAndMountTimeout
    # pkg/util/goroutinemap/exponentialbackoff: a failed VerifyControllerAttachedVolume ("volume not attached
    # according to node status", e.g. while the attach is blocked by a Multi-Attach error) is retried after
    # 500 ms, doubling up to 2m2s; the volume manager only looks again when that back-off has run out.
    verify_backoff_initial = 0.5
    verify_backoff_max = 122.0

    def __init__(self, store: Any, clock: Any, informer: Any, world: Any, recorder: Any, namegen: Any,
                 apiserver_alive: Callable[[str], bool] | None = None,
                 register: Callable[[str], dict] | None = None):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.world = world
        self.rec = recorder
        self.namegen = namegen
        self.apiserver_alive = apiserver_alive or (lambda ip: True)
        self.register = register  # name -> the Node object the kubelet registers at start
        self.runtime: dict[str, _PodRuntime] = {}  # pod uid -> runtime state on its node
        self.last_status: dict[str, float] = {}
        self.pod_ip_seq: dict[str, int] = {}
        self.node_index: dict[str, int] = {}
        self._timers: list = []
        self.clients: dict[str, tuple] = {}  # uid -> pod key of running apiserver clients
        self.orphans: dict[str, dict[str, _PodRuntime]] = {}  # node -> containers of pods gone from the API
        self.shutting_down: set[str] = set()
        from .informer import WorkQueue
        self.q = WorkQueue(clock, self._sync_pod, "kubelet")
        self.nq = WorkQueue(clock, self._sync_node_status, "kubelet-node")
        informer.on("pods", self._on_pod)
        informer.on("nodes", self._on_node)
        world.subscribe(self._on_world)

    def start(self) -> None:
        n = max(1, len(self.world.machines))
        for i, name in enumerate(sorted(self.world.machines)):
            self.node_index.setdefault(name, len(self.node_index) + 1)
            first = self.lease_period * i / n
            self._timers.append(self.clock.every(self.lease_period, self._heartbeat, name, first=first,
                                                 name=f"kubelet-lease-{name}"))
            self.nq.add(name)
            for pod in self.inf.pods_on(name):
                self.q.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        self._timers.append(self.clock.every(10.0, self._probe_clients, name="kubelet-liveness"))

    def _probe_clients(self) -> None:
        """Liveness of apiserver clients: a running one whose captured apiserver is gone exits."""
        for uid, key in list(self.clients.items()):
            rt = self.runtime.get(uid)
            pod = self.inf.get("pods", *key)
            if rt is None or pod is None or pod["metadata"]["uid"] != uid:
                self.clients.pop(uid, None)
                continue
            if rt.crash_timer is not None or not rt.started or pod_terminating(pod):
                continue
            if not self.world.alive(pod["spec"]["nodeName"]):
                continue
            if not self._captured_ok(rt):
                self._crash(key, uid)
            else:
                # Still connected: it watches the kubernetes EndpointSlice (kube-proxy programs the Service
                # from it, client-go reconnects through 10.96.0.1), so it follows the control plane's moves.
                current = self._kubernetes_slice_addresses()
                if current:
                    rt.captured = current

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self.q.stop()
        self.nq.stop()

    # -- events ------------------------------------------------------------------------------
    def _on_pod(self, etype: str, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node not in self.world:
            return
        md = pod["metadata"]
        if etype == "DELETED":
            rt = self.runtime.pop(md.get("uid"), None)
            m = self.world[node]
            if rt is not None and rt.started and not rt.killed and m.running and not m.alive:
                # force-deleted while the node is cut off: its containers keep running, unseen
                self.orphans.setdefault(node, {})[md["uid"]] = rt
                for t in (rt.crash_timer, rt.kill_timer, rt.start_timer):
                    if t is not None:
                        t.cancel()
                return
            if rt:
                for t in (rt.crash_timer, rt.kill_timer, rt.start_timer):
                    if t is not None:
                        t.cancel()
            self.nq.add(node)  # volumesInUse may shrink
            return
        self.q.add((md["namespace"], md["name"]))

    def _on_node(self, etype: str, node: dict) -> None:
        # volumesAttached changed: pods waiting for a volume can go on.
        name = node["metadata"]["name"]
        if etype == "DELETED" or name not in self.world:
            return
        if self.world.alive(name):
            for pod in self.inf.pods_on(name):
                rt = self.runtime.get(pod["metadata"].get("uid"))
                if rt is None or not rt.started:
                    self.q.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def running_users(self, pv: str) -> set[str]:
        """Machines on which containers that use volume ``pv`` run right now (the truth, not the API):
        pods of the claim the PV is bound to, plus orphans (force-deleted from a partitioned node)."""
        out = set()
        ref = (((self.inf.get("persistentvolumes", None, pv) or {}).get("spec") or {}).get("claimRef") or {})
        candidates = []
        if ref.get("name"):
            for p in self.inf.pods_using(ref.get("namespace"), ref["name"]):
                rt = self.runtime.get(p["metadata"].get("uid"))
                if rt is not None:
                    candidates.append(rt)
        for o in self.orphans.values():
            candidates.extend(o.values())
        for rt in candidates:
            if rt.started and not rt.killed and pv in rt.pvs and rt.node in self.world and self.world[rt.node].running:
                out.add(rt.node)
        return out

    def _on_world(self, name: str, what: str) -> None:
        if what in ("power_off", "heal"):
            # power off: everything died; heal: housekeeping kills pods the API no longer has
            self.orphans.pop(name, None)
        if what == "power_off":
            self.shutting_down.discard(name)
        if what in ("power_off",):
            # everything that ran on the machine is gone; the API does not know yet.
            for pod in self.inf.pods_on(name):
                rt = self.runtime.pop(pod["metadata"].get("uid"), None)
                if rt:
                    for t in (rt.crash_timer, rt.kill_timer, rt.start_timer):
                        if t is not None:
                            t.cancel()
        elif what == "address":
            self.nq.add(name)         # the kubelet reports its new InternalIP
        elif what in ("booted", "heal"):
            if what == "booted" and self.register is not None and self.inf.get("nodes", None, name) is None:
                # registerWithAPIServer: only at kubelet start (a deleted Node is not re-created on heal)
                try:
                    self.store.create("nodes", self.register(name))
                except Exception as exc:
                    if getattr(exc, "code", None) != 409:
                        raise
            self._heartbeat(name)
            self.nq.add(name)
            for pod in self.inf.pods_on(name):
                self.q.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    # -- node lease and status ---------------------------------------------------------------
    def _heartbeat(self, name: str) -> None:
        if not self.world.alive(name):
            return
        now = self.clock.now()
        node = self.inf.get("nodes", None, name)
        if node is None:
            return
        lease = self.inf.get("leases.coordination.k8s.io", "kube-node-lease", name)
        if lease is None:
            self.store.create("leases.coordination.k8s.io", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease",
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                                  "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": self.lease_duration,
                         "renewTime": micro_iso(now)},
            })
        else:
            lease = self.store.get("leases.coordination.k8s.io", "kube-node-lease", name)
            lease["spec"]["renewTime"] = micro_iso(now)
            lease["spec"]["holderIdentity"] = name
            self.store.update("leases.coordination.k8s.io", lease)
        if now - self.last_status.get(name, -1e18) >= self.status_report_period or not self._ready_posted(node):
            self.nq.add(name)

    @staticmethod
    def _internal_ip(status: dict) -> str | None:
        return next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)

    def _ready_posted(self, node: dict) -> bool:
        c = node_condition(node, "Ready")
        want = "False" if node["metadata"]["name"] in self.shutting_down else "True"
        return bool(c and c.get("status") == want)

    def _wanted_volumes(self, name: str) -> list[str]:
        """Volumes the kubelet's pods want mounted (reported as volumesInUse)."""
        out = set()
        for pod in self.inf.pods_on(name):
            rt = self.runtime.get(pod["metadata"].get("uid"))
            if rt is not None and rt.killed:
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for claim in pod_pvc_names(pod):
                u = self._unique_for_claim(pod["metadata"]["namespace"], claim)
                if u:
                    out.add(u)
        return sorted(out)

    def _pv_for_claim(self, ns: str, claim: str) -> str:
        pvc = self.inf.get("persistentvolumeclaims", ns, claim)
        return ((pvc or {}).get("spec") or {}).get("volumeName") or ""

    def _unique_for_claim(self, ns: str, claim: str) -> str | None:
        pvc = self.inf.get("persistentvolumeclaims", ns, claim)
        if not pvc or not (pvc.get("spec") or {}).get("volumeName"):
            return None
        pv = self.inf.get("persistentvolumes", None, pvc["spec"]["volumeName"])
        if not pv:
            return None
        csi = (pv.get("spec") or {}).get("csi") or {}
        if not csi:
            return None
        return unique_volume_name(csi.get("driver", LONGHORN_DRIVER), csi.get("volumeHandle", pv["metadata"]["name"]))

    def _sync_node_status(self, name: str) -> None:
        if not self.world.alive(name):
            return
        node = self.inf.get("nodes", None, name)
        if node is None:
            return
        now = self.clock.now()
        m = self.world[name]
        cur = node.get("status") or {}
        ready = node_condition(node, "Ready")
        in_use = self._wanted_volumes(name)
        want_ready = "False" if name in self.shutting_down else "True"
        need = (ready is None or ready.get("status") != want_ready
                or now - self.last_status.get(name, -1e18) >= self.status_report_period
                or sorted(cur.get("volumesInUse") or []) != in_use
                or (cur.get("nodeInfo") or {}).get("bootID") != self._boot_id(m)
                or (m.address and self._internal_ip(cur) not in (None, m.address)))
        if not need:
            return
        node = self.store.get("nodes", None, name)
        st = node.setdefault("status", {})
        conds = {c["type"]: c for c in st.get("conditions") or []}
        want = [("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                ("Ready", "True", "KubeletReady", "kubelet is posting ready status") if want_ready == "True" else
                ("Ready", "False", "KubeletNotReady", "node is shutting down")]
        out = []
        for ctype, status, reason, msg in want:
            c = conds.pop(ctype, None) or {"type": ctype}
            if c.get("status") != status:
                c["lastTransitionTime"] = iso(now)
            c.update(status=status, reason=reason, message=msg, lastHeartbeatTime=iso(now))
            out.append(c)
        out.extend(conds.values())
        st["conditions"] = out
        if in_use:
            st["volumesInUse"] = in_use
        else:
            st.pop("volumesInUse", None)
        st.setdefault("nodeInfo", {})["bootID"] = self._boot_id(m)
        if m.address and self._internal_ip(st) not in (None, m.address):
            # the kubelet runs with --node-ip = the node's address (on Talos it restarts after an IP change)
            st["addresses"] = [dict(a, address=m.address) if a.get("type") == "InternalIP" else a
                               for a in st.get("addresses") or []]
        self.store.update("nodes", node)
        self.last_status[name] = now

    @staticmethod
    def _boot_id(m: Any) -> str:
        return f"{abs(hash(m.name)) % 10**8:08d}-boot-{m.boot_id}"

    # -- pods --------------------------------------------------------------------------------
    def _sync_pod(self, key: tuple) -> None:
        pod = self.inf.get("pods", *key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node not in self.world or not self.world.alive(node):
            return
        m = self.world[node]
        uid = pod["metadata"]["uid"]
        rt = self.runtime.get(uid)
        if rt is not None and rt.boot_id != m.boot_id:
            # the machine rebooted since the containers started: they are gone
            for t in (rt.crash_timer, rt.start_timer):
                if t is not None:
                    t.cancel()
            rt = None
            self.runtime.pop(uid, None)
        if pod_terminating(pod):
            self._terminate(pod, rt)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if rt is None:
            rt = self.runtime[uid] = _PodRuntime(m.boot_id)
            # the API says containers ran: they ran in an earlier boot, this start is a restart
            rt.restart = (pod.get("status") or {}).get("phase") == "Running"
        if rt.started:
            return
        if rt.start_timer is not None:
            if getattr(rt.start_timer, "name", "") != "kubelet-mount-timeout":
                return
            if self._unattached(pod, node):
                self._verify_failed(rt, key)
                return
            rt.start_timer.cancel()
            rt.start_timer = None
        # volumes: wait for the controller to attach them
        now = self.clock.now()
        if rt.verify_at is not None and now < rt.verify_at - 1e-9:
            return          # the last verification failed: no new one before its back-off ran out
        missing = self._unattached(pod, node)
        self.nq.add(node)  # report volumesInUse
        if missing:
            self._set_container_creating(pod)
            if rt.start_timer is None:
                # WaitForAttachAndMount gives up after 2m3s with a FailedMount event, then the pod worker retries
                rt.start_timer = self.clock.call_later(self.mount_timeout, self._mount_timed_out, key, uid,
                                                       name="kubelet-mount-timeout")
            self._verify_failed(rt, key)
            return
        rt.verify_delay, rt.verify_at = 0.0, None
        self._set_container_creating(pod)
        rt.start_timer = self.clock.call_later(self.container_start_seconds, self._start_containers, key, uid,
                                               name="kubelet-start")

    def _verify_failed(self, rt: _PodRuntime, key: tuple) -> None:
        """A VerifyControllerAttachedVolume that found the volume unattached: back off before the next one."""
        now = self.clock.now()
        if rt.verify_at is not None and now < rt.verify_at - 1e-9:
            return          # this sync is not a retry: the back-off has not run out
        rt.verify_delay = (self.verify_backoff_initial if not rt.verify_delay
                           else min(self.verify_backoff_max, rt.verify_delay * 2))
        rt.verify_at = now + rt.verify_delay
        if rt.verify_timer is not None:
            rt.verify_timer.cancel()
        rt.verify_timer = self.clock.call_later(rt.verify_delay, self.q.add, key, name="kubelet-verify-attached")

    def _mount_timed_out(self, key: tuple, uid: str) -> None:
        rt = self.runtime.get(uid)
        pod = self.inf.get("pods", *key)
        if rt is None or pod is None or pod["metadata"]["uid"] != uid:
            return
        rt.start_timer = None
        node = pod["spec"]["nodeName"]
        if not self.world.alive(node) or pod_terminating(pod) or rt.started:
            return
        missing = self._unattached(pod, node)
        if missing:
            claims = set(missing)
            names = sorted(v["name"] for v in pod["spec"].get("volumes") or []
                           if (v.get("persistentVolumeClaim") or {}).get("claimName") in claims)
            vols = " ".join(names)
            self.rec.event(pod, "Warning", "FailedMount",
                           f"Unable to attach or mount volumes: unmounted volumes=[{vols}], unattached volumes=[{vols}], "
                           f"failed to process volumes=[]: timed out waiting for the condition", "kubelet", node)
        self.q.add(key)

    def _unattached(self, pod: dict, node_name: str) -> list[str]:
        node = self.inf.get("nodes", None, node_name) or {}
        attached = {v.get("name") for v in (node.get("status") or {}).get("volumesAttached") or []}
        missing = []
        for claim in pod_pvc_names(pod):
            u = self._unique_for_claim(pod["metadata"]["namespace"], claim)
            if u is None or u not in attached:
                missing.append(claim)
        return missing

    def _container_names(self, pod: dict) -> list[dict]:
        return (pod.get("spec") or {}).get("containers") or [{"name": "main", "image": "busybox"}]

    def _pod_ip(self, pod: dict, node: str) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.world[node].address or "127.0.0.1"
        idx = self.node_index.setdefault(node, len(self.node_index) + 1)
        seq = self.pod_ip_seq.get(node, 1) + 1
        self.pod_ip_seq[node] = seq if seq < 254 else 1
        return f"10.244.{idx % 256}.{seq}"

    def _set_container_creating(self, pod: dict) -> None:
        """Volumes not mounted yet: no sandbox; containers wait (ContainerCreating, or PodInitializing and
        kubectl's Init:0/N when the pod has init containers)."""
        st = pod.get("status") or {}
        if st.get("containerStatuses") and all("waiting" in (c.get("state") or {}) for c in st["containerStatuses"]):
            return
        now = self.clock.now()
        node = pod["spec"]["nodeName"]
        pod = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        st = pod.setdefault("status", {})
        if st.get("phase") != "Running":
            st["phase"] = "Pending"
        st["hostIP"] = self.world[node].address
        st["hostIPs"] = [{"ip": st["hostIP"]}]
        st.setdefault("startTime", iso(now))
        init = pod["spec"].get("initContainers") or []
        reason = "PodInitializing" if init else "ContainerCreating"
        prev = {c["name"]: c for c in st.get("containerStatuses") or []}
        for c in prev.values():
            ran = ((c.get("state") or {}).get("running") or {}).get("startedAt")
            if ran:  # the container died with its machine: the runtime can no longer tell how
                c["lastState"] = {"terminated": {"exitCode": 255, "reason": "Unknown", "startedAt": ran,
                                                 "finishedAt": iso(now)}}
        st["containerStatuses"] = [{
            "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "started": False,
            "restartCount": (prev.get(c["name"]) or {}).get("restartCount", 0),
            "state": {"waiting": {"reason": reason}},
            **({"lastState": prev[c["name"]]["lastState"]} if c["name"] in prev and prev[c["name"]].get("lastState") else {}),
        } for c in self._container_names(pod)]
        if init:
            st["initContainerStatuses"] = [{
                "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "started": False,
                "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}} for c in init]
        self._set_conditions(st, now, ready=False, initialized=not init, sandbox=False, pod=pod)
        self.store.update("pods", pod)

    def _set_conditions(self, st: dict, now: float, ready: bool, initialized: bool = True, sandbox: bool = True,
                        pod: dict | None = None) -> None:
        conds = {c["type"]: c for c in st.get("conditions") or []}
        want = [("PodReadyToStartContainers", sandbox), ("Initialized", initialized),
                ("Ready", ready), ("ContainersReady", ready), ("PodScheduled", True)]
        names = [c.get("name") for c in (st.get("containerStatuses") or []) if not c.get("ready")]
        init_names = [c.get("name") for c in (st.get("initContainerStatuses") or [])
                      if "terminated" not in (c.get("state") or {})]
        out = []
        for ctype, ok in want:
            c = conds.pop(ctype, None) or {"type": ctype}
            s = "True" if ok else "False"
            if c.get("status") != s:
                c["lastTransitionTime"] = iso(now)
            c["status"] = s
            c.setdefault("lastProbeTime", None)
            c.pop("reason", None)
            c.pop("message", None)
            if not ok and ctype in ("Ready", "ContainersReady"):
                c["reason"] = "ContainersNotReady"
                c["message"] = f"containers with unready status: [{' '.join(names)}]"
            elif not ok and ctype == "Initialized":
                c["reason"] = "ContainersNotInitialized"
                c["message"] = f"containers with incomplete status: [{' '.join(init_names)}]"
            out.append(c)
        out.extend(conds.values())
        st["conditions"] = out

    def _start_containers(self, key: tuple, uid: str) -> None:
        pod = self.inf.get("pods", *key)
        rt = self.runtime.get(uid)
        if pod is None or rt is None or pod["metadata"]["uid"] != uid:
            return
        rt.start_timer = None
        node = pod["spec"]["nodeName"]
        if not self.world.alive(node) or pod_terminating(pod):
            if pod_terminating(pod):
                self.q.add(key)
            return
        if self._unattached(pod, node):
            self.q.add(key)
            return
        now = self.clock.now()
        client = (pod["metadata"].get("annotations") or {}).get(APISERVER_CLIENT) == "true"
        if client and rt.captured is None:
            rt.captured = self._kubernetes_slice_addresses()
        pod = self.store.get("pods", *key)
        st = pod.setdefault("status", {})
        prev = {c["name"]: c for c in st.get("containerStatuses") or []}
        healthy = not client or self._captured_ok(rt)
        statuses = []
        for c in self._container_names(pod):
            p = prev.get(c["name"]) or {}
            count = p.get("restartCount", 0)
            last = p.get("lastState")
            if rt.restart:
                # the containers existed before (reboot or crash): this is a restart
                count += 1
                ran = ((p.get("state") or {}).get("running") or {}).get("startedAt")
                if ran:
                    last = {"terminated": {"exitCode": 255, "reason": "Unknown", "startedAt": ran,
                                           "finishedAt": iso(now)}}
            statuses.append({
                "name": c["name"], "image": c.get("image", ""), "imageID": c.get("image", ""),
                "containerID": f"containerd://{self.namegen.hex(64)}", "ready": healthy, "started": True,
                "restartCount": count, "state": {"running": {"startedAt": iso(now)}},
                **({"lastState": last} if last else {}),
            })
        st["containerStatuses"] = statuses
        init = pod["spec"].get("initContainers") or []
        if init:
            st["initContainerStatuses"] = [{
                "name": c["name"], "image": c.get("image", ""), "imageID": c.get("image", ""),
                "containerID": f"containerd://{self.namegen.hex(64)}", "ready": True, "started": False,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                            "startedAt": iso(now), "finishedAt": iso(now)}}}
                for c in init]
        st["phase"] = "Running"
        st.setdefault("startTime", iso(now))
        st["hostIP"] = self.world[node].address
        st["hostIPs"] = [{"ip": st["hostIP"]}]
        if not st.get("podIP"):
            ip = self._pod_ip(pod, node)
            st["podIP"] = ip
            st["podIPs"] = [{"ip": ip}]
        st.setdefault("qosClass", "BestEffort")
        self._set_conditions(st, now, ready=healthy)
        self.store.update("pods", pod)
        rt.started = True
        rt.restart = False
        rt.node = node
        rt.pvs = tuple(self._pv_for_claim(pod["metadata"]["namespace"], c) for c in pod_pvc_names(pod))
        rt.boot_id = self.world[node].boot_id
        if client:
            self.clients[uid] = key
        if client and not healthy:
            rt.crash_timer = self.clock.call_later(self.crash_after_seconds, self._crash, key, uid, name="kubelet-crash")

    def _kubernetes_slice_addresses(self) -> set[str]:
        out: set[str] = set()
        for (ns, _), sl in self.inf.cache["endpointslices.discovery.k8s.io"].items():
            if ns != "default" or ((sl.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") != "kubernetes":
                continue
            for ep in sl.get("endpoints") or []:
                out.update(ep.get("addresses") or [])
        return out

    def _captured_ok(self, rt: _PodRuntime) -> bool:
        return any(self.apiserver_alive(ip) for ip in rt.captured or ())

    def _crash(self, key: tuple, uid: str) -> None:
        rt = self.runtime.get(uid)
        pod = self.inf.get("pods", *key)
        if rt is None or pod is None or pod["metadata"]["uid"] != uid:
            return
        rt.crash_timer = None
        node = pod["spec"]["nodeName"]
        if not self.world.alive(node) or pod_terminating(pod):
            return
        if self._captured_ok(rt):
            # the captured address answers again: the container stays up and turns ready
            if not all(c.get("ready") for c in (pod.get("status") or {}).get("containerStatuses") or []):
                pod = self.store.get("pods", *key)
                for c in pod["status"]["containerStatuses"]:
                    c["ready"] = True
                self._set_conditions(pod["status"], self.clock.now(), ready=True)
                self.store.update("pods", pod)
            rt.backoff = 0.0
            return
        now = self.clock.now()
        rt.backoff = self.backoff_initial if rt.backoff == 0 else min(self.backoff_max, rt.backoff * 2)
        pod = self.store.get("pods", *key)
        st = pod["status"]
        for c in st.get("containerStatuses") or []:
            started = ((c.get("state") or {}).get("running") or {}).get("startedAt", iso(now))
            c["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started,
                                             "finishedAt": iso(now)}}
            c["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": f"back-off {int(rt.backoff)}s restarting failed container={c['name']} "
                                                 f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}({uid})"}}
            c["ready"] = False
            c["started"] = False
        self._set_conditions(st, now, ready=False)
        self.store.update("pods", pod)
        self.rec.event(pod, "Warning", "BackOff", "Back-off restarting failed container", "kubelet", node)
        rt.crash_timer = self.clock.call_later(rt.backoff, self._restart_crashed, key, uid, name="kubelet-restart")

    def _restart_crashed(self, key: tuple, uid: str) -> None:
        rt = self.runtime.get(uid)
        pod = self.inf.get("pods", *key)
        if rt is None or pod is None or pod["metadata"]["uid"] != uid:
            return
        rt.crash_timer = None
        if not self.world.alive(pod["spec"]["nodeName"]) or pod_terminating(pod):
            return
        now = self.clock.now()
        pod = self.store.get("pods", *key)
        healthy = self._captured_ok(rt)
        for c in pod["status"].get("containerStatuses") or []:
            c["restartCount"] = c.get("restartCount", 0) + 1
            c["state"] = {"running": {"startedAt": iso(now)}}
            c["started"] = True
            c["ready"] = healthy
        self._set_conditions(pod["status"], now, ready=healthy)
        self.store.update("pods", pod)
        rt.crash_timer = self.clock.call_later(self.crash_after_seconds, self._crash, key, uid, name="kubelet-crash")

    def _terminate(self, pod: dict, rt: _PodRuntime | None) -> None:
        """Graceful deletion: kill containers when the grace period ends, unmount, confirm."""
        md = pod["metadata"]
        key = (md["namespace"], md["name"])
        if rt is not None and (rt.kill_timer is not None or rt.killed):
            return
        deadline = None
        from .util import parse_ts
        deadline = parse_ts(md.get("deletionTimestamp")) or self.clock.now()
        if rt is None:
            rt = self.runtime[md["uid"]] = _PodRuntime(self.world[pod["spec"]["nodeName"]].boot_id)
        if rt.crash_timer is not None:
            rt.crash_timer.cancel()
            rt.crash_timer = None
        if rt.start_timer is not None:
            rt.start_timer.cancel()
            rt.start_timer = None
        # containers that never started (or died with the machine) stop at once
        delay = max(0.0, deadline - self.clock.now()) if rt.started else 0.0
        if rt.started:
            for c in self._container_names(pod):
                self.rec.event(pod, "Normal", "Killing", f"Stopping container {c['name']}", "kubelet",
                               pod["spec"]["nodeName"])
        rt.kill_timer = self.clock.call_later(delay, self._confirm_deletion, key, md["uid"], name="kubelet-kill")

    # -- graceful node shutdown (KEP-2000, kubelet shutdownGracePeriod) ---------------------
    CRITICAL = ("system-node-critical", "system-cluster-critical")

    def graceful_shutdown(self, name: str, grace: float = 30.0, critical_grace: float = 10.0) -> float:
        """The node's kubelet saw a shutdown coming: Ready=False ("node is shutting down"), regular pods
        killed within ``grace - critical_grace``, then critical ones within ``critical_grace``; the pods
        stay in the API as Failed (reason Terminated), their volumes are unmounted. Returns the seconds
        after which the machine can power off."""
        if not self.world.alive(name) or name in self.shutting_down:
            return 0.0
        self.shutting_down.add(name)
        self._sync_node_status(name)
        regular = max(0.0, grace - critical_grace)
        for pod in self.inf.pods_on(name):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            critical = (pod.get("spec") or {}).get("priorityClassName") in self.CRITICAL
            own = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            at = regular + min(own, critical_grace) if critical else min(own, regular)
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.clock.call_later(at, self._shutdown_kill, key, pod["metadata"]["uid"], name="kubelet-shutdown-kill")
        return grace

    def _shutdown_kill(self, key: tuple, uid: str) -> None:
        pod = self.inf.get("pods", *key)
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        node = pod["spec"]["nodeName"]
        if not self.world.alive(node) or node not in self.shutting_down:
            return
        now = self.clock.now()
        rt = self.runtime.get(uid)
        for t in ((rt.crash_timer, rt.start_timer, rt.kill_timer) if rt else ()):
            if t is not None:
                t.cancel()
        pod = self.store.get("pods", *key)
        st = pod.setdefault("status", {})
        self._terminate_containers(st, now)
        msg = "Pod was terminated in response to imminent node shutdown."
        st["conditions"] = [c for c in st["conditions"] if c["type"] != "DisruptionTarget"] + [
            {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": iso(now),
             "reason": "TerminationByKubelet", "message": msg}]
        st["phase"] = "Failed"
        st["reason"] = "Terminated"
        st["message"] = msg
        self.store.update("pods", pod)
        if rt is not None:
            rt.killed = True
            rt.kill_timer = rt.crash_timer = rt.start_timer = None
        self._sync_node_status(node)

    def _terminate_containers(self, st: dict, now: float) -> None:
        """Every container of the pod status `st` stopped (exit 0, Completed, its start kept), the pod not ready."""
        for c in st.get("containerStatuses") or []:
            started = ((c.get("state") or {}).get("running") or {}).get("startedAt")
            c["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": iso(now),
                                         **({"startedAt": started} if started else {})}}
            c["ready"] = False
            c["started"] = False
        self._set_conditions(st, now, ready=False)

    def _confirm_deletion(self, key: tuple, uid: str) -> None:
        pod = self.inf.get("pods", *key)
        rt = self.runtime.get(uid)
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        node = pod["spec"]["nodeName"]
        if not self.world.alive(node):
            if rt is not None:
                rt.kill_timer = None  # resume when the machine is back
            return
        now = self.clock.now()
        pod = self.store.get("pods", *key)
        st = pod.setdefault("status", {})
        self._terminate_containers(st, now)
        # a pod being deleted reaches a terminal phase before the kubelet confirms the deletion
        if st.get("phase") not in ("Succeeded", "Failed"):
            codes = [((c.get("state") or {}).get("terminated") or {}).get("exitCode", 0)
                     for c in st.get("containerStatuses") or []]
            st["phase"] = "Failed" if any(codes) else "Succeeded"
        self.store.update("pods", pod)
        if rt is not None:
            rt.kill_timer = None
            rt.killed = True
        # volumes unmounted: report them no longer in use before the confirmation
        self._sync_node_status(node)
        try:
            self.store.delete("pods", key[0], key[1], grace_period_seconds=0)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
