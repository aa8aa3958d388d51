"""The provisioning twin (issue 19) against real clients: proxmoxer, a grpclib Talos client, the kubernetes client.

An empty lab (Proxmox hosts, Talos templates and ISO, no cluster); VMs cloned or created through the
Proxmox API boot Talos in maintenance mode; configs applied without a client certificate; install,
reboot into the config's PKI; Bootstrap once; the Kubernetes API on the cluster endpoint; Kubeconfig;
a dead control plane replaced.
"""

from __future__ import annotations

import socket
import ssl
import sys
import os
import time

import pytest
from google.protobuf import empty_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

sys.path.insert(0, os.path.dirname(__file__))
from provision_helpers import Secrets, call, certless_context, mtls_context  # noqa: E402

EMPTY = pytest.mark.lab_world(scenario="empty", settle=5.0)


def _api(world):
    px = world.proxmox
    return ProxmoxAPI(px.host, port=px.port, user=px.user, token_name=px.token_name,
                      token_value=px.token_secret, verify_ssl=px.cafile, timeout=10)


def _wait_task(world, api, node, upid, secs=60):
    for _ in range(int(secs)):
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            assert status["exitstatus"] == "OK", status
            return
        world.advance(1)
    raise AssertionError("task {0} still running".format(upid))


def _agent_ipv4(api, node, vmid, mac):
    """The guest agent's view, picked as a client must: the NIC with net0's MAC, its non-link-local IPv4."""
    reply = api.nodes(node).qemu(vmid).agent("network-get-interfaces").get()
    for iface in reply["result"]:
        if iface.get("hardware-address", "").lower() == mac.lower():
            for ip in iface.get("ip-addresses", []):
                if ip["ip-address-type"] == "ipv4" and not ip["ip-address"].startswith("169.254."):
                    return ip["ip-address"]
    return None


def _mac(config):
    return config["net0"].split(",")[0].split("=")[1]


def _clone_and_start(world, api, template, node, newid, name, agent=True):
    upid = api.nodes(node).qemu(template).clone.post(newid=newid, name=name, full=1)
    _wait_task(world, api, node, upid)
    if not agent:
        api.nodes(node).qemu(newid).config.put(agent=0)
    upid = api.nodes(node).qemu(newid).status.start.post()
    _wait_task(world, api, node, upid)


def _boot_to_maintenance(world, api, node, vmid):
    config = api.nodes(node).qemu(vmid).config.get()
    for _ in range(60):
        world.advance(1)
        try:
            address = _agent_ipv4(api, node, vmid, _mac(config))
        except ResourceException:
            continue
        if address:
            return address, config
    raise AssertionError("vm {0}: the guest agent never reported an address".format(vmid))


def _version(address, port, ctx):
    from tazlab_lab.talos.pb import machine_pb2 as mpb
    return call(address, port, ctx, "/machine.MachineService/Version", empty_pb2.Empty(), mpb.VersionResponse)


def _apply(world, address, port, data, mode=1, dry_run=False):
    """ApplyConfiguration takes simulated time (the node's config lock): the clock moves meanwhile."""
    import concurrent.futures
    from tazlab_lab.talos.pb import machine_pb2 as mpb
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(call, address, port, certless_context(), "/machine.MachineService/ApplyConfiguration",
                             mpb.ApplyConfigurationRequest(data=data, mode=mode, dry_run=dry_run),
                             mpb.ApplyConfigurationResponse)
        while not future.done():
            world.advance(0.25)
            time.sleep(0.01)
        return future.result()


def _refused(address, port):
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((address, port)) != 0


@EMPTY
def test_empty_lab_has_hosts_templates_and_iso_and_no_cluster(lab_world):
    api = _api(lab_world)
    hosts = sorted(n["node"] for n in api.nodes.get())
    assert hosts == ["pve1", "pve2", "pve3"]
    vms = api.cluster.resources.get(type="vm")
    templates = {v["node"]: v for v in vms if v.get("template")}
    assert sorted(templates) == hosts and len(vms) == 3, vms
    for host, tpl in templates.items():
        config = api.nodes(host).qemu(tpl["vmid"]).config.get()
        assert config["template"] == 1 and config["agent"] == "enabled=1" and config["scsihw"] == "virtio-scsi-pci"
    isos = [c["volid"] for c in api.nodes("pve1").storage("local").content.get(content="iso")]
    assert lab_world.provisioner.iso_volid in isos
    status = lab_world.status()
    assert status["nodes"] == [] and status["etcd"]["members"] == [] and status["machines"] == []
    assert lab_world.kube.store.list("nodes") == []
    prov = lab_world.inventory()["all"]["vars"]["tazlab_provision"]
    host, port = prov["vip"], int(prov["cluster_endpoint"].rsplit(":", 1)[1])
    assert _refused(host, port), "the Kubernetes API answers before any cluster exists"


