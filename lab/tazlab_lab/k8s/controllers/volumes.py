"""Volumes: PV provisioning/binding, the attach/detach controller and the CSI external-attacher.

Upstream behaviour reproduced:

* ``pkg/controller/volume/attachdetach``: the desired state holds (volume, node, pod) for every pod
  bound to a node whose PVC is bound, until the pod object is deleted or *terminated*
  (``IsPodTerminated``: terminal phase, or deleting with no container running). A pod Terminating on
  a dead node still has running containers in its status, so its volume stays desired there. The
  reconciler: attaches by creating a VolumeAttachment named ``csi-<sha256(handle+driver+node)>``
  (``Multi-Attach error`` events for an RWO volume attached elsewhere); detaches a volume no longer
  desired once the node no longer reports it in ``status.volumesInUse``, or when the node is unhealthy
  and ``maxWaitForUnmountDuration`` (6 min) passed since the detach was first wanted, or at once if
  the node has the ``node.kubernetes.io/out-of-service`` taint. It keeps ``status.volumesAttached``
  of nodes, and every 60 s (``reconcilerSyncDuration``) marks detached what has no VolumeAttachment.
* ``kubernetes-csi/external-attacher``: adds the finalizer ``external-attacher/driver-longhorn-io`` to
  the VolumeAttachment and the PV, calls ControllerPublish/Unpublish (here: Longhorn tickets), writes
  ``status.attached`` / ``attachError`` / ``detachError`` and drops the finalizer after the detach.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from .informer import WorkQueue
from .kubelet import unique_volume_name
from .util import (LONGHORN_DRIVER, TAINT_OUT_OF_SERVICE, finalizer_for_driver, has_taint, iso, node_ready,
                   pod_pvc_names, pod_terminated_for_volumes, va_name)

log = logging.getLogger(__name__)

VA = "volumeattachments.storage.k8s.io"


class PersistentVolumeController:
    """pv-controller + CSI external-provisioner for classes provisioned by a CSI driver we simulate."""

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any, provisioners: dict[str, Any]):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.provisioners = provisioners  # driver name -> object with provision(pvc, sc_params) -> volume handle
        self.q = WorkQueue(clock, self.sync, "pv-controller")
        informer.on("persistentvolumeclaims", lambda et, o: et != "DELETED" and self.q.add(
            (o["metadata"]["namespace"], o["metadata"]["name"])))
        self.storage_classes: dict[str, dict] = {}

    def start(self) -> None:
        for sc in self.store.list("storageclasses.storage.k8s.io"):
            self.storage_classes[sc["metadata"]["name"]] = sc
        for pvc in self.inf.items("persistentvolumeclaims"):
            self.q.add((pvc["metadata"]["namespace"], pvc["metadata"]["name"]))

    def stop(self) -> None:
        self.q.stop()

    def _class(self, name: str | None) -> dict | None:
        if name and name not in self.storage_classes:
            try:
                self.storage_classes[name] = self.store.get("storageclasses.storage.k8s.io", None, name)
            except Exception:
                return None
        if not name:
            for sc in self.storage_classes.values():
                if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                    return sc
            return None
        return self.storage_classes.get(name)

    def sync(self, key: tuple) -> None:
        pvc = self.inf.get("persistentvolumeclaims", *key)
        if pvc is None or (pvc.get("status") or {}).get("phase") == "Bound":
            return
        spec = pvc.get("spec") or {}
        sc = self._class(spec.get("storageClassName"))
        if sc is None:
            return
        driver = sc.get("provisioner")
        prov = self.provisioners.get(driver)
        if prov is None:
            return
        pv_name = spec.get("volumeName") or f"pvc-{pvc['metadata']['uid']}"
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        if self.inf.get("persistentvolumes", None, pv_name) is None:
            prov.provision(pv_name, pvc, sc)
            pv = {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": driver,
                                                              "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                                                              "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
                             "finalizers": ["kubernetes.io/pv-protection"]},
                "spec": {"accessModes": spec.get("accessModes") or ["ReadWriteOnce"], "capacity": {"storage": size},
                         "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": key[1],
                                      "namespace": key[0], "uid": pvc["metadata"]["uid"],
                                      "resourceVersion": pvc["metadata"].get("resourceVersion")},
                         "csi": {"driver": driver, "volumeHandle": pv_name, "fsType": "ext4",
                                 "volumeAttributes": dict(sc.get("parameters") or {})},
                         "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                         "storageClassName": sc["metadata"]["name"], "volumeMode": spec.get("volumeMode", "Filesystem")},
            }
            self.store.create("persistentvolumes", pv)
            self.rec.event(pvc, "Normal", "ProvisioningSucceeded",
                           f"Successfully provisioned volume {pv_name}",
                           f"{driver}_csi-provisioner")
        pv = self.store.get("persistentvolumes", None, pv_name)
        pv.setdefault("status", {})["phase"] = "Bound"
        self.store.update("persistentvolumes", pv)
        c = self.store.get("persistentvolumeclaims", *key)
        c["spec"]["volumeName"] = pv_name
        ann = c["metadata"].setdefault("annotations", {})
        ann.update({"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": driver,
                    "volume.kubernetes.io/storage-provisioner": driver})
        fins = c["metadata"].setdefault("finalizers", [])
        if "kubernetes.io/pvc-protection" not in fins:
            fins.append("kubernetes.io/pvc-protection")
        c["status"] = {"phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": {"storage": size}}
        self.store.update("persistentvolumeclaims", c)


class _Attached:
    __slots__ = ("mounted", "detach_requested", "attached", "detaching")

    def __init__(self) -> None:
        self.mounted = True  # assume mounted until the node says otherwise (as upstream)
        self.detach_requested: float | None = None
        self.attached = False
        self.detaching = False


class AttachDetachController:
    sync_period = 60.0

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any,
                 max_wait_for_unmount: float = 360.0, disable_force_detach_on_timeout: bool = False):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.max_wait = max_wait_for_unmount
        self.disable_force_detach = disable_force_detach_on_timeout
        # desired: pv -> node -> set(pod keys); actual: pv -> node -> _Attached
        self.dsw: dict[str, dict[str, set[tuple]]] = defaultdict(lambda: defaultdict(set))
        self._pod_vols: dict[tuple, tuple[str, tuple[str, ...]]] = {}
        self.asw: dict[str, dict[str, _Attached]] = defaultdict(dict)
        self._by_node: dict[str, set[str]] = defaultdict(set)  # node -> pvs in the actual state
        self.q = WorkQueue(clock, self.reconcile_volume, "attach-detach")
        self.node_q = WorkQueue(clock, self._update_node_status, "attach-detach-node-status")
        self._timer = None
        self._in_use: dict[str, frozenset] = {}
        informer.on("pods", self._on_pod)
        informer.on("nodes", self._on_node)
        informer.on(VA, self._on_va)
        informer.on("persistentvolumeclaims", self._on_pvc)

    def start(self) -> None:
        # populateActualStateOfWorld: from nodes' volumesAttached and existing VolumeAttachments
        for va in self.inf.items(VA):
            pv = ((va.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
            if pv and (va.get("status") or {}).get("attached"):
                a = self._asw_add(pv, va["spec"]["nodeName"])
                a.attached = True
        for node in self.inf.items("nodes"):
            self._on_node("ADDED", node)
        for pod in self.inf.items("pods"):
            self._on_pod("ADDED", pod)
        for pv in list(self.asw):
            self.q.add(pv)
        self._timer = self.clock.every(self.sync_period, self._sync_states, name="adc-sync-states")

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.q.stop()
        self.node_q.stop()

    def _asw_add(self, pv: str, node: str) -> _Attached:
        a = self.asw[pv].get(node)
        if a is None:
            a = self.asw[pv][node] = _Attached()
            self._by_node[node].add(pv)
        return a

    def _asw_del(self, pv: str, node: str) -> None:
        nodes = self.asw.get(pv)
        if nodes is not None:
            nodes.pop(node, None)
            if not nodes:
                del self.asw[pv]
        s = self._by_node.get(node)
        if s is not None:
            s.discard(pv)
            if not s:
                del self._by_node[node]

    # -- desired state -----------------------------------------------------------------------
    def _pod_volumes(self, pod: dict) -> tuple[str, ...]:
        out = []
        for claim in pod_pvc_names(pod):
            pvc = self.inf.get("persistentvolumeclaims", pod["metadata"]["namespace"], claim)
            if not pvc or (pvc.get("status") or {}).get("phase") != "Bound":
                continue
            pv = self.inf.get("persistentvolumes", None, pvc["spec"].get("volumeName"))
            if pv and (pv.get("spec") or {}).get("csi"):
                out.append(pv["metadata"]["name"])
        return tuple(out)

    def _on_pod(self, etype: str, pod: dict) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        node = (pod.get("spec") or {}).get("nodeName") or ""
        old = self._pod_vols.pop(key, None)
        if old:
            onode, vols = old
            for v in vols:
                s = self.dsw.get(v, {}).get(onode)
                if s is not None:
                    s.discard(key)
                    if not s:
                        del self.dsw[v][onode]
                    if not self.dsw[v]:
                        del self.dsw[v]
                self.q.add(v)
        if etype == "DELETED" or not node or pod_terminated_for_volumes(pod):
            return
        vols = self._pod_volumes(pod)
        if not vols:
            return
        for v in vols:
            self.dsw[v][node].add(key)
            self.q.add(v)
        self._pod_vols[key] = (node, vols)

    def _on_pvc(self, etype: str, pvc: dict) -> None:
        if (pvc.get("status") or {}).get("phase") == "Bound":
            for pod in self.inf.pods_using(pvc["metadata"]["namespace"], pvc["metadata"]["name"]):
                self._on_pod("MODIFIED", pod)

    def _on_node(self, etype: str, node: dict) -> None:
        name = node["metadata"]["name"]
        in_use = frozenset((node.get("status") or {}).get("volumesInUse") or [])
        pvs = list(self._by_node.get(name, ()))
        if self._in_use.get(name) == in_use and etype == "MODIFIED":
            # health or taints may have changed: volumes waiting to detach from here care
            for pv in pvs:
                a = self.asw.get(pv, {}).get(name)
                if a is not None and a.detach_requested is not None:
                    self.q.add(pv)
            return
        self._in_use[name] = in_use
        for pv in pvs:
            a = self.asw.get(pv, {}).get(name)
            if a is None:
                continue
            a.mounted = any(u.endswith("^" + pv) for u in in_use)
            self.q.add(pv)

    def _on_va(self, etype: str, va: dict) -> None:
        pv = ((va.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
        if not pv:
            return
        node = (va.get("spec") or {}).get("nodeName")
        a = self.asw.get(pv, {}).get(node)
        if a is not None and etype != "DELETED" and (va.get("status") or {}).get("attached") and not a.attached \
                and not va["metadata"].get("deletionTimestamp"):
            a.attached = True
            self.node_q.add(node)
            for key in sorted(self.dsw.get(pv, {}).get(node, ())):
                pod = self.inf.get("pods", *key)
                if pod is not None:
                    self.rec.event(pod, "Normal", "SuccessfulAttachVolume",
                                   f'AttachVolume.Attach succeeded for volume "{pv}" ', "attachdetach-controller")
        if etype == "DELETED" and a is not None and (a.detaching or not a.attached):
            # csi attacher Detach waits for the VolumeAttachment to be gone; an attach that was
            # waiting on a VolumeAttachment which went away fails and is retried with a new one
            self._asw_del(pv, node)
            self.node_q.add(node)
        err = ((va.get("status") or {}).get("attachError") or {}).get("message")
        if a is not None and etype != "DELETED" and err and not a.attached:
            for key in sorted(self.dsw.get(pv, {}).get(node, ())):
                pod = self.inf.get("pods", *key)
                if pod is not None:
                    self.rec.event(pod, "Warning", "FailedAttachVolume",
                                   f'AttachVolume.Attach failed for volume "{pv}" : {err}', "attachdetach-controller")
        self.q.add(pv)

    # -- reconciler --------------------------------------------------------------------------
    def reconcile_volume(self, pv_name: str) -> None:
        now = self.clock.now()
        desired = self.dsw.get(pv_name, {})
        actual = self.asw.get(pv_name, {})
        # detach what is no longer desired
        for node_name, a in list(actual.items()):
            if node_name in desired or a.detaching:
                if node_name in desired:
                    a.detach_requested = None
                continue
            if a.detach_requested is None:
                a.detach_requested = now
            node = self.inf.get("nodes", None, node_name)
            healthy = node_ready(node)
            oos = node is not None and has_taint(node, TAINT_OUT_OF_SERVICE)
            timeout = now - a.detach_requested > self.max_wait
            force = (not healthy) and timeout and not self.disable_force_detach
            if a.mounted and not force and not oos:
                if not healthy and not self.disable_force_detach:
                    self.q.add_after(pv_name, a.detach_requested + self.max_wait - now + 0.1)
                continue
            if force and a.mounted:
                log.info("force detaching %s from %s after %ss", pv_name, node_name, self.max_wait)
            self._detach(pv_name, node_name, a)
        # attach what is desired
        for node_name, pods in desired.items():
            a = actual.get(node_name)
            if a is not None:
                continue
            pv = self.inf.get("persistentvolumes", None, pv_name)
            if pv is None:
                continue
            modes = (pv.get("spec") or {}).get("accessModes") or []
            others = [n for n in self.asw.get(pv_name, {}) if n != node_name]
            if others and "ReadWriteMany" not in modes and "ReadOnlyMany" not in modes:
                self._multi_attach_error(pv_name, node_name, pods, others)
                continue
            self._attach(pv, node_name)

    def _multi_attach_error(self, pv_name: str, node_name: str, pods: set[tuple], others: list[str]) -> None:
        blocking = []
        for n in others:
            blocking.extend(self.dsw.get(pv_name, {}).get(n, ()))
        for key in sorted(pods):
            pod = self.inf.get("pods", *key)
            if pod is None:
                continue
            if not blocking:
                msg = (f'Multi-Attach error for volume "{pv_name}" Volume is already exclusively attached to one '
                       f"node and can't be attached to another")
            else:
                local = sorted(b[1] for b in blocking if b[0] == key[0])
                other = sum(1 for b in blocking if b[0] != key[0])
                if local:
                    suffix = f"Volume is already used by pod(s) {', '.join(local)}"
                    if other:
                        suffix += f" and {other} pod(s) in different namespaces"
                else:
                    suffix = f"Volume is already used by {other} pod(s) in different namespaces"
                msg = f'Multi-Attach error for volume "{pv_name}" {suffix}'
            self.rec.event(pod, "Warning", "FailedAttachVolume", msg, "attachdetach-controller")
        # the reconciler loops every 100 ms; re-check (and re-emit, rate limited) regularly
        self.q.add_after(pv_name, 10.0)

    def _attach(self, pv: dict, node_name: str) -> None:
        csi = pv["spec"]["csi"]
        name = va_name(csi["volumeHandle"], csi["driver"], node_name)
        a = self._asw_add(pv["metadata"]["name"], node_name)
        existing = self.inf.get(VA, None, name)
        if existing is None:
            self.store.create(VA, {
                "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                "metadata": {"name": name, "annotations": {"csi.alpha.kubernetes.io/node-id": node_name}},
                "spec": {"attacher": csi["driver"], "nodeName": node_name,
                         "source": {"persistentVolumeName": pv["metadata"]["name"]}},
            })
        elif (existing.get("status") or {}).get("attached") and not existing["metadata"].get("deletionTimestamp"):
            a.attached = True
            self.node_q.add(node_name)

    def _detach(self, pv_name: str, node_name: str, a: _Attached) -> None:
        a.detaching = True
        a.attached = False
        self.node_q.add(node_name)  # removed from volumesAttached before the detach starts
        pv = self.inf.get("persistentvolumes", None, pv_name)
        csi = ((pv or {}).get("spec") or {}).get("csi") or {"volumeHandle": pv_name, "driver": LONGHORN_DRIVER}
        name = va_name(csi["volumeHandle"], csi["driver"], node_name)
        if self.inf.get(VA, None, name) is None:
            self._asw_del(pv_name, node_name)
            self.q.add(pv_name)
            return
        try:
            self.store.delete(VA, None, name)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise

    def _sync_states(self) -> None:
        """reconciler.sync: a volume whose VolumeAttachment is gone is detached."""
        for pv_name, nodes in list(self.asw.items()):
            pv = self.inf.get("persistentvolumes", None, pv_name)
            csi = ((pv or {}).get("spec") or {}).get("csi") or {"volumeHandle": pv_name, "driver": LONGHORN_DRIVER}
            for node_name, a in list(nodes.items()):
                if not a.attached:
                    continue
                if self.inf.get(VA, None, va_name(csi["volumeHandle"], csi["driver"], node_name)) is None:
                    self._asw_del(pv_name, node_name)
                    self.node_q.add(node_name)
                    self.q.add(pv_name)

    def _update_node_status(self, node_name: str) -> None:
        """statusupdater: node.status.volumesAttached from the actual state of the world."""
        node = self.inf.get("nodes", None, node_name)
        if node is None:
            return
        want = []
        for pv_name in self._by_node.get(node_name, ()):
            a = self.asw.get(pv_name, {}).get(node_name)
            if a is not None and a.attached:
                pv = self.inf.get("persistentvolumes", None, pv_name)
                csi = ((pv or {}).get("spec") or {}).get("csi") or {"volumeHandle": pv_name, "driver": LONGHORN_DRIVER}
                want.append({"name": unique_volume_name(csi["driver"], csi["volumeHandle"]), "devicePath": ""})
        want.sort(key=lambda v: v["name"])
        if ((node.get("status") or {}).get("volumesAttached") or []) == want:
            return
        n = self.store.get("nodes", None, node_name)
        if want:
            n.setdefault("status", {})["volumesAttached"] = want
        else:
            n.setdefault("status", {}).pop("volumesAttached", None)
        self.store.update("nodes", n)


class ExternalAttacher:
    """kubernetes-csi/external-attacher for one driver, calling its ControllerPublish/Unpublish."""

    def __init__(self, store: Any, clock: Any, informer: Any, recorder: Any, driver: Any, driver_name: str = LONGHORN_DRIVER):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.rec = recorder
        self.driver = driver  # publish(volume_handle, node, va_name) -> bool|str ; unpublish(...) -> bool
        self.driver_name = driver_name
        self.finalizer = finalizer_for_driver(driver_name)
        self.q = WorkQueue(clock, self.sync, "external-attacher", retry_delay=2.0)
        informer.on(VA, lambda et, o: et != "DELETED" and self.q.add(o["metadata"]["name"]))

    def start(self) -> None:
        for va in self.inf.items(VA):
            self.q.add(va["metadata"]["name"])

    def stop(self) -> None:
        self.q.stop()

    def kick(self, va: str) -> None:
        self.q.add(va)

    def sync(self, name: str) -> None:
        va = self.inf.get(VA, None, name)
        if va is None or (va.get("spec") or {}).get("attacher") != self.driver_name:
            return
        spec = va["spec"]
        pv_name = (spec.get("source") or {}).get("persistentVolumeName")
        pv = self.inf.get("persistentvolumes", None, pv_name) if pv_name else None
        handle = (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle", pv_name)
        node = spec["nodeName"]
        if va["metadata"].get("deletionTimestamp"):
            if self.finalizer not in (va["metadata"].get("finalizers") or []):
                return
            done = self.driver.unpublish(handle, node, name)
            if done is True:
                v = self.store.get(VA, None, name)
                v["metadata"]["finalizers"] = [f for f in v["metadata"].get("finalizers") or [] if f != self.finalizer]
                v.setdefault("status", {})["attached"] = False
                self.store.update(VA, v)
                self._pv_finalizer(pv_name, add=False)
            elif isinstance(done, str):
                v = self.store.get(VA, None, name)
                v.setdefault("status", {})["detachError"] = {"time": iso(self.clock.now()), "message": done}
                self.store.update(VA, v)
            return
        if self.finalizer not in (va["metadata"].get("finalizers") or []):
            v = self.store.get(VA, None, name)
            v["metadata"].setdefault("finalizers", []).append(self.finalizer)
            self.store.update(VA, v)
            self._pv_finalizer(pv_name, add=True)
            va = self.inf.get(VA, None, name)
        if (va.get("status") or {}).get("attached"):
            return
        res = self.driver.publish(handle, node, name)
        v = self.store.get(VA, None, name)
        st = v.setdefault("status", {})
        if res is True:
            st["attached"] = True
            st.pop("attachError", None)
            st["attachmentMetadata"] = {}
        elif isinstance(res, str):
            st["attached"] = False
            st["attachError"] = {"time": iso(self.clock.now()), "message": res}
        else:
            return  # in progress: the driver kicks us when it is done
        self.store.update(VA, v)

    def _pv_finalizer(self, pv_name: str | None, add: bool) -> None:
        if not pv_name:
            return
        pv = self.inf.get("persistentvolumes", None, pv_name)
        if pv is None:
            return
        fins = list(pv["metadata"].get("finalizers") or [])
        if add:
            if self.finalizer in fins or pv["metadata"].get("deletionTimestamp"):
                return
            fins.append(self.finalizer)
        else:
            if self.finalizer not in fins:
                return
            # keep it while another VolumeAttachment of this PV remains
            for va in self.inf.vas_of(pv_name):
                if not va["metadata"].get("deletionTimestamp"):
                    return
            fins.remove(self.finalizer)
        p = self.store.get("persistentvolumes", None, pv_name)
        p["metadata"]["finalizers"] = fins
        if not fins:
            p["metadata"].pop("finalizers")
        self.store.update("persistentvolumes", p)
