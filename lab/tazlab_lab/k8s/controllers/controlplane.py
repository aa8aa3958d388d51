"""The control plane's own endpoints: apiservers, their master leases, etcd quorum.

``pkg/controlplane/reconcilers/lease.go`` (``--endpoint-reconciler-type=lease``, the default): every
running apiserver refreshes ``/registry/masterleases/<advertise-ip>`` in etcd every 10 s with a 15 s
TTL (kept here, never visible through the API), then rewrites the ``default/kubernetes`` Endpoints
(label ``endpointslice.kubernetes.io/skip-mirror``, one subset, addresses sorted, port https 6443)
and EndpointSlice (label ``kubernetes.io/service-name``, IPv4, ready) to exactly the unexpired set,
deleting other slices with that label; it never writes an empty set. Without etcd quorum nothing is
written, so stale addresses stay.

Knobs: ``set_advertise_address`` (an apiserver that keeps advertising an old address after its node
moved), ``restart_apiserver`` (the static pod is re-created: on Talos ``--advertise-address=$(POD_IP)``
is read again, so it advertises its node's current address; also at every boot of its node),
``lose_etcd_quorum`` / ``restore_etcd_quorum``. An apiserver answers at its node's *current*
address while that node is alive; ``live_addresses()`` is what clients (CoreDNS, kube-proxy) can reach.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SLICES = "endpointslices.discovery.k8s.io"


@dataclass
class ApiServer:
    name: str
    node: str
    advertise: str
    port: int = 6443


class ControlPlane:
    lease_period = 10.0
    lease_ttl = 15.0

    def __init__(self, store: Any, clock: Any, informer: Any, world: Any, service_ip: str = "10.96.0.1"):
        self.store = store
        self.clock = clock
        self.inf = informer
        self.world = world
        self.service_ip = service_ip
        self.apiservers: dict[str, ApiServer] = {}
        self.etcd_members: list[str] = []
        self.quorum_override_lost = False
        self.leases: dict[str, float] = {}  # /registry/masterleases/<ip> -> expiry
        self._timers: list = []

    def add_apiserver(self, node: str, advertise: str | None = None) -> ApiServer:
        a = ApiServer(name=node, node=node, advertise=advertise or self.world[node].address)
        self.apiservers[node] = a
        if node not in self.etcd_members:
            self.etcd_members.append(node)
        return a

    # -- state -------------------------------------------------------------------------------
    def etcd_quorum(self) -> bool:
        if self.quorum_override_lost:
            return False
        if not self.etcd_members:
            return True
        up = sum(1 for m in self.etcd_members if self.world.alive(m))
        return up * 2 > len(self.etcd_members)

    def running(self, name: str) -> bool:
        return self.world.alive(self.apiservers[name].node)

    def live_addresses(self) -> set[str]:
        return {self.world[a.node].address for a in self.apiservers.values() if self.running(a.name)}

    def apiserver_alive(self, ip: str) -> bool:
        return ip in self.live_addresses()

    # -- knobs -------------------------------------------------------------------------------
    def set_advertise_address(self, name: str, ip: str) -> None:
        self.apiservers[name].advertise = ip

    def restart_apiserver(self, name: str) -> None:
        """The apiserver's container starts again: it advertises its node's current address ($(POD_IP))."""
        a = self.apiservers[name]
        a.advertise = self.world[a.node].address
        self.reconcile(name)

    def _on_world(self, node: str, what: str) -> None:
        if what == "booted":
            for name, a in self.apiservers.items():
                if a.node == node:
                    self.restart_apiserver(name)

    def lose_etcd_quorum(self) -> None:
        self.quorum_override_lost = True

    def restore_etcd_quorum(self) -> None:
        self.quorum_override_lost = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._ensure_service()
        self.world.subscribe(self._on_world)
        n = max(1, len(self.apiservers))
        for i, name in enumerate(sorted(self.apiservers)):
            self._timers.append(self.clock.every(self.lease_period, self.reconcile, name,
                                                 first=self.lease_period * i / n, name=f"endpoint-reconciler-{name}"))
        # at start every apiserver reconciles once (the apiserver's post-start hook)
        if self.etcd_quorum():
            now = self.clock.now()
            for name, a in self.apiservers.items():
                if self.running(name):
                    self.leases[a.advertise] = now + self.lease_ttl
            self._write_endpoints()

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()

    def _ensure_service(self) -> None:
        if self.inf.get("services", "default", "kubernetes") is None:
            try:
                self.store.create("services", {
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "kubernetes", "namespace": "default",
                                 "labels": {"component": "apiserver", "provider": "kubernetes"}},
                    "spec": {"type": "ClusterIP", "clusterIP": self.service_ip, "clusterIPs": [self.service_ip],
                             "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                             "internalTrafficPolicy": "Cluster",
                             "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
                })
            except Exception as exc:
                if getattr(exc, "code", None) != 409:
                    raise

    def reconcile(self, name: str) -> None:
        """One apiserver's lease refresh + endpoint reconcile (ReconcileEndpoints)."""
        if not self.running(name) or not self.etcd_quorum():
            return
        now = self.clock.now()
        a = self.apiservers[name]
        self.leases[a.advertise] = now + self.lease_ttl
        self._write_endpoints()

    def desired(self) -> list[str]:
        now = self.clock.now()
        for ip, exp in list(self.leases.items()):
            if exp <= now:
                del self.leases[ip]
        return sorted(self.leases)  # RepackSubsets orders addresses by their IP string

    def _write_endpoints(self) -> None:
        ips = self.desired()
        if not ips:
            return  # never an empty set
        ports = [{"name": "https", "port": 6443, "protocol": "TCP"}]
        ep = self.inf.get("endpoints", "default", "kubernetes")
        want_subsets = [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}]
        labels = {"endpointslice.kubernetes.io/skip-mirror": "true"}
        if ep is None:
            self.store.create("endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
                                            "subsets": want_subsets})
        elif ep.get("subsets") != want_subsets or ((ep["metadata"].get("labels") or {}).get(
                "endpointslice.kubernetes.io/skip-mirror") != "true"):
            e = self.store.get("endpoints", "default", "kubernetes")
            e["subsets"] = want_subsets
            e["metadata"].setdefault("labels", {}).update(labels)
            self.store.update("endpoints", e)
        want_eps = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
        sl = self.inf.get(SLICES, "default", "kubernetes")
        if sl is None:
            self.store.create(SLICES, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                       "metadata": {"name": "kubernetes", "namespace": "default",
                                                    "labels": {"kubernetes.io/service-name": "kubernetes"}},
                                       "addressType": "IPv4", "endpoints": want_eps, "ports": ports})
        elif sl.get("endpoints") != want_eps or sl.get("ports") != ports or sl.get("addressType") != "IPv4" or \
                (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name") != "kubernetes":
            s = self.store.get(SLICES, "default", "kubernetes")
            s["endpoints"], s["ports"], s["addressType"] = want_eps, ports, "IPv4"
            s["metadata"].setdefault("labels", {})["kubernetes.io/service-name"] = "kubernetes"
            self.store.update(SLICES, s)
        for (ns, name), other in list(self.inf.cache[SLICES].items()):
            if ns == "default" and name != "kubernetes" and \
                    (other["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == "kubernetes":
                try:
                    self.store.delete(SLICES, ns, name)
                except Exception as exc:
                    if getattr(exc, "code", None) != 404:
                        raise

    def state(self) -> dict:
        now = self.clock.now()
        return {"etcdQuorum": self.etcd_quorum(), "quorumForcedLost": self.quorum_override_lost,
                "apiservers": [{"name": a.name, "node": a.node, "advertise": a.advertise,
                                "running": self.running(a.name), "address": self.world[a.node].address}
                               for a in self.apiservers.values()],
                "masterLeases": {ip: round(exp - now, 3) for ip, exp in self.leases.items() if exp > now}}


def _ip_key(ip: str) -> tuple:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (999, ip)