@EMPTY
def test_new_vms_boot_talos_in_maintenance_at_a_fresh_address(lab_world):
    api = _api(lab_world)
    port = lab_world.talos.port
    templates = lab_world.provisioner.inventory_vars()["templates"]
    upid = api.nodes("pve1").qemu(templates["pve1"]).clone.post(newid=201, name="cp-a", full=1)
    with pytest.raises(ResourceException) as err:   # not started yet
        api.nodes("pve1").qemu(201).agent("network-get-interfaces").get()
    assert err.value.status_code == 500
    _wait_task(lab_world, api, "pve1", upid)
    with pytest.raises(ResourceException) as err:
        api.nodes("pve1").qemu(201).agent("network-get-interfaces").get()
    assert "VM 201 is not running" in str(err.value)
    _wait_task(lab_world, api, "pve1", api.nodes("pve1").qemu(201).status.start.post())
    address, config = _boot_to_maintenance(lab_world, api, "pve1", 201)
    assert address.startswith(lab_world.loopback_prefix + ".")
    # A VM created from the ISO (no template) boots Talos too; one without the agent has no guest IPs.
    iso = lab_world.provisioner.iso_volid
    upid = api.nodes("pve2").qemu.post(vmid=202, name="w-a", memory=4096, cores=2, cpu="host", scsihw="virtio-scsi-pci",
                                       scsi0="local-lvm:16", ide2=iso + ",media=cdrom", net0="virtio,bridge=vmbr0",
                                       boot="order=scsi0;ide2;net0", agent="enabled=1", start=1)
    _wait_task(lab_world, api, "pve2", upid)
    address2, _ = _boot_to_maintenance(lab_world, api, "pve2", 202)
    assert address2 != address
    _clone_and_start(lab_world, api, templates["pve3"], "pve3", 203, "no-agent", agent=False)
    lab_world.advance(30)
    with pytest.raises(ResourceException) as err:
        api.nodes("pve3").qemu(203).agent("network-get-interfaces").get()
    assert "No QEMU guest agent configured" in str(err.value)
    # Maintenance: TLS without a client certificate, a self-signed Ed25519 server cert, a few RPCs only.
    reply = _version(address, port, certless_context())
    assert reply.messages[0].version.tag == "v1.13.9"
    with socket.create_connection((address, port), timeout=5) as raw:
        with certless_context().wrap_socket(raw) as tls:
            from cryptography import x509
            from cryptography.hazmat.primitives.asymmetric import ed25519
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    issuer_ca = lab_world.talos.pki.ca.cert
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)
    assert cert.issuer != issuer_ca.subject or cert.signature != issuer_ca.signature
    from tazlab_lab.talos.pb import machine_pb2 as mpb
    with pytest.raises(GRPCError) as err:
        call(address, port, certless_context(), "/machine.MachineService/EtcdMemberList",
             mpb.EtcdMemberListRequest(), mpb.EtcdMemberListResponse)
    assert err.value.status == Status.UNIMPLEMENTED
    # A config that fails validation changes nothing (a worker carrying the OS CA key).
    secrets = Secrets()
    bad = secrets.config("controlplane", "https://x").replace(b"type: controlplane", b"type: worker")
    with pytest.raises(GRPCError) as err:
        _apply(lab_world, address, port, bad)
    assert err.value.status == Status.INVALID_ARGUMENT and "must not be set on worker" in err.value.message
    assert _version(address, port, certless_context()).messages[0].version.tag == "v1.13.9"
    status = {p["vmid"]: p for p in lab_world.status()["provisioned"]}
    assert status[201]["stage"] == "maintenance" and status[203]["talos"] is True
    assert not lab_world.errors, lab_world.errors


