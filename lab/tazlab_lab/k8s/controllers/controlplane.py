"""The control plane's own endpoints: apiservers, their master leases, etcd quorum.

``pkg/controlplane/reconcilers/lease.go`` (``--endpoint-reconciler-type=lease``, the default): every
running apiserver refreshes ``/registry/masterleases/<advertise-ip>`` in etcd every 10 s with a 15 s
TTL (kept here, never visible through the API), then rewrites the ``default/kubernetes`` Endpoints
(label ``endpointslice.kubernetes.io/skip-mirror``, one subset, addresses sorted, port https 6443)
to exactly the unexpired set; it never writes an empty set. Without etcd quorum nothing is written,
so stale addresses stay.

The EndpointSlice follows ``endpointsadapter.go`` (``EnsureEndpointSliceFromEndpoints``): one slice
named ``kubernetes`` (label ``kubernetes.io/service-name``), ``addressType`` IPv6 only when every
address is IPv6, otherwise IPv4, holding only the addresses of that family (ready); a change of
``addressType`` is a delete + create (the field is immutable). The apiserver reads and writes that
one slice by name and never looks at other slices with the label: it does not delete them.

Dual stack (KEP-2438, "Service and EndpointSlice Reconciling"): a dual-stack apiserver also leases
its secondary-family address and keeps a second slice of the other ``addressType`` under another
name (the KEP leaves the name open; the twin uses ``kubernetes-ipv6`` / ``kubernetes-ipv4``); the
Endpoints stay single-stack (primary family), and the Service becomes ``RequireDualStack`` with a
ClusterIP of each family when the apiservers start dual-stack. With no secondary-family lease left,
an apiserver deletes a stale secondary slice. Knob: ``dual_stack`` (the apiservers restarted with a
second ``--advertise-address`` and a dual-stack ``--service-cluster-ip-range``).

Knobs: ``set_advertise_address`` (an apiserver that keeps advertising an old address after its node
moved), ``restart_apiserver`` (the static pod is re-created: on Talos ``--advertise-address=$(POD_IP)``
is read again, so it advertises its node's current address; also at every boot of its node),
``lose_etcd_quorum`` / ``restore_etcd_quorum``. An apiserver answers at its node's *current*
address while that node is alive; ``live_addresses()`` is what clients (CoreDNS, kube-proxy) can reach.
"""

from __future__ import annotations

import ipaddress
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
    secondary: str | None = None  # the second --advertise-address of a dual-stack apiserver (KEP-2438)


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
        self.secondary_leases: dict[str, float] = {}  # the secondary family's leases (dual-stack apiservers)
        self.secondary_service_ip: str | None = None
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

    def dual_stack(self, secondary: dict[str, str], service_ip: str) -> None:
        """The apiservers restart dual-stack: each named one also advertises ``secondary[name]`` and the
        kubernetes Service is forced to RequireDualStack with ``service_ip`` as its second ClusterIP."""
        for name, ip in secondary.items():
            self.apiservers[name].secondary = ip
        self.secondary_service_ip = service_ip
        svc = self.store.get("services", "default", "kubernetes")
        fam = [_family(self.service_ip), _family(service_ip)]
        svc["spec"].update(clusterIPs=[self.service_ip, service_ip], ipFamilies=fam, ipFamilyPolicy="RequireDualStack")
        self.store.update("services", svc)
        for name in self.apiservers:
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
                    self._lease(a, now)
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
        self._lease(self.apiservers[name], now)
        self._write_endpoints()

    def _lease(self, a: ApiServer, now: float) -> None:
        self.leases[a.advertise] = now + self.lease_ttl
        if a.secondary:
            self.secondary_leases[a.secondary] = now + self.lease_ttl

    @staticmethod
    def _unexpired(leases: dict[str, float], now: float) -> list[str]:
        for ip, exp in list(leases.items()):
            if exp <= now:
                del leases[ip]
        return sorted(leases)  # RepackSubsets orders addresses by their IP string

    def desired(self) -> list[str]:
        return self._unexpired(self.leases, self.clock.now())

    def desired_secondary(self) -> list[str]:
        return self._unexpired(self.secondary_leases, self.clock.now())

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
        family = "IPv6" if all(_family(ip) == "IPv6" for ip in ips) else "IPv4"
        self._ensure_slice("kubernetes", family, [ip for ip in ips if _family(ip) == family], ports)
        secondary = self.desired_secondary()
        other = "IPv4" if family == "IPv6" else "IPv6"
        name2 = "kubernetes-" + other.lower()
        if secondary:
            self._ensure_slice(name2, other, [ip for ip in secondary if _family(ip) == other], ports)
        elif any(a.secondary is not None for a in self.apiservers.values()) or self.secondary_service_ip:
            # a dual-stack-aware apiserver with no secondary lease left cleans up the stale slice
            if self.inf.get(SLICES, "default", name2) is not None:
                self._delete_slice(name2)

    def _ensure_slice(self, name: str, family: str, ips: list[str], ports: list[dict]) -> None:
        want_eps = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
        labels = {"kubernetes.io/service-name": "kubernetes"}
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "addressType": family, "endpoints": want_eps, "ports": ports}
        sl = self.inf.get(SLICES, "default", name)
        if sl is None:
            self._create_slice(body)
        elif sl.get("addressType") != family:
            self._delete_slice(name)  # addressType is immutable: delete, then create
            self._create_slice(body)
        elif sl.get("endpoints") != want_eps or sl.get("ports") != ports or \
                (sl["metadata"].get("labels") or {}) != labels:
            s = self.store.get(SLICES, "default", name)
            s["endpoints"], s["ports"] = want_eps, ports
            s["metadata"]["labels"] = dict(labels)
            self.store.update(SLICES, s)

    def _create_slice(self, body: dict) -> None:
        try:
            self.store.create(SLICES, body)
        except Exception as exc:
            if getattr(exc, "code", None) != 409:
                raise

    def _delete_slice(self, name: str) -> None:
        try:
            self.store.delete(SLICES, "default", name)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise

    def state(self) -> dict:
        now = self.clock.now()
        return {"etcdQuorum": self.etcd_quorum(), "quorumForcedLost": self.quorum_override_lost,
                "apiservers": [{"name": a.name, "node": a.node, "advertise": a.advertise,
                                "running": self.running(a.name), "address": self.world[a.node].address}
                               for a in self.apiservers.values()],
                "masterLeases": {ip: round(exp - now, 3) for ip, exp in
                                 list(self.leases.items()) + list(self.secondary_leases.items()) if exp > now}}


def _family(ip: str) -> str:
    return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"


def _ip_key(ip: str) -> tuple:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (999, ip)
