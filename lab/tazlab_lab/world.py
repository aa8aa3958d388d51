"""The lab world: one SimClock, the Kubernetes twin, the Proxmox twin and the Talos twins.

POWER BELONGS TO PROXMOX. The world watches fakepve's VM objects (in-process) on the world's
clock and drives the node models of the other twins from what it sees:

* a VM that stops (API stop/shutdown, fence_pve, a fault, its PVE host dying) is a dead node
  everywhere: the kubelet stops heart-beating, the node's Talos endpoint refuses connections, its
  etcd member (control planes) is down;
* a VM that starts boots: its Talos machine powers on (the Talos API answers after
  ``boot.talos_secs``, Talos is RUNNING ``boot.running_secs`` later), then its kubelet starts
  (it acts ``boot.kubelet_secs`` later; the Kubernetes twin brings the DaemonSet pods back);
* the guest powering itself off (Talos Shutdown) stops the VM in Proxmox; a Proxmox shutdown
  (ACPI) makes Talos shut down gracefully first; a Talos reboot keeps the VM running but restarts
  the kubelet; an IP change applied through Talos moves the Talos endpoint and the Kubernetes
  twin's machine address (apiservers keep advertising what they advertised);
* when the control planes' etcd loses quorum (members down), the Kubernetes twin's does too;
* a VM reset or rebooted through Proxmox (its ``started_at`` changes) is a power cycle;
* a network partition keeps the VM running per Proxmox while the kubelet and the Talos API are
  unreachable.

The world also runs a small control endpoint (:mod:`tazlab_lab.control`, HTTP on loopback) for
``tazlab-lab fault`` and ``tazlab-lab status``. The faults themselves (power, network, etcd, Proxmox
hosts, the Kubernetes API) are :mod:`tazlab_lab.faults`; the world keeps the state they change and the
coupling above. The Kubernetes twin's own control endpoint is not started: its power knobs would bypass
Proxmox.

Addresses: the scenario's node addresses are data (192.168.1.71); each data /24 maps to a loopback
/24 with the same host octet (127.0.10.71 by default, a random 127.a.b.0/24 in isolated mode) where
the node's Talos API listens. Proxmox listens on 127.0.80.1:8006 (isolated: a free port), the
Kubernetes API on 127.0.0.1 (a free port).

Time: see :mod:`tazlab_lab.proxmox` for what ``advance()`` moves inside fakepve and what it cannot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from .clock import SimClock
from .ports import free_port_on, port_free
from .proxmox import LabCA, ProxmoxSide, write_private

log = logging.getLogger(__name__)

#: How often (simulated seconds) the world looks at fakepve's VMs.
OBSERVE_PERIOD = 0.5
#: Default boot timings (simulated seconds after the VM starts).
#: talos_secs: VM start -> the Talos API answers; running_secs: -> Talos RUNNING (the kubelet starts);
#: kubelet_secs: kubelet start -> it acts (heart-beats, runs pods) in the Kubernetes twin.
DEFAULT_BOOT = {"talos_secs": 10.0, "running_secs": 10.0, "kubelet_secs": 10.0}
DEFAULT_TALOS_VERSION = "v1.13.9"   # what a node reports when the scenario names no talosVersion


@dataclass
class NodeState:
    """The world's view of one machine: what Proxmox says about its power, and its network."""

    name: str
    role: str
    system_uuid: str
    vmid: int
    powered: bool = True          # the VM runs (per fakepve's model)
    booted: bool = True           # the OS is up (Talos answers)
    kubelet: bool = True          # the kubelet runs and heart-beats
    partitioned: bool = False     # running, but unreachable from the rest of the world
    started_at: float | None = None
    address: str = ""             # the node's current loopback address (Talos endpoint)
    apiserver_sans: tuple | None = None   # cluster.apiServer.certSANs of the running config
    history: list = field(default_factory=list)

    @property
    def state(self) -> str:
        if not self.powered:
            return "off"
        if not self.booted:
            return "booting"
        if self.partitioned:
            return "partitioned"
        return "running" if self.kubelet else "starting-kubelet"


def load_scenario(name_or_path: str | dict) -> dict:
    """The scenario (validated, defaults applied) by name (``tazlab``), YAML path, or dict."""
    from .k8s.scenario import load_scenario as k8s_load_scenario

    return k8s_load_scenario(name_or_path)