def _build(world, api, secrets, count_cp=3, count_w=1):
    """Control planes spread over the hosts (clones), workers from the ISO; configs applied certless."""
    templates = world.provisioner.inventory_vars()["templates"]
    endpoint = world.provisioner.cluster_endpoint()
    port = world.talos.port
    nodes = []
    hosts = ["pve1", "pve2", "pve3"]
    for i in range(count_cp):
        host = hosts[i % 3]
        _clone_and_start(world, api, templates[host], host, 301 + i, "cp-{0}".format(i + 1))
        nodes.append(("cp-{0}".format(i + 1), host, 301 + i, "controlplane"))
    for i in range(count_w):
        host = hosts[i % 3]
        _clone_and_start(world, api, templates[host], host, 311 + i, "w-{0}".format(i + 1))
        nodes.append(("w-{0}".format(i + 1), host, 311 + i, "worker"))
    out = {}
    for name, host, vmid, role in nodes:
        address, config = _boot_to_maintenance(world, api, host, vmid)
        labels = {"tazlab.io/pool": "general"} if role == "worker" else {}
        reply = _apply(world, address, port, secrets.config(role, endpoint, hostname=name, labels=labels))
        assert reply.messages[0].mode_details == "Applied configuration without a reboot"
        out[name] = {"address": address, "vmid": vmid, "host": host, "role": role,
                     "uuid": dict(p.split("=", 1) for p in config["smbios1"].split(","))["uuid"]}
    return out


def _wait_mtls(world, address, port, ctx, secs=120):
    for _ in range(secs):
        world.advance(1)
        try:
            return _version(address, port, ctx)
        except (GRPCError, OSError, ssl.SSLError, ConnectionError, StreamTerminatedError):
            continue
    raise AssertionError("{0}: no mTLS answer".format(address))


