"""The world's coupling for hardening (secrets at rest, disk encryption), kept apart from world.py.

* Talos Reset wiping EPHEMERAL on a node wipes Longhorn's data path there: the node's replicas fail
  and are rebuilt once it is back (:mod:`tazlab_lab.k8s.controllers.longhorn_disk`).
* The twin's etcd view of Secrets (:mod:`tazlab_lab.k8s.atrest`): every write is stored through the
  encryption config of the apiserver that serves it, the VIP holder (a control plane keeps the Talos
  VIP until it goes down; then the first running control plane takes it). Its providers come from its
  node's running config (``cluster.secretboxEncryptionSecret`` / ``aescbcEncryptionSecret``).
* A change of those secrets in a control plane's running config re-renders the apiserver's encryption
  config; the static pod is re-created (an ``apiserver-restart`` event), as for certSANs.
* Each node's Talos machine gets the VM's SMBIOS UUID (a ``nodeID`` disk key derives from it).
* :func:`etcd_get` answers as ``etcdctl get`` would (the control endpoint: ``GET /etcd?key=..&prefix=1``).
"""

from __future__ import annotations

import base64

from .k8s.atrest import SecretsAtRest, providers_from_talos_config
from .talos import config as talos_config
from .talos import volumes as talos_volumes


def attach(world) -> None:
    """After the Talos twin and the Kubernetes twin exist (LabWorld._start_talos)."""
    world._vip_holder = None
    world._apiserver_providers = {}
    for node in world.cluster_nodes():
        machine = world.talos.machines[node["name"]]
        machine.system_uuid = node["system_uuid"]
        talos_volumes.on_wipe(machine, lambda m, hit, w=world: _on_wipe(w, m, hit))
        if machine.role == "controlplane":
            world._apiserver_providers[machine.name] = _providers_of(machine)
    store = getattr(world.kube, "store", None)
    world.secrets_at_rest = SecretsAtRest(store, lambda w=world: serving_providers(w)) if store is not None else None


def _providers_of(machine) -> list:
    if not machine.current:
        return [("identity", "", b"")]
    try:
        docs = talos_config.parse(machine.current)
    except talos_config.ConfigError:
        return [("identity", "", b"")]
    return providers_from_talos_config(talos_config.v1alpha1(docs))


def _on_wipe(world, machine, hit: list[str]) -> None:
    if "EPHEMERAL" not in hit:
        return
    world.record_event(machine.name, "wipe", "Reset wiped {0}".format(", ".join(hit)))
    longhorn = getattr(world.kube, "longhorn", None)
    if longhorn is not None and machine.name in {n["metadata"]["name"] for n in longhorn.inf.items("nodes.longhorn.io")}:
        from .k8s.controllers.longhorn_disk import wipe_node_disk
        failed = wipe_node_disk(longhorn, machine.name)
        world.record_event(machine.name, "longhorn-disk-wiped", "{0} replicas lost their data".format(len(failed)))


def _serving(world):
    from .talos.machine import RUNNING
    cps = [m for m in world.talos.machines.values() if m.role == "controlplane"]
    alive = [m for m in cps if m.reachable and m.stage == RUNNING and m.current]
    holder = world._vip_holder
    if holder is None or holder not in alive:
        holder = alive[0] if alive else None
        world._vip_holder = holder
    return holder


def serving_providers(world) -> list:
    holder = _serving(world)
    if holder is None:
        return [("identity", "", b"")]
    return world._apiserver_providers.get(holder.name) or _providers_of(holder)


def follow(world, machine, state) -> None:
    """A machine changed (LabWorld._follow_machine): re-render its apiserver's encryption config."""
    if machine.role != "controlplane" or getattr(world, "_apiserver_providers", None) is None:
        return
    if not machine.current or not (machine.powered and machine.os_up):
        return
    new = _providers_of(machine)
    old = world._apiserver_providers.get(machine.name)
    world._apiserver_providers[machine.name] = new
    if old is None or old == new:
        return
    world.record_event(machine.name, "apiserver-restart", "encryption config {0}: static pod re-created".format(
        [p[0] for p in new]))
    if world.kube is not None and machine.name in getattr(world.kube.control_plane, "apiservers", {}):
        world.kube.restart_apiserver(machine.name)


def etcd_get(world, key: str, prefix: bool = False) -> dict:
    """``etcdctl get <key> [--prefix] -w json``: {"kvs": [{"key", "value"}]} with base64 key and value."""
    view = getattr(world, "secrets_at_rest", None)
    kvs = [] if view is None else view.get(key, prefix)
    return {"count": len(kvs), "kvs": [{"key": base64.b64encode(k.encode()).decode(),
                                        "value": base64.b64encode(v).decode()} for k, v in kvs]}
