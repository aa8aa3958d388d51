"""Faults the lab world can inject: ``await apply(world, kind, target, **params)``.

Each fault's body lives here; the world (world.py) keeps the state they change (its node models,
``dead_hosts``, ``ha_timers``) and the coupling that makes every twin follow. A fault uses the world's
public API only (``record_event``, ``set_kube_reachable``, ``data_address``, ``etcd_members_lost``,
``observe``, ``settle``, ...).

Each fault acts where reality would: power faults change fakepve's VM model (and the world's
coupling turns that into dead or booting nodes everywhere); network faults change the world's node
model (the VM keeps running per Proxmox); Proxmox faults use fakepve's own fault API; Kubernetes and
Talos faults go through the Kubernetes twin's control interface.

``catalogue()`` lists them (``tazlab-lab fault --list``).
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

FAULTS: dict[str, tuple[Callable[..., Awaitable[Any]], str, str]] = {}

#: "Forever" for a hanging stop: a year of simulated time.
HANG_SECS = 365 * 86400.0


def fault(kind: str, target: str, doc: str):
    def register(fn):
        FAULTS[kind] = (fn, target, doc)
        return fn
    return register


def catalogue() -> list[dict]:
    return [{"kind": k, "target": t, "doc": d} for k, (_, t, d) in sorted(FAULTS.items())]


async def apply(world, kind: str, target: str | None = None, **params: Any) -> Any:
    """Inject one fault; returns a short JSON-able description of what changed."""
    try:
        fn, needs, _ = FAULTS[kind]
    except KeyError:
        raise KeyError("unknown fault {0!r}; known: {1}".format(kind, ", ".join(sorted(FAULTS)))) from None
    if needs != "-" and not target:
        raise ValueError("fault {0} needs a target ({1})".format(kind, needs))
    result = await fn(world, target, **params)
    world.record_event(target or "-", "fault", "{0} {1}".format(kind, params or "").strip())
    return result


def _vm(world, node: str):
    vm = world.vm(node)
    if vm is None:
        raise KeyError("node {0!r} has no VM".format(node))
    return vm


def _num(value, default: float) -> float:
    return default if value is None else float(value)


# ------------------------------------------------------------------------------ power
@fault("power-loss", "NODE", "the VM's QEMU process dies (pull the plug): Proxmox shows it stopped at once")
async def power_loss(world, node, **_):
    vm = _vm(world, node)
    vm.status = vm.qmpstatus = "stopped"
    await world.observe()
    return {"vm": vm.vmid, "status": vm.status}


@fault("power-on", "NODE", "start the VM outside the API (as a host-side qm start): the node boots")
async def power_on(world, node, **_):
    vm = _vm(world, node)
    if vm.status != "running":
        vm.status = vm.qmpstatus = "running"
        vm.started_at = time.time()
    await world.observe()
    return {"vm": vm.vmid, "status": vm.status}


@fault("graceful-shutdown", "NODE",
       "the guest shuts itself down (talosctl shutdown): Talos goes down, then QEMU exits and Proxmox shows "
       "the VM stopped")
async def graceful_shutdown(world, node, **_):
    """The guest shuts down by itself (talosctl shutdown): Talos goes down, then the VM stops."""
    world.record_event(node, "shutdown", "graceful shutdown of the guest")
    world.machine(node).shutdown()
    await world.settle()
    return {"vm": world.node(node).vmid, "shutting_down": True}


# ----------------------------------------------------------------------------- network
@fault("partition", "NODE", "network partition: the VM runs per Proxmox, kubelet and Talos API unreachable")
async def partition(world, node, **_):
    """The VM keeps running per Proxmox; its kubelet and Talos API are unreachable."""
    return await _set_partitioned(world, node, True, "partition",
                                  "kubelet and Talos API unreachable; the VM keeps running")


@fault("heal", "NODE", "end a partition")
async def heal(world, node, **_):
    return await _set_partitioned(world, node, False, "heal", "network back")


async def _set_partitioned(world, node, partitioned: bool, event: str, detail: str) -> dict:
    world.node(node).partitioned = partitioned
    world.record_event(node, event, detail)
    world.machine(node).set_partitioned(partitioned)
    world.set_kube_reachable(node, not partitioned)
    await world.settle()
    return {"node": node, "partitioned": partitioned}


# ---------------------------------------------------------------------- control plane
@fault("stale-advertise", "NODE",
       "the apiserver on this control plane keeps advertising a stale address in the kubernetes Endpoints "
       "(address=, default: the node's scenario InternalIP, i.e. the address before an IP change)")
async def stale_advertise(world, node, address=None, **_):
    addr = address or world.data_address(node)
    world.kube.set_advertise_address(node, addr)
    return {"apiserver": node, "advertise": addr}


@fault("etcd-quorum-loss", "-",
       "etcd loses quorum: a majority of the control planes' etcd members are down (machines stay powered); "
       "the apiserver stops serving")
async def etcd_quorum_loss(world, target=None, **_):
    await lose_etcd_quorum(world)
    return {"quorum": False}


async def lose_etcd_quorum(world, members: int | None = None) -> list[str]:
    """A majority (or ``members``) of the etcd members lose their data (crash, corrupted WAL): the
    machines stay up, etcd on them cannot start, the cluster has no quorum until the etcd disaster
    recovery (snapshot, wipe EPHEMERAL, EtcdRecover, Bootstrap(recover_etcd)). Returns the nodes hit."""
    etcd = world.talos.etcd
    voters = sorted((m for m in etcd.members.values() if not m.is_learner), key=lambda m: m.node.name)
    count = len(voters) // 2 + 1 if members is None else int(members)
    hit = []
    for member in voters[-count:] if count else []:
        member.node.etcd_data = False
        hit.append(member.node.name)
        world.record_event(member.node.name, "etcd-member-lost", "etcd data lost on this member")
    world.etcd_members_lost()
    await world.settle()
    return hit


# ---------------------------------------------------------------------------- Proxmox
@fault("slow-stop", "NODE", "Proxmox stop tasks of this VM take secs (default 60) simulated seconds")
async def slow_stop(world, node, secs=None, **_):
    vm = _vm(world, node)
    vm.stop_secs = _num(secs, 60.0)
    return {"vm": vm.vmid, "stop_secs": vm.stop_secs}


@fault("hanging-stop", "NODE", "Proxmox stop tasks of this VM never finish (QEMU stuck in D state)")
async def hanging_stop(world, node, **_):
    vm = _vm(world, node)
    vm.stop_secs = HANG_SECS
    vm.shutdown_secs = HANG_SECS
    return {"vm": vm.vmid, "stop_secs": vm.stop_secs}


@fault("lock", "NODE", "the VM carries a config lock (lock=backup|migrate|snapshot|clone..., default backup)")
async def lock(world, node, lock=None, **_):
    vm = _vm(world, node)
    world.proxmox.pve.snapshot_lock(vm.vmid, lock or "backup")
    return {"vm": vm.vmid, "lock": vm.lock}


@fault("unlock", "NODE", "clear the VM's config lock (qm unlock)")
async def unlock(world, node, **_):
    vm = _vm(world, node)
    world.proxmox.pve.unlock(vm.vmid)
    return {"vm": vm.vmid, "lock": vm.lock}


@fault("ha", "NODE", "make the VM HA-managed (state=started|stopped|ignored|disabled, default started; none: unmanaged)")
async def ha(world, node, state=None, **_):
    vm = _vm(world, node)
    vm.ha_state = None if state in ("none", "") else (state or "started")
    return {"vm": vm.vmid, "ha_state": vm.ha_state}


@fault("host-offline", "PVE_NODE",
       "a Proxmox host dies: its VMs die with it, the API answers 595 for it and shows its guests 'unknown'; "
       "HA-managed VMs are recovered on another host after ha_recovery_secs (default 120) if quorate")
async def host_offline(world, host, ha_recovery_secs=None, **_):
    """A PVE host dies: its VMs die with it; fakepve answers 595 for it and shows them 'unknown'.

    HA-managed VMs (requested state ``started``) are recovered on the online host with the fewest
    VMs after ``ha_recovery_secs`` (PVE: fence delay, then the CRM moves the service), if the
    PVE cluster is quorate then and the host still offline.
    """
    ha_recovery_secs = _num(ha_recovery_secs, 120.0)
    pve = world.proxmox.pve
    if host not in pve.nodes:
        raise KeyError("no Proxmox host {0!r} (hosts: {1})".format(host, ", ".join(sorted(pve.nodes))))
    pve.set_node_offline(host, True)
    world.dead_hosts.add(host)
    world.record_event(host, "host-offline", "Proxmox host down with its guests")
    for vm in pve.vms:
        if vm.node != host:
            continue
        if vm.status == "running":
            vm.status = vm.qmpstatus = "stopped"
        if vm.ha_state == "started":
            old = world.ha_timers.pop(vm.vmid, None)
            if old is not None:
                old.cancel()
            world.ha_timers[vm.vmid] = world.clock.call_later(
                ha_recovery_secs, _ha_recover, world, vm, host, name="ha-recover-{0}".format(vm.vmid))
    await world.observe()
    return {"host": host, "online": False}


async def _ha_recover(world, vm, host: str) -> None:
    pve = world.proxmox.pve
    world.ha_timers.pop(vm.vmid, None)
    if vm.node != host or host not in world.dead_hosts or vm.ha_state != "started":
        return
    if not pve.quorate:  # the CRM needs quorum: try again later
        world.ha_timers[vm.vmid] = world.clock.call_later(10.0, _ha_recover, world, vm, host,
                                                          name="ha-recover-{0}".format(vm.vmid))
        return
    online = [n for n, s in sorted(pve.nodes.items()) if s.get("online", True) and n not in world.dead_hosts]
    if not online:
        return
    target = min(online, key=lambda n: sum(1 for v in pve.vms if v.node == n))
    vm.node = target
    vm.status = vm.qmpstatus = "running"
    vm.started_at = time.time()
    world.record_event(vm.name, "ha-recovered", "HA moved VM {0} from {1} to {2} and started it".format(
        vm.vmid, host, target))
    for spec in world.proxmox.specs:
        if spec.vmid == vm.vmid:
            spec.pve_node = target
    await world.observe()


@fault("host-online", "PVE_NODE", "a Proxmox host comes back; its onboot=1 VMs start")
async def host_online(world, host, **_):
    """The PVE host is back: its ``onboot=1`` VMs (and HA VMs requested started) start."""
    pve = world.proxmox.pve
    if host not in pve.nodes:
        raise KeyError("no Proxmox host {0!r}".format(host))
    pve.set_node_offline(host, False)
    world.dead_hosts.discard(host)
    world.record_event(host, "host-online", "Proxmox host back")
    for vm in pve.vms:
        if vm.node == host and vm.status != "running" and (
                str(vm.config.get("onboot", "0")) == "1" or vm.ha_state == "started"):
            vm.status = vm.qmpstatus = "running"
            vm.started_at = time.time()
    await world.observe()
    return {"host": host, "online": True}


@fault("pve-quorum-loss", "-", "the Proxmox cluster loses quorum: /etc/pve read-only, VM actions fail")
async def pve_quorum_loss(world, target=None, **_):
    world.proxmox.pve.lose_quorum()
    return {"quorate": False}


@fault("pve-quorum-regain", "-", "the Proxmox cluster regains quorum")
async def pve_quorum_regain(world, target=None, **_):
    world.proxmox.pve.regain_quorum()
    return {"quorate": True}


@fault("pve-flaky-network", "-",
       "the Proxmox API drops (drop_rate=) or hangs (hang_rate=, hang_secs=: real seconds x time scale) a share of "
       "requests; seed= makes it repeatable")
async def pve_flaky_network(world, target=None, drop_rate=None, hang_rate=None, hang_secs=None, seed=None, **_):
    pve = world.proxmox.pve
    pve.flaky_network(drop_rate=_num(drop_rate, 0.3), hang_rate=_num(hang_rate, 0.0),
                      hang_secs=_num(hang_secs, 120.0), seed=None if seed is None else int(seed))
    return {k: pve.network[k] for k in ("drop_rate", "hang_rate", "hang_secs")}


@fault("pve-slow-network", "-",
       "every Proxmox API answer takes latency= simulated seconds more (node= for one PVE node only)")
async def pve_slow_network(world, target=None, latency=None, node=None, **_):
    world.proxmox.pve.slow_network(_num(latency, 2.0), node=node)
    return {"latency": _num(latency, 2.0), "node": node}


@fault("pve-network-ok", "-", "the Proxmox API network is healthy again (no drops, hangs or latency)")
async def pve_network_ok(world, target=None, **_):
    pve = world.proxmox.pve
    pve.flaky_network(0.0, 0.0)
    pve.slow_network(0.0)
    pve.network["node_latency"].clear()
    return {"ok": True}


async def _call(value):
    import asyncio
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


# ------------------------------------------------------------------------- Kubernetes API
@fault("k8s-api", "-",
       "the Kubernetes API answers chosen requests wrongly: verb= (get, list, create, update, patch, delete, "
       "... or *), path= (a regular expression on the URL path), action= status (with code=, e.g. 500, 503, "
       "409, 429 and retry_after=), delay (secs= real seconds), drop (connection closed, nothing done) or "
       "drop-after-commit (the write is committed, the answer lost); times= (default: until k8s-api-clear)")
async def k8s_api(world, target=None, action=None, verb="*", path=".*", code=None, retry_after=None, secs=None,
                  times=None, **_):
    from .k8s.server import ApiFault
    api = world.kube.api
    if api is None:
        raise RuntimeError("the Kubernetes API twin is not serving")
    f = ApiFault(action or "status", verb=verb, path=path, code=None if code is None else int(code),
                 retry_after=None if retry_after is None else float(retry_after),
                 secs=None if secs is None else float(secs), times=None if times is None else int(times))
    api.faults.append(f)
    return f.describe()


@fault("k8s-api-clear", "-", "remove every injected Kubernetes API fault (reports how often each acted)")
async def k8s_api_clear(world, target=None, **_):
    api = world.kube.api
    done = [f.describe() for f in (api.faults if api is not None else [])]
    if api is not None:
        api.faults.clear()
    return {"cleared": done}