@EMPTY
def test_cluster_from_empty_bootstrap_once_kubeconfig_and_replace_a_control_plane(lab_world):
    import kubernetes
    import yaml
    from tazlab_lab.talos.maintenance import read_unterminated_targz
    from tazlab_lab.talos.pb import common_pb2, machine_pb2 as mpb

    api = _api(lab_world)
    secrets = Secrets()
    port = lab_world.talos.port
    started = time.monotonic()
    nodes = _build(lab_world, api, secrets)
    mtls = mtls_context(secrets)
    cp1 = nodes["cp-1"]["address"]
    _wait_mtls(lab_world, cp1, port, mtls)
    # Configured mode: a certless client is refused now (the node requires a certificate of the config's CA).
    with pytest.raises((ssl.SSLError, ConnectionError, StreamTerminatedError)):
        _version(cp1, port, certless_context())
    assert not _refused(cp1, port)
    etcd = lab_world.talos.etcd
    assert etcd.gen == 0
    for _ in range(60):   # CRI not up yet: FailedPrecondition "bootstrap is not available yet", retried
        try:
            call(cp1, port, mtls, "/machine.MachineService/Bootstrap", mpb.BootstrapRequest(), mpb.BootstrapResponse)
            break
        except GRPCError as exc:
            assert exc.status == Status.FAILED_PRECONDITION and exc.message == "bootstrap is not available yet"
            lab_world.advance(1)
    assert etcd.gen == 1
    with pytest.raises(GRPCError) as err:
        call(cp1, port, mtls, "/machine.MachineService/Bootstrap", mpb.BootstrapRequest(), mpb.BootstrapResponse)
    assert err.value.status == Status.ALREADY_EXISTS and err.value.message == "etcd data directory is not empty"
    for _ in range(120):
        lab_world.advance(1)
        voters = [m for m in etcd.members.values() if not m.is_learner]
        if len(voters) == 3 and lab_world.kube.api is not None:
            break
    assert len([m for m in etcd.members.values() if not m.is_learner]) == 3
    cp2 = nodes["cp-2"]["address"]
    with pytest.raises(GRPCError) as err:   # a joined member: its data directory is not empty either
        call(cp2, port, mtls, "/machine.MachineService/Bootstrap", mpb.BootstrapRequest(), mpb.BootstrapResponse)
    assert err.value.status == Status.ALREADY_EXISTS
    # Kubeconfig: one Data message, a gzip'd tar without end marker, a working admin kubeconfig.
    msgs = call(cp1, port, mtls, "/machine.MachineService/Kubeconfig", empty_pb2.Empty(), common_pb2.Data, stream=True)
    assert len(msgs) == 1
    kubeconfig = yaml.safe_load(read_unterminated_targz(msgs[0].bytes))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == lab_world.provisioner.cluster_endpoint()
    assert kubeconfig["current-context"] == "admin@tazlab"
    w1 = nodes["w-1"]["address"]
    with pytest.raises(GRPCError) as err:
        call(w1, port, mtls, "/machine.MachineService/Kubeconfig", empty_pb2.Empty(), common_pb2.Data, stream=True)
    assert err.value.status == Status.UNIMPLEMENTED
    for _ in range(120):
        lab_world.advance(1)
        if len(lab_world.kube.store.list("nodes")) == 4 and all(
                n["ready"] == "True" for n in lab_world.kube_status()["nodes"]):
            break
    client = kubernetes.config.new_client_from_config_dict(kubeconfig)
    core = kubernetes.client.CoreV1Api(client)
    listed = {n.metadata.name: n for n in core.list_node().items}
    assert sorted(listed) == ["cp-1", "cp-2", "cp-3", "w-1"]
    for name, node in nodes.items():
        k8s = listed[name]
        assert k8s.status.node_info.system_uuid == node["uuid"]
        ready = next(c for c in k8s.status.conditions if c.type == "Ready")
        assert ready.status == "True"
        assert any(a.type == "InternalIP" and a.address == node["address"] for a in k8s.status.addresses)
    assert [t.key for t in listed["cp-1"].spec.taints] == ["node-role.kubernetes.io/control-plane"]
    assert listed["w-1"].metadata.labels["tazlab.io/pool"] == "general" and not listed["w-1"].spec.taints
    for _ in range(120):   # the bootstrap manifests: CoreDNS (tolerates the control-plane taint), kube-proxy
        pods = core.list_namespaced_pod("kube-system").items
        if pods and all(p.status.phase == "Running" for p in pods):
            break
        lab_world.advance(1)
    phases = {p.metadata.name: (p.spec.node_name, p.status.phase) for p in pods}
    assert sum(1 for n in phases if n.startswith("coredns-")) == 2, phases
    assert sum(1 for n in phases if n.startswith("kube-proxy-")) == 4, phases
    assert all(ph == "Running" for _node, ph in phases.values()), phases
    eps = core.read_namespaced_endpoints("kubernetes", "default")
    assert sorted(a.ip for a in eps.subsets[0].addresses) == sorted(nodes[n]["address"] for n in ("cp-1", "cp-2", "cp-3"))
    # The lab's power faults reach provisioned nodes by their Node name: the worker dies, its Node goes NotReady.
    lab_world.fault("power-loss", "w-1")
    for _ in range(90):
        lab_world.advance(1)
        if core.read_node("w-1").status.conditions[-1].status != "True":
            break
    ready = next(c for c in core.read_node("w-1").status.conditions if c.type == "Ready")
    assert ready.status == "Unknown" and ready.reason == "NodeStatusUnknown"
    assert _refused(w1, port)
    # A control plane that will not come back: stop and delete its VM; its Talos twin is gone.
    dead = nodes["cp-3"]
    _wait_task(lab_world, api, dead["host"], api.nodes(dead["host"]).qemu(dead["vmid"]).status.stop.post())
    _wait_task(lab_world, api, dead["host"], api.nodes(dead["host"]).qemu(dead["vmid"]).delete())
    lab_world.advance(5)
    assert "vm-{0}".format(dead["vmid"]) not in lab_world.talos.machines
    assert _refused(dead["address"], port)
    members = call(cp1, port, mtls, "/machine.MachineService/EtcdMemberList", mpb.EtcdMemberListRequest(),
                   mpb.EtcdMemberListResponse).messages[0].members
    stale = next(m for m in members if m.hostname == "cp-3")
    call(cp1, port, mtls, "/machine.MachineService/EtcdRemoveMemberByID",
         mpb.EtcdRemoveMemberByIDRequest(member_id=stale.id), mpb.EtcdRemoveMemberByIDResponse)
    with pytest.raises(GRPCError) as err:
        call(cp1, port, mtls, "/machine.MachineService/EtcdRemoveMemberByID",
             mpb.EtcdRemoveMemberByIDRequest(member_id=stale.id), mpb.EtcdRemoveMemberByIDResponse)
    assert err.value.status == Status.NOT_FOUND
    core.delete_node("cp-3")
    lab_world.advance(1)
    assert sorted(lab_world.kube.control_plane.etcd_members) == ["cp-1", "cp-2"]
    templates = lab_world.provisioner.inventory_vars()["templates"]
    _clone_and_start(lab_world, api, templates["pve3"], "pve3", 321, "cp-3")
    address, config = _boot_to_maintenance(lab_world, api, "pve3", 321)
    _apply(lab_world, address, port, secrets.config("controlplane", lab_world.provisioner.cluster_endpoint(), hostname="cp-3"))
    new_uuid = dict(p.split("=", 1) for p in config["smbios1"].split(","))["uuid"]
    assert new_uuid != dead["uuid"]
    for _ in range(150):
        lab_world.advance(1)
        voters = [m for m in etcd.members.values() if not m.is_learner and m.node.etcd_running]
        node = lab_world.kube.store.list("nodes")
        if len(voters) == 3 and any(n["metadata"]["name"] == "cp-3" for n in node):
            break
    members = call(cp1, port, mtls, "/machine.MachineService/EtcdMemberList", mpb.EtcdMemberListRequest(),
                   mpb.EtcdMemberListResponse).messages[0].members
    assert sorted(m.hostname for m in members) == ["cp-1", "cp-2", "cp-3"]
    assert all(not m.is_learner for m in members)
    assert core.read_node("cp-3").status.node_info.system_uuid == new_uuid
    assert sorted(lab_world.kube.control_plane.etcd_members) == ["cp-1", "cp-2", "cp-3"]
    assert lab_world.kube.control_plane.etcd_quorum()
    assert not lab_world.errors, lab_world.errors
    print("provisioning twin: 3+1 from empty and a control plane replaced in {0:.1f} s wall".format(
        time.monotonic() - started))
    counts = lab_world.request_counts()
    print("requests: kubernetes {0}, proxmox {1}, talos {2} ({3})".format(
        counts["total"], counts["proxmox"]["total"], counts["talos"]["total"],
        ", ".join("{0} {1}".format(c["rpc"], c["count"]) for c in counts["talos"]["counts"])))
    assert counts["talos"]["total"] >= 9 and counts["proxmox"]["total"] > 0


