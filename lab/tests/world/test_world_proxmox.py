"""The Proxmox side of the world against real clients: proxmoxer (token and password) and fence_pve."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests
from proxmoxer import ProxmoxAPI

FENCE_PVE = shutil.which("fence_pve") or "/usr/sbin/fence_pve"


def _smbios_uuid(config: dict) -> str:
    return dict(p.split("=", 1) for p in config["smbios1"].split(","))["uuid"]


def _api_token(world):
    px = world.proxmox
    return ProxmoxAPI(px.host, port=px.port, user=px.user, token_name=px.token_name,
                      token_value=px.token_secret, verify_ssl=px.cafile, timeout=10)


def _api_password(world):
    px = world.proxmox
    return ProxmoxAPI(px.host, port=px.port, user=px.user, password=px.password, verify_ssl=px.cafile,
                      timeout=10)


def _fence(world, action, node, *extra):
    px = world.proxmox
    spec = px.spec(node)
    cmd = [FENCE_PVE, "--ip", px.host, "--ipport", str(px.port), "--username", px.user,
           "--password", px.password, "--plug", str(spec.vmid), "--ssl-insecure",
           "--action", action, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _cluster_nodes(world):
    return {n["name"]: n for n in world.cluster_nodes()}


@pytest.mark.parametrize("login", ["token", "password"])
def test_proxmoxer_sees_one_vm_per_node_with_its_name_and_smbios_uuid(lab_world, login):
    api = _api_token(lab_world) if login == "token" else _api_password(lab_world)
    nodes = _cluster_nodes(lab_world)
    vms = [r for r in api.cluster.resources.get(type="vm")]
    assert sorted(v["name"] for v in vms) == sorted(nodes)
    hosts = {v["node"] for v in vms}
    assert len(hosts) >= 2, hosts
    for vm in vms:
        config = api.nodes(vm["node"]).qemu(vm["vmid"]).config.get()
        assert config["name"] == vm["name"]
        assert _smbios_uuid(config).lower() == str(nodes[vm["name"]]["system_uuid"]).lower()
        assert vm["status"] == "running"
    # Some VMs are HA-managed, as the scenario says.
    assert any(v.get("hastate") for v in vms)
    assert any(not v.get("hastate") for v in vms)


def test_tls_is_verified_with_the_lab_ca_only(lab_world):
    px = lab_world.proxmox
    url = px.url + "/api2/json/version"
    # Verified with the lab CA: the certificate is good (401: no login, but TLS succeeded).
    assert requests.get(url, verify=px.cafile, timeout=10).status_code == 401
    # Without the CA the system store rejects it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=10)
    # And a wrong password or token is refused.
    bad = ProxmoxAPI(px.host, port=px.port, user=px.user, token_name=px.token_name,
                     token_value="00000000-0000-0000-0000-000000000000", verify_ssl=px.cafile, timeout=10)
    with pytest.raises(Exception, match="401"):
        bad.cluster.resources.get(type="vm")


def _ready(world, node):
    obj = world.kube.store.get("nodes", None, node)
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_fence_pve_powers_a_vm_off_and_the_node_dies(lab_world):
    node = next(s.name for s in lab_world.proxmox.specs if s.role != "control-plane" and not s.ha)
    assert _fence(lab_world, "status", node, "--pve-node-auto").returncode == 0
    off = _fence(lab_world, "off", node, "--pve-node-auto")
    assert off.returncode == 0, off.stdout + off.stderr
    assert "Success: Powered OFF" in off.stdout
    assert lab_world.vm(node).status == "stopped"
    status = _fence(lab_world, "status", node, "--pve-node", lab_world.proxmox.spec(node).pve_node)
    assert status.returncode == 2 and "OFF" in status.stdout
    # The world sees it on its clock: the machine is off everywhere.
    lab_world.advance(1)
    state = lab_world.nodes[node]
    assert (state.powered, state.booted, state.kubelet) == (False, False, False)
    assert any(e["event"] == "power-off" and e["node"] == node for e in lab_world.events)
    # ... and the Kubernetes twin sees the node go NotReady once heartbeats are overdue (grace 50 s).
    assert _ready(lab_world, node) == "True"
    assert lab_world.run_until(lambda: _ready(lab_world, node) != "True", 120)
    assert _ready(lab_world, node) == "Unknown"
    others = [n for n in lab_world.nodes if n != node]
    assert all(_ready(lab_world, n) == "True" for n in others)


def test_fence_pve_on_boots_the_node_after_the_boot_delay(lab_world):
    node = next(s.name for s in lab_world.proxmox.specs if not s.ha)
    assert _fence(lab_world, "off", node, "--pve-node-auto").returncode == 0
    lab_world.advance(1)
    assert lab_world.nodes[node].state == "off"
    on = _fence(lab_world, "on", node, "--pve-node-auto")
    assert on.returncode == 0, on.stdout + on.stderr
    lab_world.advance(1)
    assert lab_world.nodes[node].state == "booting"
    lab_world.advance(lab_world.boot["talos_secs"])
    assert lab_world.nodes[node].booted and not lab_world.nodes[node].kubelet
    lab_world.advance(lab_world.boot["running_secs"])
    assert lab_world.nodes[node].state == "running"
    # The kubelet rejoins: Ready again, and its DaemonSet pods run on it again.
    assert lab_world.run_until(lambda: _ready(lab_world, node) == "True", 120)
    assert lab_world.run_until(lambda: any(
        p["spec"].get("nodeName") == node and p["status"].get("phase") == "Running"
        and any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences", []))
        for p in lab_world.kube.store.list("pods")), 120)


def test_ha_managed_stop_is_asynchronous_and_takes_simulated_time(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if s.ha)
    api = _api_password(lab_world)
    upid = api.nodes(spec.pve_node).qemu(spec.vmid).status.stop.post()
    assert ":hastop:" in upid
    task = api.nodes(spec.pve_node).tasks(upid).status.get()
    assert task["status"] == "stopped" and task["exitstatus"] == "OK"
    # hastop OK does not mean off: the HA manager acts ha_delay (10 s) of simulated time later.
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["status"] == "running"
    lab_world.advance(5)
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["status"] == "running"
    assert lab_world.nodes[spec.name].powered
    lab_world.advance(6)
    current = api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()
    assert current["status"] == "stopped" and current["ha"]["state"] == "stopped"
    assert not lab_world.nodes[spec.name].powered


def test_slow_and_hanging_stop_faults_follow_the_world_clock(lab_world):
    specs = [s for s in lab_world.proxmox.specs if not s.ha][:2]
    slow, hang = specs
    lab_world.fault("slow-stop", slow.name, secs=90)
    lab_world.fault("hanging-stop", hang.name)
    api = _api_token(lab_world)
    up_slow = api.nodes(slow.pve_node).qemu(slow.vmid).status.stop.post()
    up_hang = api.nodes(hang.pve_node).qemu(hang.vmid).status.stop.post()
    lab_world.advance(60)
    assert api.nodes(slow.pve_node).tasks(up_slow).status.get()["status"] == "running"
    assert lab_world.nodes[slow.name].powered
    lab_world.advance(31)
    done = api.nodes(slow.pve_node).tasks(up_slow).status.get()
    assert done["status"] == "stopped" and done["exitstatus"] == "OK"
    assert not lab_world.nodes[slow.name].powered
    lab_world.advance(3600)
    assert api.nodes(hang.pve_node).tasks(up_hang).status.get()["status"] == "running"
    assert api.nodes(hang.pve_node).qemu(hang.vmid).status.current.get()["status"] == "running"
    assert lab_world.nodes[hang.name].powered


def test_locked_vm_refuses_stop_until_unlocked(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    lab_world.fault("lock", spec.name, lock="backup")
    off = _fence(lab_world, "off", spec.name, "--pve-node-auto", "--power-timeout", "3")
    assert off.returncode == 1
    assert lab_world.vm(spec.name).status == "running"
    api = _api_token(lab_world)
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["lock"] == "backup"
    lab_world.fault("unlock", spec.name)
    assert _fence(lab_world, "off", spec.name, "--pve-node-auto").returncode == 0
    lab_world.advance(1)
    assert not lab_world.nodes[spec.name].powered


def test_reset_through_proxmox_power_cycles_the_node(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    api = _api_password(lab_world)
    api.nodes(spec.pve_node).qemu(spec.vmid).status.reset.post()
    lab_world.advance(1)
    state = lab_world.nodes[spec.name]
    assert state.state == "booting"
    events = [e["event"] for e in state.history]
    assert events.index("power-off") < len(events) - 1 and events[-1] == "power-on"
    assert {"talos-down", "kubelet-stop"} <= set(events[events.index("power-off"):])
    lab_world.advance(lab_world.boot["talos_secs"] + lab_world.boot["running_secs"])
    assert state.state == "running"


def test_host_offline_kills_its_vms_shows_unknown_and_ha_recovers_elsewhere(lab_world):
    px = lab_world.proxmox
    host = next(s.pve_node for s in px.specs if s.ha)
    on_host = [s for s in px.specs if s.pve_node == host]
    ha = [s for s in on_host if s.ha]
    plain = [s for s in on_host if not s.ha]
    lab_world.fault("host-offline", host)
    api = _api_token(lab_world)
    vms = {v["name"]: v for v in api.cluster.resources.get(type="vm")}
    for spec in on_host:
        assert vms[spec.name]["status"] == "unknown"
        assert not lab_world.nodes[spec.name].powered
    with pytest.raises(Exception, match="595"):
        api.nodes(host).qemu(on_host[0].vmid).status.current.get()
    lab_world.advance(119)
    assert all(lab_world.vm(s.name).node == host for s in ha)
    lab_world.advance(2)
    for spec in ha:
        vm = lab_world.vm(spec.name)
        assert vm.node != host and vm.status == "running"
        assert lab_world.nodes[spec.name].state == "booting"
    for spec in plain:
        assert lab_world.vm(spec.name).node == host
    lab_world.fault("host-online", host)
    for spec in plain:  # onboot=1
        assert lab_world.vm(spec.name).status == "running"
        assert lab_world.nodes[spec.name].powered


def test_partition_keeps_the_vm_running_per_proxmox(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if s.role != "control-plane")
    lab_world.fault("partition", spec.name)
    assert lab_world.run_until(lambda: _ready(lab_world, spec.name) != "True", 120)
    api = _api_token(lab_world)
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["status"] == "running"
    state = lab_world.nodes[spec.name]
    assert state.powered and state.partitioned and state.state == "partitioned"
    # The pods keep running on the partitioned node (no kubelet confirmation reaches the API).
    lab_world.fault("heal", spec.name)
    assert lab_world.nodes[spec.name].state == "running"
    assert lab_world.run_until(lambda: _ready(lab_world, spec.name) == "True", 60)


@pytest.mark.parametrize("lab_world", [0.02], indirect=True)
def test_real_time_world_runs_fakepve_at_the_same_time_scale(lab_world):
    assert lab_world.proxmox.pve.time_scale == 0.02 == lab_world.clock.time_scale
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    lab_world.fault("slow-stop", spec.name, secs=50)   # 50 simulated s = 1 real s
    off = _fence(lab_world, "off", spec.name, "--pve-node-auto", "--power-timeout", "20")
    assert off.returncode == 0, off.stdout + off.stderr
    from tazlab_lab.world import wait_for
    assert wait_for(lambda: not lab_world.nodes[spec.name].powered, 5)


def _talos_connect(world, node) -> bool:
    import socket
    host, port = world.talos_endpoint(node).rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) == 0


def test_a_powered_off_node_talos_endpoint_refuses_connections_until_it_boots(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    assert _talos_connect(lab_world, spec.name)
    assert _fence(lab_world, "off", spec.name, "--pve-node-auto").returncode == 0
    lab_world.advance(1)
    assert not _talos_connect(lab_world, spec.name)
    assert not lab_world.machine(spec.name).powered
    assert _fence(lab_world, "on", spec.name, "--pve-node-auto").returncode == 0
    lab_world.advance(1)
    assert lab_world.machine(spec.name).powered and not _talos_connect(lab_world, spec.name)
    lab_world.advance(lab_world.boot["talos_secs"])
    assert _talos_connect(lab_world, spec.name)
    assert lab_world.nodes[spec.name].state == "starting-kubelet"
    lab_world.advance(lab_world.boot["running_secs"])
    assert lab_world.nodes[spec.name].state == "running"


def test_partition_closes_the_talos_endpoint_but_proxmox_says_running(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if s.role != "control-plane")
    lab_world.fault("partition", spec.name)
    assert not _talos_connect(lab_world, spec.name)
    assert lab_world.vm(spec.name).status == "running"
    lab_world.fault("heal", spec.name)
    assert _talos_connect(lab_world, spec.name)


def test_graceful_shutdown_through_talos_stops_the_vm_in_proxmox(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    lab_world.fault("graceful-shutdown", spec.name)
    assert lab_world.vm(spec.name).status == "running"   # Talos takes its time to go down
    lab_world.advance(5)
    api = _api_token(lab_world)
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["status"] == "stopped"
    assert not _talos_connect(lab_world, spec.name)
    assert lab_world.nodes[spec.name].state == "off"


def test_etcd_quorum_loss_takes_a_majority_of_members(lab_world):
    lab_world.fault("etcd-quorum-loss")
    assert not lab_world.talos.etcd.has_quorum()
    assert any(e["event"] == "etcd-quorum-lost" for e in lab_world.events)
    # The machines stay up: it is etcd, not power.
    assert all(lab_world.vm(n).status == "running" for n in lab_world.nodes)


def test_the_talos_api_answers_through_the_collection_client_and_not_when_the_vm_is_off(lab_world):
    """A real mTLS gRPC call (the collection's TalosClient, with the lab's talosconfig)."""
    import asyncio

    import yaml
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import auth_from_talosconfig

    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    endpoint = lab_world.talos_endpoint(spec.name)
    with open(lab_world.paths()["talosconfig"]) as fh:
        auth = auth_from_talosconfig(yaml.safe_load(fh))

    async def version():
        async with TalosClient(auth, timeout=5, connect_timeout=2, retries=0) as client:
            return await client.version(endpoint=endpoint)

    assert asyncio.run(version())
    assert _fence(lab_world, "off", spec.name, "--pve-node-auto").returncode == 0
    lab_world.advance(1)
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosUnreachable
    with pytest.raises(TalosUnreachable, match="Connect call failed"):
        asyncio.run(version())


def test_proxmox_shutdown_is_a_graceful_guest_shutdown(lab_world):
    spec = next(s for s in lab_world.proxmox.specs if not s.ha)
    api = _api_token(lab_world)
    upid = api.nodes(spec.pve_node).qemu(spec.vmid).status.shutdown.post(timeout=60)
    lab_world.advance(1)
    # The guest is shutting down: Talos leaves RUNNING, the kubelet stops; the VM still runs.
    from tazlab_lab.talos.machine import SHUTTING_DOWN
    assert lab_world.machine(spec.name).stage == SHUTTING_DOWN
    assert not lab_world.nodes[spec.name].kubelet
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["status"] == "running"
    lab_world.advance(lab_world.proxmox.spec(spec.name).shutdown_secs)
    assert api.nodes(spec.pve_node).qemu(spec.vmid).status.current.get()["status"] == "stopped"
    assert api.nodes(spec.pve_node).tasks(upid).status.get()["exitstatus"] == "OK"
    assert lab_world.nodes[spec.name].state == "off"
    assert not lab_world.machine(spec.name).powered


def test_fence_pve_fails_on_a_hanging_stop_and_on_an_offline_host(lab_world):
    plain = [s for s in lab_world.proxmox.specs if not s.ha]
    hang = plain[0]
    lab_world.fault("hanging-stop", hang.name)
    off = _fence(lab_world, "off", hang.name, "--pve-node", hang.pve_node, "--power-timeout", "2")
    assert off.returncode == 1, off.stdout + off.stderr
    assert lab_world.vm(hang.name).status == "running" and lab_world.nodes[hang.name].powered
    # A VM on a dead PVE host: its power state cannot be read (595), never "off".
    other = next(s for s in plain if s.pve_node != hang.pve_node)
    lab_world.fault("host-offline", other.pve_node)
    status = _fence(lab_world, "status", other.name, "--pve-node", other.pve_node)
    assert status.returncode == 1, status.stdout + status.stderr
