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