@EMPTY
def test_request_counts_of_the_three_twins(lab_world):
    """The world counts what each twin served: Kubernetes (per verb/resource), Proxmox (per method and path
    template, from fakepve's request log) and Talos (per RPC)."""
    api = _api(lab_world)
    templates = lab_world.provisioner.inventory_vars()["templates"]
    _clone_and_start(lab_world, api, templates["pve1"], "pve1", 401, "counted")
    address, _ = _boot_to_maintenance(lab_world, api, "pve1", 401)
    for _ in range(3):
        _version(address, lab_world.talos.port, certless_context())
    counts = lab_world.request_counts()
    px = {(c["method"], c["path"]): c["count"] for c in counts["proxmox"]["counts"]}
    assert px[("POST", "/nodes/{node}/qemu/{vmid}/clone")] == 1
    assert px[("POST", "/nodes/{node}/qemu/{vmid}/status/start")] == 1
    assert px[("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")] >= 1
    assert counts["proxmox"]["total"] == sum(px.values())
    talos = {c["rpc"]: c["count"] for c in counts["talos"]["counts"]}
    assert talos == {"Version": 3}
    assert counts["total"] == 0   # no Kubernetes API yet


def test_cli_up_empty_status_and_inventory(tmp_path):
    """`tazlab-lab up --scenario empty`: Proxmox hosts and templates, no cluster, the provisioning vars."""
    import json
    import shutil
    import subprocess
    import yaml

    cli = shutil.which("tazlab-lab", path=os.path.dirname(sys.executable)) or shutil.which("tazlab-lab")
    assert cli, "the tazlab-lab console script is not installed in this venv"
    directory = str(tmp_path / "lab")
    up = subprocess.run([cli, "up", "--scenario", "empty", "--dir", directory, "--isolated"],
                        capture_output=True, text=True, timeout=90)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(subprocess.run([cli, "status", "--dir", directory, "--json"], capture_output=True,
                                           text=True, timeout=30).stdout)
        assert status["scenario"] == "empty" and status["nodes"] == [] and status["machines"] == []
        assert sorted(status["proxmox"]["hosts"]) == ["pve1", "pve2", "pve3"]
        assert len(status["proxmox"]["vms"]) == 3
        inventory = yaml.safe_load(open(os.path.join(directory, "inventory.yaml")))
        prov = inventory["all"]["vars"]["tazlab_provision"]
        assert sorted(prov["templates"]) == ["pve1", "pve2", "pve3"]
        assert prov["cluster_endpoint"].startswith("https://127.")
        assert not os.path.exists(os.path.join(directory, "kubeconfig"))
    finally:
        subprocess.run([cli, "down", "--dir", directory], capture_output=True, timeout=60)