def loopback_map(scenario: dict, prefix: str | None) -> dict[str, str]:
    """Data address -> loopback address for every node address the scenario names.

    The scenario's addresses are data (192.168.1.71); servers bind 127.x. Each /24 of data maps to
    one loopback /24 with the same last octet (192.168.1.71 -> <prefix>.71), so an IP change inside
    the data subnet (192.168.1.253) has a loopback address too.
    """
    talos = scenario.get("talos") or {}
    prefix = prefix or talos.get("loopbackPrefix") or "127.0.10"
    subnets: list[str] = []
    out: dict[str, str] = {}
    for node in scenario["nodes"]:
        for addr in [node["addresses"]["InternalIP"], *(node.get("alternateAddresses") or [])]:
            net = addr.rsplit(".", 1)[0]
            if net not in subnets:
                subnets.append(net)
    for node in scenario["nodes"]:
        for addr in [node["addresses"]["InternalIP"], *(node.get("alternateAddresses") or [])]:
            net, host = addr.rsplit(".", 1)
            if addr.startswith("127."):
                out[addr] = addr
            else:
                base = prefix.rsplit(".", 1)
                third = int(base[1]) + subnets.index(net)
                out[addr] = "{0}.{1}.{2}".format(base[0], third, host)
    return out


class LabWorld:
    """Everything of the lab on one event loop and one SimClock (``World`` is the older name).

    ``await world.start()`` on the loop that will serve it. ``time_scale=None``: simulated time moves
    only with ``await world.advance(s)``; a number: the clock runs in real time at that scale
    (real seconds per simulated second), and fakepve's time_scale follows it.
    """

    def __init__(self, scenario: str | dict = "tazlab", directory: str | None = None, *,
                 time_scale: float | None = None, clock: SimClock | None = None,
                 proxmox_host: str | None = None, proxmox_port: int | None = None,
                 control_host: str = "127.0.0.1", control_port: int = 0,
                 boot: dict | None = None, isolated: bool = False, talos_port: int = 50000,
                 kube_host: str = "127.0.0.1", kube_port: int = 0, loopback_prefix: str | None = None,
                 settle: float = 60.0):
        self.scenario = load_scenario(scenario)
        self.scenario_name = scenario if isinstance(scenario, str) else self.scenario.get("name", "custom")
        self.directory = os.path.abspath(directory or os.path.join(os.getcwd(), "lab-world"))
        self.time_scale = time_scale
        self.clock = clock or SimClock()
        self.ca = LabCA()
        self.boot = dict(DEFAULT_BOOT)
        settings = self.scenario.get("settings") or {}
        if "bootSeconds" in settings:  # power-on to kubelet Ready, as the Kubernetes twin reads it
            self.boot["kubelet_secs"] = max(1.0, float(settings["bootSeconds"]) - self.boot["talos_secs"]
                                            - self.boot["running_secs"])
        self.boot.update((self.scenario.get("world") or {}).get("boot") or {})
        self.boot.update(boot or {})
        self._kube_host, self._kube_port = kube_host, kube_port
        #: Simulated seconds run at start (as fast as the CPU goes) so the cluster has settled --
        #: pods scheduled and Running, volumes attached -- before anyone looks.
        self.settle_secs = float(settle)
        if loopback_prefix is None and isolated:
            import random
            rng = random.Random(os.getpid() ^ random.getrandbits(32))
            loopback_prefix = "127.{0}.{1}".format(rng.randint(100, 250), rng.randint(1, 200))
        #: the loopback /24 of the first data subnet (provisioned VMs lease their addresses there)
        self.loopback_prefix = loopback_prefix or (self.scenario.get("talos") or {}).get("loopbackPrefix") or "127.0.10"
        self.addresses = loopback_map(self.scenario, loopback_prefix)
        self.data_addresses = {v: k for k, v in self.addresses.items()}
        self.control_host = control_host
        #: Tests: pick free ports for everything, so parallel worlds (pytest-xdist) never collide.
        self.isolated = isolated
        self.control_port = control_port
        self.nodes: dict[str, NodeState] = {}
        self.events: list[dict] = []
        self.kube = None
        self.talos = None
        self.proxmox: ProxmoxSide | None = None
        self._proxmox_host = proxmox_host
        self._proxmox_port = proxmox_port
        self._observer = None
        self._runner = None
        self.control_url: str | None = None
        self.stopped: asyncio.Event | None = None  # created on the loop in start()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = False
        self.dead_hosts: set[str] = set()
        self.ha_timers: dict[int, Any] = {}
        self._talos_port = talos_port
        self._tasks: set[asyncio.Future] = set()
        self._etcd_quorum = True
        self._errors: list[BaseException] = []
        self._tasklog_seen = 0
        self._changed = False
        self.provisioner = None   # a scenario with a provisioning: section (provisioning.py)

    # ----------------------------------------------------------------------------- nodes
    def cluster_nodes(self) -> list[dict]:
        """``[{name, role, system_uuid, address (loopback), data_address, alternate}]`` in scenario order."""
        out = []
        for node in self.scenario["nodes"]:
            data = node["addresses"]["InternalIP"]
            out.append({
                "name": node["name"],
                "role": node["role"],
                "system_uuid": node["systemUUID"],
                "data_address": data,
                "address": self.addresses[data],
                "alternate": [self.addresses[a] for a in node.get("alternateAddresses") or []],
                # the Talos version the node runs (Version RPC): per node, else the scenario's talos.version
                "talos_version": str(node.get("talosVersion") or (self.scenario.get("talos") or {}).get("version")
                                     or DEFAULT_TALOS_VERSION),
            })
        return out

    # ----------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        os.makedirs(self.directory, exist_ok=True)
        self._start_kube_construct()
        nodes = self.cluster_nodes()
        if not nodes and not self.scenario.get("provisioning"):
            raise ValueError("scenario {0!r} has no nodes".format(self.scenario_name))
        self.proxmox = ProxmoxSide(self.clock, nodes, self.scenario.get("proxmox"), host=self._proxmox_host,
                                   port=self._proxmox_port, ca=self.ca)
        if self.scenario.get("provisioning"):
            from .provisioning import Provisioner
            self.provisioner = Provisioner(self)
            self.provisioner.setup()
        for spec in self.proxmox.specs:
            vm = self.proxmox.pve.vm(spec.vmid)
            running = vm.status == "running"
            self.nodes[spec.name] = NodeState(spec.name, spec.role, spec.system_uuid, spec.vmid, powered=running,
                                              booted=running, kubelet=running, started_at=vm.started_at,
                                              address=self.addresses[self.data_address(spec.name)])
        try:
            await self.proxmox.start(self.directory)
            await self._start_kube()
            await self._start_talos()
            for state in self.nodes.values():   # VMs the scenario leaves stopped are dead everywhere
                if not state.powered:
                    self._kube_power(state.name, False)
            await self.settle()
            self._observer = self.clock.every(OBSERVE_PERIOD, self.observe, name="world-observe-proxmox")
            if self.settle_secs:
                await self.clock.advance(self.settle_secs)
            await self._start_control()
            if self.time_scale is not None:
                self.clock.start(self.time_scale)
            self.proxmox.sync_time_scale()
            self.write_files()
            self.started = True
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._observer is not None:
            self._observer.cancel()
            self._observer = None
        await self.clock.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.talos is not None:
            await _maybe_await(self.talos.stop())
        if self.kube is not None:
            await _maybe_await(self.kube.stop())
        if self.proxmox is not None:
            await self.proxmox.stop()
        self.started = False
        if self.stopped is not None:
            self.stopped.set()

    async def advance(self, seconds: float) -> None:
        """Move simulated time (every twin's timers, fakepve's task durations, the coupling)."""
        await self.clock.advance(seconds)

    async def run_until(self, predicate: Callable[[], bool], timeout: float, step: float = 1.0) -> bool:
        return await self.clock.run_until(predicate, timeout, step)

    async def set_time_scale(self, time_scale: float) -> None:
        """Re-scale the running clock (real seconds per simulated second; simulated time never jumps).
        A lab-tooling knob, not a fault: tests run slow phases fast and Ansible-bound phases near real time."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        await self.clock.stop()
        self.clock.start(time_scale)
        self.time_scale = time_scale
        self.proxmox.sync_time_scale()

    # ------------------------------------------------------------- Kubernetes twin (hooks)
    def _start_kube_construct(self) -> None:
        from .k8s.cluster import KubeTwin

        self.kube = KubeTwin(self.scenario, clock=self.clock, workdir=os.path.join(self.directory, "k8s"),
                             host=self._kube_host, port=self._kube_port)

    async def _start_kube(self) -> None:
        # The API server only: faults go through the world (power belongs to Proxmox), not the
        # Kubernetes twin's own control endpoint.
        # A scenario without nodes (provisioning from scratch) has no apiserver yet: the API starts when
        # the cluster is bootstrapped (provisioning.py), as a VIP answers only once an apiserver runs.
        await self.kube.start(serve=bool(self.scenario["nodes"]), control=False)

    def _kube_power(self, name: str, on: bool) -> None:
        """Tell the Kubernetes twin the kubelet of ``name`` runs (``on``) or is dead."""
        if self.kube is None:
            return
        if on:
            self.spawn(self.kube.power_on(name, boot_seconds=float(self.boot["kubelet_secs"])))
        else:
            self.spawn(self.kube.power_off(name))

    def set_kube_reachable(self, name: str, reachable: bool) -> None:
        """Tell the Kubernetes twin the kubelet of ``name`` is reachable again (``reachable``) or partitioned."""
        if self.kube is None:
            return
        self.spawn(self.kube.heal(name) if reachable else self.kube.partition(name))

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the world: clock timers (every twin's), the Kubernetes twin's
        informers and store subscribers, and the world's own coupling hooks."""
        out = list(self._errors)
        out += list(self.kube.errors) if self.kube is not None else list(self.clock.errors)
        return out

    def spawn(self, value) -> None:
        """Run what a twin's hook returned: nothing (done), or a coroutine (scheduled on the loop)."""
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            task = asyncio.ensure_future(value)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("world hook failed: %r", task.exception())
            self._errors.append(task.exception())

    # ------------------------------------------------------------------ Talos twin (hooks)
    async def _start_talos(self) -> None:
        """One Talos machine per node on its loopback address; power follows the VM."""
        from .talos import TalosTwin, Timings

        timings = Timings(power_on=float(self.boot["talos_secs"]), boot=float(self.boot["running_secs"]))
        port = self._talos_port
        addresses = [n["address"] for n in self.cluster_nodes()]
        if self.isolated:
            port = free_port_on(addresses)
        else:
            busy = [a for a in addresses if not port_free(a, port)]
            if busy:
                raise OSError("Talos port {0} is in use on {1} (another lab world? use isolated mode)".format(
                    port, ", ".join(busy)))
        self.talos = TalosTwin(self.clock, port=port, timings=timings,
                               cluster_endpoint=self.kube_server() or "https://127.0.0.1:6443")
        from .counters import CountingApi
        self.talos.api = CountingApi(self.talos.api)   # Talos RPC counts (request_counts)
        if self.kube is not None and self.kube.api is not None:
            # Kubeconfig RPC on the scenario's nodes (their configs carry no Kubernetes CA): the twin's admin kubeconfig
            self.talos.kubeconfig_fallback = lambda: self.kube.api.kubeconfig_path.read_bytes()
        for node in self.cluster_nodes():
            role = "controlplane" if node["role"] == "control-plane" else "worker"
            machine = self.talos.add_node(node["name"], node["address"], role=role, version=node["talos_version"])
            machine.subscribe(self._on_machine)
            self._apiserver_cert(machine, self.nodes[node["name"]])   # the SANs the apiserver started with
            if not self.nodes[node["name"]].powered:
                machine.power_off()
        from . import hardening
        hardening.attach(self)   # wipes reach Longhorn; the etcd view of Secrets; SMBIOS UUIDs for nodeID keys
        await self.talos.start()

    def data_address(self, name: str) -> str:
        """The scenario's InternalIP of node ``name`` (its address on the data network, before any IP change)."""
        for node in self.scenario["nodes"]:
            if node["name"] == name:
                return node["addresses"]["InternalIP"]
        raise KeyError(name)

    def machine(self, name: str):
        return self.talos.machines[name]

    def _on_machine(self, machine) -> None:
        """A Talos machine changed: a guest that powered itself off stops its VM; the kubelet runs
        exactly while Talos is RUNNING (a reboot through Talos restarts it, the VM keeps running)."""
        try:
            self._follow_machine(machine)
        except Exception as exc:  # the Talos model only logs listener errors: keep them for the tests
            log.exception("world: following Talos machine %s failed", machine.name)
            self._errors.append(exc)

    def _follow_machine(self, machine) -> None:
        from .talos.machine import RUNNING

        state = self.nodes.get(machine.name)
        if state is None:
            return
        vm = self.proxmox.pve.vm(state.vmid)
        if not machine.powered and state.powered and vm is not None and vm.status == "running":
            # talosctl shutdown / ACPI: the guest powers off, QEMU exits, Proxmox shows it stopped.
            vm.status = vm.qmpstatus = "stopped"
            state.powered = False
            state.started_at = None
            self.record_event(machine.name, "power-off", "the guest powered itself off (Talos shutdown)")
        if machine.address != state.address:
            # An IP change (new config applied): the kubelet reports the new InternalIP; apiservers
            # keep advertising what they advertised (the Kubernetes twin's rule).
            old, state.address = state.address, machine.address
            data = self.data_addresses.get(machine.address, machine.address)
            self.record_event(machine.name, "address", "{0} -> {1} ({2})".format(old, machine.address, data))
            if self.kube is not None:
                self.spawn(self.kube.set_node_address(machine.name, data))
        self._apiserver_cert(machine, state)
        from . import hardening
        hardening.follow(self, machine, state)
        booted = machine.powered and machine.os_up
        if booted != state.booted:
            state.booted = booted
            self.record_event(machine.name, "talos-up" if booted else "talos-down",
                              "Talos API answers" if booted else "Talos API down")
        kubelet = machine.powered and machine.os_up and machine.stage == RUNNING
        if kubelet != state.kubelet:
            state.kubelet = kubelet
            self.record_event(machine.name, "kubelet-start" if kubelet else "kubelet-stop",
                              "Talos running: kubelet starts" if kubelet else "kubelet gone")
            self._kube_power(machine.name, kubelet)
        self.sync_etcd_quorum()

    def _apiserver_cert(self, machine, state: NodeState) -> None:
        """Talos re-issues the kube-apiserver certificate when its SANs change and re-creates the static
        pod (its ``talos.dev/secrets-version`` annotation changes); the new container reads
        ``--advertise-address=$(POD_IP)`` again, i.e. the node's current address. Modelled for a change of
        ``cluster.apiServer.certSANs`` in the running config (a boot restarts it anyway)."""
        if state.role != "control-plane" or not machine.current:
            return
        from .talos import config as talos_config
        try:
            docs = talos_config.parse(machine.current)
        except talos_config.ConfigError:
            return
        addresses = talos_config.addresses(docs)
        if addresses and addresses[0] != machine.address:
            return      # the new network config is not live yet: the certificate follows once it is
        v1 = talos_config.v1alpha1(docs) or {}
        sans = tuple(str(x) for x in (((v1.get("cluster") or {}).get("apiServer") or {}).get("certSANs") or []))
        if state.apiserver_sans is None:
            state.apiserver_sans = sans
            return
        if sans == state.apiserver_sans:
            return
        state.apiserver_sans = sans
        if self.kube is None or not (machine.powered and machine.os_up) or \
                machine.name not in getattr(self.kube.control_plane, "apiservers", {}):
            return
        self.record_event(machine.name, "apiserver-restart",
                          "apiserver certSANs {0}: static pod re-created".format(list(sans)))
        self.kube.restart_apiserver(machine.name)

    def sync_etcd_quorum(self) -> None:
        """The apiserver needs etcd: when the control planes' etcd loses quorum, so does the twin."""
        if self.talos is None or self.talos.etcd.gen == 0:
            return
        quorum = self.talos.etcd.has_quorum()
        if quorum == self._etcd_quorum:
            return
        self._etcd_quorum = quorum
        self.record_event("-", "etcd-quorum" if quorum else "etcd-quorum-lost",
                          "etcd has quorum" if quorum else "etcd lost quorum")
        if self.kube is not None:
            fn = getattr(self.kube, "restore_etcd_quorum" if quorum else "lose_etcd_quorum", None)
            if fn is not None:
                self.spawn(fn())

    def etcd_members_lost(self) -> None:
        """etcd members lost their data (a fault): the quorum follows as in :meth:`sync_etcd_quorum`, and even
        before the Talos twin's first bootstrap (no generation to sync with) the Kubernetes twin loses quorum
        once etcd has none."""
        self.sync_etcd_quorum()
        if self._etcd_quorum and self.kube is not None and not self.talos.etcd.has_quorum():
            self._etcd_quorum = False
            self.spawn(self.kube.lose_etcd_quorum())

    # ---------------------------------------------------------------------- the coupling
    async def observe(self) -> None:
        """Compare fakepve's VMs with the world's nodes and act on every change of power."""
        pve = self.proxmox.pve
        self.proxmox.sync_time_scale()   # follows a clock started (or re-scaled) after the world
        self._follow_shutdown_tasks()
        for state in self.nodes.values():
            vm = pve.vm(state.vmid)
            alive = vm is not None and vm.status == "running" and vm.node not in self.dead_hosts
            if state.powered and not alive:
                self._node_dead(state, "vm {0} {1}".format(state.vmid, vm.status if vm else "gone"))
            elif not state.powered and alive:
                self._node_boot(state, vm.started_at)
            elif alive and vm.started_at != state.started_at:
                # reset / reboot through Proxmox: a power cycle of the guest
                self._node_dead(state, "vm {0} reset".format(state.vmid))
                self._node_boot(state, vm.started_at)
        if self.provisioner is not None:
            await self.provisioner.observe()
        if self._changed or self._tasks:
            # Something moved: let the endpoints and hooks follow before the next timer runs.
            self._changed = False
            await self.settle()

    def _follow_shutdown_tasks(self) -> None:
        """A running ``qmshutdown`` task (ACPI power button) makes an ACPI-aware guest shut down
        gracefully: Talos goes SHUTTING_DOWN (the kubelet stops), then powers off, which stops the
        VM; fakepve's task then ends OK. A guest without ACPI ignores it (the task times out)."""
        pve = self.proxmox.pve
        log_ = pve.tasklog
        new, self._tasklog_seen = log_[self._tasklog_seen:], len(log_)
        for task in new:
            if task.get("type") != "qmshutdown" or task.get("status") != "running":
                continue
            for state in self.nodes.values():
                vm = pve.vm(state.vmid)
                if str(state.vmid) == task.get("id") and vm is not None and vm.acpi and state.booted:
                    self.record_event(state.name, "acpi-shutdown", "Proxmox shutdown: the guest shuts down")
                    self.machine(state.name).shutdown()

    def _node_dead(self, state: NodeState, why: str) -> None:
        state.powered = False
        state.started_at = None
        self.record_event(state.name, "power-off", why)
        self.machine(state.name).power_off()

    def _node_boot(self, state: NodeState, started_at: float | None) -> None:
        state.powered = True
        state.started_at = started_at
        self.record_event(state.name, "power-on", "vm {0} running; booting".format(state.vmid))
        self.machine(state.name).power_on()

    def record_event(self, node: str, kind: str, detail: str) -> None:
        """Append what happened to the world's events (and the node's history); the coupling follows at the next
        look."""
        self._changed = True
        entry = {"time": self.clock.now_iso(), "node": node, "event": kind, "detail": detail}
        self.events.append(entry)
        if node in self.nodes:
            self.nodes[node].history.append(entry)
        log.info("%s %s: %s (%s)", entry["time"], node, kind, detail)

    async def settle(self) -> None:
        """Let the twins follow the last change (endpoints bound/closed, hooks run)."""
        while True:
            self._tasks = {t for t in self._tasks if not t.done()}
            if not self._tasks:
                break
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.talos is not None:
            # Every endpoint follows its machine now (reconcile is idempotent and serialised per node).
            for endpoint in list(self.talos.endpoints.values()):
                await endpoint.reconcile()

    def node(self, name: str) -> NodeState:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError("no node {0!r} (nodes: {1})".format(name, ", ".join(self.nodes))) from None

    def vm(self, name: str):
        if name not in self.nodes and self.provisioner is not None:
            vm = self.provisioner.vm_named(name)   # a provisioned node: its Node name, VM name or vm-<vmid>
            if vm is not None:
                return vm
        return self.proxmox.pve.vm(self.node(name).vmid)

    # ----------------------------------------------------------------------------- files
    def write_files(self) -> None:
        """kubeconfig, talosconfig, proxmox.env, inventory.yaml and the PKI into the directory."""
        d = self.directory
        self.proxmox.write_env(os.path.join(d, "proxmox.env"))
        if self.kube.api is None:   # nothing to talk to yet (an empty lab): the provisioning writes its own
            write_private(os.path.join(d, "inventory.yaml"), yaml.safe_dump(self.inventory(), sort_keys=False))
            return
        self.kube.api.write_kubeconfig(os.path.join(d, "kubeconfig"))
        # Endpoints carry the port when it is not Talos' 50000 (isolated worlds); nodes are addresses.
        port = self.talos.port
        cps = [m.address for m in self.talos.machines.values() if m.role == "controlplane"]
        endpoints = cps if port == 50000 else ["{0}:{1}".format(a, port) for a in cps]
        self.talos.write_talosconfig(os.path.join(d, "talosconfig"), endpoints=endpoints)
        write_private(os.path.join(d, "inventory.yaml"), yaml.safe_dump(self.inventory(), sort_keys=False))
        write_private(os.path.join(d, "tazlab.cluster.yml"), yaml.safe_dump(self.inventory_plugin_config(), sort_keys=False))

    def paths(self) -> dict[str, str]:
        d = self.directory
        return {
            "kubeconfig": os.path.join(d, "kubeconfig"),
            "talosconfig": os.path.join(d, "talosconfig"),
            "proxmox_env": os.path.join(d, "proxmox.env"),
            "proxmox_ca": self.proxmox.cafile if self.proxmox else os.path.join(d, "ca.crt"),
            "inventory": os.path.join(d, "inventory.yaml"),
            "inventory_plugin": os.path.join(d, "tazlab.cluster.yml"),
        }

    def talos_endpoint(self, name: str) -> str | None:
        """``address:port`` of the node's Talos API (its current address)."""
        if self.talos is None or name not in self.talos.machines:
            return None
        return "{0}:{1}".format(self.talos.machines[name].address, self.talos.port)

    def kube_server(self) -> str | None:
        if self.kube is not None and self.kube.api is not None:
            return self.kube.api.url
        return None

    def inventory(self) -> dict:
        """The Ansible inventory for the runbooks: connection settings as group vars of ``all``."""
        px = self.proxmox
        paths = self.paths()
        groups: dict[str, dict] = {}
        for spec in px.specs:
            group = "control_plane" if spec.role == "control-plane" else "workers"
            host = {
                "ansible_connection": "local",
                "node_name": spec.name,
                "node_role": spec.role,
                "system_uuid": spec.system_uuid,
                "proxmox_vmid": spec.vmid,
                "proxmox_node": spec.pve_node,
                "proxmox_ha_managed": bool(spec.ha),
            }
            node = next(n for n in self.cluster_nodes() if n["name"] == spec.name)
            host["ansible_host"] = self.nodes[spec.name].address
            host["talos_node"] = self.nodes[spec.name].address
            host["node_internal_ip"] = node["data_address"]
            if node["alternate"]:
                host["talos_alternate_addresses"] = node["alternate"]
            groups.setdefault(group, {"hosts": {}})["hosts"][spec.name] = host
        cps = [self.nodes[s.name].address for s in px.specs if s.role == "control-plane"]
        all_vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "tazlab_lab_dir": self.directory,
            # Kubernetes (kubernetes.core option names)
            "k8s_kubeconfig": paths["kubeconfig"],
            "k8s_host": self.kube_server(),
            "k8s_validate_certs": True,
            # Proxmox (community.proxmox / tazlab.resilience.proxmox_auth option names)
            "proxmox_api_host": px.host,
            "proxmox_api_port": px.port,
            "proxmox_api_user": px.user,
            "proxmox_api_password": px.password,
            "proxmox_api_token_id": px.token_name,
            "proxmox_api_token_secret": px.token_secret,
            "proxmox_ca_path": px.cafile,
            "proxmox_validate_certs": True,
            "proxmox_nodes": list(px.pve_nodes),
            # Talos
            "talos_talosconfig": paths["talosconfig"],
            "talos_endpoints": cps,
            "talos_port": self.talos.port if self.talos is not None else self._talos_port,
        }
        # The runbooks' shape (roles/disaster_recovery/README.md): dicts of module options.
        all_vars["tazlab_kubernetes"] = {"kubeconfig": paths["kubeconfig"]}
        all_vars["tazlab_proxmox"] = {
            "api_host": px.host, "api_port": px.port, "api_user": px.user,
            "api_token_id": px.token_name, "api_token_secret": px.token_secret,
            "ca_path": px.cafile, "validate_certs": True,
        }
        all_vars["tazlab_talos"] = {"talosconfig": paths["talosconfig"]}
        if self.provisioner is not None:
            all_vars["tazlab_provision"] = self.provisioner.inventory_vars()
        local = {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
        return {"all": {"vars": all_vars, "hosts": local, "children": groups}}

    def inventory_plugin_config(self) -> dict:
        """The same inventory as a real cluster gets it: a ``tazlab.resilience.cluster`` inventory plugin file.

        The plugin discovers the nodes and their VMs itself (by SMBIOS UUID) from the Kubernetes and
        Proxmox APIs. Only what is lab-specific is configured: the credentials, and (``compose``) the
        loopback addresses the Talos API of each node listens on instead of its InternalIP.
        """
        px = self.proxmox
        paths = self.paths()
        talos = {"talosconfig": paths["talosconfig"]}
        if self.talos is not None:
            talos["port"] = self.talos.port
        nodes = self.cluster_nodes()
        loopback = {n["name"]: self.nodes[n["name"]].address for n in nodes}
        alternate = {n["name"]: n["alternate"] for n in nodes if n["alternate"]}
        compose = {
            "ansible_host": "{0!r}[node_name]".format(loopback),
            "talos_node": "{0!r}[node_name]".format(loopback),
            "talos_endpoint": "{0!r}[node_name] ~ ':' ~ {1}".format(loopback, talos.get("port", 50000)),
        }
        if alternate:
            compose["talos_alternate_addresses"] = "{0!r}.get(node_name, [])".format(alternate)
        return {
            "plugin": "tazlab.resilience.cluster",
            "kubernetes": {"kubeconfig": paths["kubeconfig"]},
            "proxmox": {"api_host": px.host, "api_port": px.port, "api_user": px.user,
                        "api_token_id": px.token_name, "api_token_secret": px.token_secret,
                        "ca_path": px.cafile, "validate_certs": True},
            "talos": talos,
            "compose": compose,
        }

    # ----------------------------------------------------------------------------- status
    def status(self) -> dict:
        """A JSON-able picture of the world: clock, machines, VMs and (with the Kubernetes twin) the cluster."""
        out: dict[str, Any] = {
            "scenario": self.scenario_name,
            "clock": {"now": self.clock.now(), "iso": self.clock.now_iso(), "time_scale": self.clock.time_scale},
            "machines": [
                dict({"name": s.name, "role": s.role, "vmid": s.vmid, "state": s.state, "powered": s.powered,
                      "booted": s.booted, "kubelet": s.kubelet, "partitioned": s.partitioned},
                     **self._talos_status(s.name))
                for s in self.nodes.values()
            ],
            "proxmox": {
                "url": self.proxmox.url,
                "quorate": bool(self.proxmox.pve.quorate),
                "hosts": {n: ("online" if s.get("online", True) else "offline")
                          for n, s in sorted(self.proxmox.pve.nodes.items())},
                "vms": self.proxmox.summary(),
            },
            "events": self.events[-20:],
            "provisioned": self.provisioner.status() if self.provisioner is not None else [],
            "etcd": self._etcd_status(),
        }
        out.update(self.kube_status())
        return out

    def _etcd_status(self) -> dict:
        """etcd as the Talos twin has it, and every time it lost or regained quorum since the world started."""
        if self.talos is None:
            return {}
        etcd = self.talos.etcd
        return {"quorum": etcd.has_quorum() if etcd.gen else None,
                "members": [{"hostname": m.hostname, "peer_urls": list(m.peer_urls), "is_learner": m.is_learner,
                             "running": m.node.etcd_running} for m in etcd.members.values()],
                "quorum_events": [e for e in self.events if e["event"] in ("etcd-quorum-lost", "etcd-quorum")]}

    def _talos_status(self, name: str) -> dict:
        if self.talos is None or name not in self.talos.machines:
            return {}
        from .talos.machine import STAGE_NAMES
        m = self.talos.machines[name]
        return {"talos": {"endpoint": self.talos_endpoint(name), "stage": STAGE_NAMES.get(m.stage, str(m.stage)),
                          "reachable": m.reachable, "etcd": m.etcd_running if m.etcd is not None else None}}

    def kube_status(self) -> dict:
        store = getattr(self.kube, "store", None) if self.kube is not None else None
        if store is None:
            return {}
        nodes = []
        for node in store.list("nodes"):
            ready = next((c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})
            nodes.append({"name": node["metadata"]["name"], "ready": ready.get("status", "Unknown"),
                          "reason": ready.get("reason"),
                          "taints": ["{0}:{1}".format(t.get("key"), t.get("effect"))
                                     for t in node.get("spec", {}).get("taints", []) or []],
                          "unschedulable": bool(node.get("spec", {}).get("unschedulable"))})
        pods = []
        for pod in store.list("pods"):
            meta = pod["metadata"]
            pods.append({"namespace": meta.get("namespace"), "name": meta["name"],
                         "node": pod.get("spec", {}).get("nodeName"),
                         "phase": pod.get("status", {}).get("phase"),
                         "terminating": bool(meta.get("deletionTimestamp"))})
        volumes = []
        try:
            for vol in store.list("volumes.longhorn.io"):
                st = vol.get("status", {})
                volumes.append({"name": vol["metadata"]["name"], "state": st.get("state"),
                                "robustness": st.get("robustness"), "node": st.get("currentNodeID")})
        except Exception:  # noqa: BLE001 - a scenario without Longhorn
            pass
        attachments = []
        for va in store.list("volumeattachments.storage.k8s.io"):
            spec = va.get("spec", {})
            attachments.append({"name": va["metadata"]["name"], "node": spec.get("nodeName"),
                                "pv": (spec.get("source") or {}).get("persistentVolumeName"),
                                "attached": bool(va.get("status", {}).get("attached")),
                                "deleting": bool(va["metadata"].get("deletionTimestamp"))})
        return {"nodes": nodes, "pods": pods, "volumes": volumes, "attachments": attachments}

    def request_counts(self) -> dict:
        """{"counts": [{"verb", "resource", "count"}], "total": n} of the Kubernetes API requests so far, plus
        ``proxmox`` ({"counts": [{"method", "path", "count"}], "total"}) and ``talos`` ({"counts": [{"rpc",
        "count"}], "total"}) for the other twins (counters.py)."""
        store = getattr(self.kube, "store", None) if self.kube is not None else None
        counts = [] if store is None else [
            {"verb": verb, "resource": res, "count": n} for (verb, res), n in sorted(store.requests.items())]
        out = {"counts": counts, "total": sum(c["count"] for c in counts)}
        from .counters import proxmox_counts
        if self.proxmox is not None:
            out["proxmox"] = proxmox_counts(self.proxmox.pve)
        report = getattr(getattr(self.talos, "api", None), "report", None)
        if report is not None:
            out["talos"] = report()
        return out

    # -------------------------------------------------------------------- control server
    async def _start_control(self) -> None:
        """The control endpoint (control.py) for ``tazlab-lab fault`` / ``status``."""
        from . import control

        self._runner, self.control_url = await control.start(self, self.control_host, self.control_port)

    def state(self) -> dict:
        """What the CLI's state file records."""
        return {
            "scenario": self.scenario_name,
            "directory": self.directory,
            "control_url": self.control_url,
            "proxmox": {"host": self.proxmox.host, "port": self.proxmox.port, "url": self.proxmox.url},
            "kubernetes": {"server": self.kube_server()},
            "talos": {n: self.talos_endpoint(n) for n in self.nodes},
            "talos_expected": {n: bool(self.talos and self.talos.machines[n].reachable) for n in self.nodes},
            "loopback": self.addresses,
            "ports": {
                "proxmox": self.proxmox.port,
                "kubernetes": self.kube.api.port if self.kube is not None and self.kube.api is not None else None,
                "talos": self.talos.port if self.talos is not None else None,
                "control": int(self.control_url.rsplit(":", 1)[1]) if self.control_url else None,
            },
            "files": self.paths(),
            "time_scale": self.time_scale,
        }



async def _maybe_await(value):
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


class WorldThread:
    """A LabWorld on its own event loop in a daemon thread, so blocking clients (proxmoxer, kubernetes,
    fence_pve in a subprocess) can talk to it from the calling thread."""

    def __init__(self, world: LabWorld):
        self.world = world
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="lab-world", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> LabWorld:
        self.call(self.world.start())
        return self.world

    def advance(self, seconds: float, timeout: float = 120.0) -> None:
        self.call(self.world.advance(seconds), timeout)

    def fault(self, kind: str, target: str | None = None, **params: Any):
        from . import faults
        return self.call(faults.apply(self.world, kind, target, **params))

    def __getattr__(self, name: str):
        # Only reached for names WorldThread lacks: the world's own attributes.
        if name in ("world", "loop", "thread"):
            raise AttributeError(name)
        return getattr(self.world, name)

    def run_until(self, predicate: Callable[[], bool], timeout: float, step: float = 1.0) -> bool:
        return self.call(self.world.run_until(predicate, timeout, step), 300.0)

    def stop(self) -> None:
        try:
            if self.loop.is_running():
                self.call(self.world.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            if not self.thread.is_alive():
                self.loop.close()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Wait in wall time for predicate() (for worlds whose clock runs in real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def dump_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
