"""The Talos twin: machines, their etcd cluster, the PKI and one apid endpoint per node."""

from __future__ import annotations

import asyncio
import logging

from . import config as cfg
from .machine import EtcdCluster, TalosMachine, Timings
from .pki import CertKey, TalosPKI, talosconfig, write_talosconfig
from .server import MachineApi, NodeEndpoint

log = logging.getLogger(__name__)


class TalosTwin:
    """Talos nodes on loopback addresses (127.x.y.z), each with apid on ``port`` (50000 like Talos)."""

    def __init__(self, clock, *, port: int = 50000, timings: Timings | None = None, pki: TalosPKI | None = None,
                 cluster_endpoint: str = "https://127.0.0.1:6443"):
        self.clock = clock
        self.port = port
        self.timings = timings or Timings()
        self.pki = pki or TalosPKI()
        self.cluster_endpoint = cluster_endpoint
        self.etcd = EtcdCluster(clock)
        self.machines: dict[str, TalosMachine] = {}
        self.endpoints: dict[str, NodeEndpoint] = {}
        self.api = MachineApi(self)
        self._clients: dict[str, CertKey] = {}
        self._tasks: set[asyncio.Task] = set()
        self._started = False

    # -- building --------------------------------------------------------------------------------
    def add_node(self, name: str, address: str, role: str = "controlplane", config: str | None = None,
                 etcd_member: bool = True, version: str = "v1.13.9") -> TalosMachine:
        """A RUNNING node of Talos ``version``; a control plane is an etcd member (the first one bootstraps)."""
        config = config or cfg.make_config(name, address, role, self.cluster_endpoint, version=version)
        m = TalosMachine(name, config, self.clock, etcd=self.etcd, timings=self.timings, version=version)
        self.machines[name] = m
        if m.etcd is not None and etcd_member:
            if self.etcd.gen == 0:
                self.etcd.bootstrap(m)
            else:  # an established member (a voter), as a cluster that has been running a while
                self.etcd.tick()
                member = self.etcd.member_of(m)
                if member is not None:
                    member.is_learner = False
        self.endpoints[name] = NodeEndpoint(self, m)
        m.subscribe(self._on_change)
        return m

    def lookup(self, key: str) -> TalosMachine | None:
        """A machine by name, hostname or current address (what `node` metadata carries)."""
        if key in self.machines:
            return self.machines[key]
        for m in self.machines.values():
            if key in (m.address, m.hostname):
                return m
        return None

    # -- identities ------------------------------------------------------------------------------
    def client(self, role: str = "os:admin") -> CertKey:
        if role not in self._clients:
            self._clients[role] = self.pki.client_cert(role, cn=role.split(":")[-1])
        return self._clients[role]

    def talosconfig(self, role: str = "os:admin", endpoints: list[str] | None = None,
                    nodes: list[str] | None = None, context: str = "tazlab") -> str:
        addrs = [m.address for m in self.machines.values()]
        cps = [m.address for m in self.machines.values() if m.role == "controlplane"] or addrs
        return talosconfig(context, endpoints or cps, nodes if nodes is not None else addrs,
                           self.pki.ca_pem, self.client(role))

    def write_talosconfig(self, path: str, role: str = "os:admin", endpoints: list[str] | None = None,
                          nodes: list[str] | None = None, context: str = "tazlab") -> str:
        addrs = [m.address for m in self.machines.values()]
        cps = [m.address for m in self.machines.values() if m.role == "controlplane"] or addrs
        return write_talosconfig(path, context, endpoints or cps, nodes if nodes is not None else addrs,
                                 self.pki.ca_pem, self.client(role))

    # -- serving ---------------------------------------------------------------------------------
    def _on_change(self, m: TalosMachine) -> None:
        if not self._started:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.endpoints[m.name].reconcile())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until every endpoint follows its machine (after power/address changes)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for ep in self.endpoints.values():
            await ep.reconcile()

    async def start(self) -> "TalosTwin":
        self._started = True
        for ep in self.endpoints.values():
            await ep.reconcile()
        return self

    async def stop(self) -> None:
        self._started = False
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for ep in self.endpoints.values():
            await ep.stop()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()