@EMPTY
def test_a_new_vm_added_to_proxmox_ha_is_started_by_the_crm_and_removed_again(lab_world):
    api = _api(lab_world)
    templates = lab_world.provisioner.inventory_vars()["templates"]
    upid = api.nodes("pve2").qemu(templates["pve2"]).clone.post(newid=501, name="cp-ha", full=1)
    _wait_task(lab_world, api, "pve2", upid)
    assert api.nodes("pve2").qemu(501).status.current.get()["ha"] == {"managed": 0}
    api.cluster.ha.resources.post(sid="vm:501", state="started", max_restart=1, max_relocate=1)
    with pytest.raises(ResourceException) as err:
        api.cluster.ha.resources.post(sid="vm:501", state="started")
    assert "resource ID 'vm:501' already defined" in str(err.value)
    with pytest.raises(ResourceException) as err:
        api.cluster.ha.resources.post(sid="vm:599")
    assert "does not exist" in str(err.value)
    for _ in range(30):
        lab_world.advance(1)
        if api.nodes("pve2").qemu(501).status.current.get()["status"] == "running":
            break
    current = api.nodes("pve2").qemu(501).status.current.get()
    assert current["status"] == "running" and current["ha"]["managed"] == 1
    assert api.cluster.ha.resources("vm:501").get()["state"] == "started"
    address, _ = _boot_to_maintenance(lab_world, api, "pve2", 501)   # HA started it: Talos boots
    assert address
    api.cluster.ha.resources("vm:501").delete()
    assert api.nodes("pve2").qemu(501).status.current.get()["ha"] == {"managed": 0}
    with pytest.raises(ResourceException) as err:
        api.cluster.ha.resources("vm:501").delete()
    assert "is not HA managed" in str(err.value)


@EMPTY
def test_a_worker_apid_waits_for_trustd_on_a_control_plane(lab_world):
    """A worker's apid certificate is signed by trustd on a control plane (same CA, same machine token):
    without a running control plane the configured worker's apid does not come up."""
    from tazlab_lab.talos.pb import machine_pb2 as mpb

    api = _api(lab_world)
    secrets = Secrets()
    port = lab_world.talos.port
    endpoint = lab_world.provisioner.cluster_endpoint()
    templates = lab_world.provisioner.inventory_vars()["templates"]
    _clone_and_start(lab_world, api, templates["pve1"], "pve1", 601, "w-early")
    worker, _ = _boot_to_maintenance(lab_world, api, "pve1", 601)
    _apply(lab_world, worker, port, secrets.config("worker", endpoint, hostname="w-early"))
    lab_world.advance(120)          # installed and rebooted long ago
    stage = {p["vmid"]: p for p in lab_world.status()["provisioned"]}[601]["stage"]
    assert stage == "running"
    assert _refused(worker, port), "a worker's apid answered with no control plane to sign its certificate"
    _clone_and_start(lab_world, api, templates["pve2"], "pve2", 602, "cp-late")
    cp, _ = _boot_to_maintenance(lab_world, api, "pve2", 602)
    _apply(lab_world, cp, port, secrets.config("controlplane", endpoint, hostname="cp-late"))
    mtls = mtls_context(secrets)
    _wait_mtls(lab_world, cp, port, mtls)
    assert _wait_mtls(lab_world, worker, port, mtls).messages[0].version.tag == "v1.13.9"
    with pytest.raises(GRPCError) as err:
        call(worker, port, mtls, "/machine.MachineService/Bootstrap", mpb.BootstrapRequest(), mpb.BootstrapResponse)
    assert err.value.status == Status.UNIMPLEMENTED
    assert err.value.message == "bootstrap is only available on control plane nodes"
    # A second apply through the certless path is gone: the node is configured (mTLS only).
    with pytest.raises((ssl.SSLError, ConnectionError, StreamTerminatedError)):
        _apply(lab_world, worker, port, secrets.config("worker", endpoint, hostname="w-early"))


