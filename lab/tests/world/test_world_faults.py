"""Faults of the world that reach the Kubernetes twin's control plane and the Proxmox cluster."""

from __future__ import annotations

import pytest
from proxmoxer import ProxmoxAPI


def _api(world):
    px = world.proxmox
    return ProxmoxAPI(px.host, port=px.port, user=px.user, password=px.password, verify_ssl=px.cafile, timeout=10)


def _kubernetes_endpoints(world):
    ep = world.kube.store.get("endpoints", "default", "kubernetes")
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


def test_stale_advertise_puts_the_old_address_in_the_kubernetes_endpoints(lab_world):
    before = _kubernetes_endpoints(lab_world)
    assert "192.168.1.71" in before
    lab_world.fault("stale-advertise", "cp-01", address="192.168.1.99")
    lab_world.advance(30)
    after = _kubernetes_endpoints(lab_world)
    assert "192.168.1.99" in after and "192.168.1.71" not in after


def test_losing_two_control_plane_vms_loses_etcd_quorum_everywhere(lab_world):
    for node in ("cp-02", "cp-03"):
        lab_world.fault("power-loss", node)
    assert not lab_world.talos.etcd.has_quorum()
    assert not lab_world.kube.control_plane.etcd_quorum()
    assert any(e["event"] == "etcd-quorum-lost" for e in lab_world.events)
    # Endpoints are no longer written without quorum (stale addresses stay).
    before = _kubernetes_endpoints(lab_world)
    lab_world.advance(60)
    assert _kubernetes_endpoints(lab_world) == before
    # Power back: Talos boots, etcd members are running again, quorum returns on both sides.
    api = _api(lab_world)
    for node in ("cp-02", "cp-03"):
        spec = lab_world.proxmox.spec(node)
        api.nodes(spec.pve_node).qemu(spec.vmid).status.start.post()   # HA-managed: the HA manager starts it
    assert lab_world.run_until(lambda: lab_world.talos.etcd.has_quorum(), 180)
    assert lab_world.run_until(lambda: lab_world.kube.control_plane.etcd_quorum(), 120)
    assert any(e["event"] == "etcd-quorum" for e in lab_world.events)


def test_etcd_quorum_loss_fault_keeps_machines_up_but_stops_the_control_plane(lab_world):
    lab_world.fault("etcd-quorum-loss")
    assert not lab_world.talos.etcd.has_quorum()
    assert not lab_world.kube.control_plane.etcd_quorum()
    assert all(lab_world.vm(n).status == "running" for n in lab_world.nodes)
    assert all(lab_world.machine(n).reachable for n in lab_world.nodes)


def test_pve_quorum_loss_makes_vm_actions_fail(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    api = _api(lab_world)
    lab_world.fault("pve-quorum-loss")
    with pytest.raises(Exception, match="quorum"):
        api.nodes(spec.pve_node).qemu(spec.vmid).status.start.post()
    assert api.cluster.status.get()[0]["quorate"] == 0
    lab_world.fault("pve-quorum-regain")
    assert api.cluster.status.get()[0]["quorate"] == 1


def test_ha_fault_makes_a_worker_vm_ha_managed(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    lab_world.fault("ha", spec.name)
    api = _api(lab_world)
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["ha"] == {"managed": 1, "state": "started"}
    upid = api.nodes(spec.pve_node).qemu(spec.vmid).status.stop.post()
    assert ":hastop:" in upid
    lab_world.advance(11)
    assert not lab_world.nodes[spec.name].powered
    with pytest.raises(KeyError, match="unknown fault"):
        lab_world.fault("no-such-fault", spec.name)
    with pytest.raises(ValueError, match="needs a target"):
        lab_world.fault("power-loss")


def test_ip_change_through_talos_moves_the_endpoint_and_the_node_address_but_not_the_advertised_one(lab_world):
    import socket

    from tazlab_lab.talos.machine import NO_REBOOT

    machine = lab_world.machine("cp-01")
    old = machine.address
    new = lab_world.addresses["192.168.1.253"]          # the scenario's alternate address, on loopback
    assert old == lab_world.addresses["192.168.1.71"] and new != old
    text = machine.current.decode().replace(old + "/", new + "/")

    async def apply():
        return await machine.apply(text.encode(), NO_REBOOT, False, None)
    import asyncio
    applying = asyncio.run_coroutine_threadsafe(apply(), lab_world.loop)   # it takes simulated time
    lab_world.advance(2)
    assert applying.result(10)[0] == NO_REBOOT
    assert machine.address == new
    assert lab_world.talos_endpoint("cp-01") == "{0}:{1}".format(new, lab_world.talos.port)
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex((new, lab_world.talos.port)) == 0
    # The Kubernetes twin's machine moved (as data: 192.168.1.253): its apiserver answers there now ...
    assert lab_world.kube.world["cp-01"].address == "192.168.1.253"
    assert "192.168.1.253" in lab_world.kube.control_plane.live_addresses()
    assert "192.168.1.71" not in lab_world.kube.control_plane.live_addresses()
    # ... while it keeps advertising the old one: the seed story's stale kubernetes endpoint.
    lab_world.advance(30)
    assert "192.168.1.71" in _kubernetes_endpoints(lab_world)
    assert "192.168.1.253" not in _kubernetes_endpoints(lab_world)
    assert lab_world.inventory()["all"]["children"]["control_plane"]["hosts"]["cp-01"]["talos_node"] == new


def test_talos_reboot_keeps_the_vm_running_and_restarts_the_kubelet(lab_world):
    node = "worker-new-01"
    machine = lab_world.machine(node)

    async def reboot():   # as talosctl reboot does, on the world's loop
        machine.reboot()
    lab_world.call(reboot())
    lab_world.advance(3)
    assert lab_world.vm(node).status == "running"
    assert not lab_world.nodes[node].kubelet
    history = [e["event"] for e in lab_world.nodes[node].history]
    assert "kubelet-stop" in history and "power-off" not in history
    assert lab_world.run_until(lambda: lab_world.nodes[node].kubelet, 60)
    assert lab_world.vm(node).status == "running"



def test_pve_network_faults(lab_world):
    api = _api(lab_world)
    assert api.version.get()["release"]
    lab_world.fault("pve-flaky-network", drop_rate=1.0, seed=1)
    with pytest.raises(Exception):
        _api(lab_world)   # the login itself is dropped
    lab_world.fault("pve-network-ok")
    assert _api(lab_world).version.get()["release"]