@EMPTY
def test_disks_answers_certless_in_maintenance_only(lab_world):
    """storage.StorageService/Disks: the Terraform provider's maintenance probe (a certless client succeeds
    only in maintenance) and the install disk candidates (`talosctl get disks --insecure`)."""
    from tazlab_lab.talos.maintenance import _storage_pb2

    spb = _storage_pb2()
    api = _api(lab_world)
    port = lab_world.talos.port
    iso = lab_world.provisioner.iso_volid
    upid = api.nodes("pve1").qemu.post(vmid=701, name="disks", memory=4096, cores=2, scsihw="virtio-scsi-pci",
                                       scsi0="local-lvm:20", virtio0="local-lvm:8", ide2=iso + ",media=cdrom",
                                       net0="virtio,bridge=vmbr0", agent="enabled=1", start=1)
    _wait_task(lab_world, api, "pve1", upid)
    address, _ = _boot_to_maintenance(lab_world, api, "pve1", 701)
    reply = call(address, port, certless_context(), "/storage.StorageService/Disks", empty_pb2.Empty(),
                 spb.DisksResponse)
    disks = {d.device_name: d for d in reply.messages[0].disks}
    assert sorted(disks) == ["/dev/sda", "/dev/vda"]
    assert disks["/dev/sda"].size == 20 * 1024 ** 3 and disks["/dev/sda"].model == "QEMU HARDDISK"
    assert not any(d.system_disk for d in disks.values())
    secrets = Secrets()
    _apply(lab_world, address, port, secrets.config("controlplane", lab_world.provisioner.cluster_endpoint()))
    mtls = mtls_context(secrets)
    _wait_mtls(lab_world, address, port, mtls)
    with pytest.raises((ssl.SSLError, ConnectionError, StreamTerminatedError)):
        call(address, port, certless_context(), "/storage.StorageService/Disks", empty_pb2.Empty(), spb.DisksResponse)
    reply = call(address, port, mtls, "/storage.StorageService/Disks", empty_pb2.Empty(), spb.DisksResponse)
    assert [d.device_name for d in reply.messages[0].disks if d.system_disk] == ["/dev/sda"]
    hostname = call(address, port, mtls, "/machine.MachineService/Hostname", empty_pb2.Empty(),
                    __import__("tazlab_lab.talos.pb", fromlist=["machine_pb2"]).machine_pb2.HostnameResponse)
    assert hostname.messages[0].hostname.startswith("talos-")   # no hostname in the config: a stable one


def _empty_with(**provisioning):
    import yaml
    from tazlab_lab.k8s.scenario import SCENARIOS
    data = yaml.safe_load((SCENARIOS / "empty.yaml").read_text())
    data["provisioning"].update(provisioning)
    return data


@pytest.mark.lab_world(scenario=_empty_with(talosVersion="v1.12.11"), settle=5.0)
def test_maintenance_up_to_1_12_refuses_no_reboot_and_staged(lab_world):
    """Up to 1.12 the maintenance service accepts REBOOT, AUTO and TRY only (talos.md, Transport)."""
    api = _api(lab_world)
    port = lab_world.talos.port
    templates = lab_world.provisioner.inventory_vars()["templates"]
    _clone_and_start(lab_world, api, templates["pve1"], "pve1", 801, "old")
    address, _ = _boot_to_maintenance(lab_world, api, "pve1", 801)
    assert _version(address, port, certless_context()).messages[0].version.tag == "v1.12.11"
    secrets = Secrets()
    data = secrets.config("worker", lab_world.provisioner.cluster_endpoint())
    for mode in (2, 3):     # NO_REBOOT, STAGED
        with pytest.raises(GRPCError) as err:
            _apply(lab_world, address, port, data, mode=mode)
        assert err.value.status == Status.UNIMPLEMENTED and "not supported in maintenance mode" in err.value.message
    dry = _apply(lab_world, address, port, data, mode=1, dry_run=True).messages[0]
    assert dry.mode_details.startswith("Dry run summary:\nNode is running in maintenance mode")
    reply = _apply(lab_world, address, port, data, mode=1).messages[0]   # AUTO: warnings only in the reply
    assert reply.mode_details == "" and reply.mode == 0
    for _ in range(90):
        lab_world.advance(1)
        if {p["vmid"]: p for p in lab_world.status()["provisioned"]}[801]["stage"] == "running":
            break
    assert {p["vmid"]: p for p in lab_world.status()["provisioned"]}[801]["installed"] is True
