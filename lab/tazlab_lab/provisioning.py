"""The provisioning side of the lab world: new VMs made through the Proxmox API boot Talos.

A scenario with a ``provisioning:`` section (``empty`` has one and no nodes) gets:

* Talos templates (one per PVE host by default, ``template: 1``, a base disk on ``local-lvm``, the
  guest agent enabled) and the Talos ISO in the ``local`` storage;
* for every VM that is neither a scenario VM nor a template, once it runs and boots Talos (cloned from
  a Talos template, or with the Talos ISO in a drive): a Talos twin machine in **maintenance mode** at a
  fresh DHCP address (loopback, from the world's prefix), reported by the guest agent endpoint
  (``agent/network-get-interfaces``, only when the VM has ``agent`` enabled and Talos is up: the
  qemu-guest-agent extension runs in maintenance mode too);
* the first apply, install and reboot (talos/maintenance.py); Bootstrap starts etcd, later control
  planes join;
* once etcd has quorum and one control plane runs its apiserver, the Kubernetes API twin starts on
  the cluster endpoint (the VIP's loopback address and port), with the cluster's Kubernetes CA from
  the config; from then on each node's kubelet registers a Node named after the node's hostname with
  ``systemUUID`` = the VM's ``smbios1`` uuid and the config's node labels/taints;
* power follows Proxmox as for the scenario's nodes (stop, start, reset, a dead host); ``DELETE`` of
  the VM removes its Talos twin (its etcd member stays until removed through the Talos API; its Node
  object stays until someone deletes it).

Addresses: the guest agent, apid, the Node's InternalIP and the etcd URLs all use the node's loopback
address (there is no data address for a DHCP lease in the lab).
"""

from __future__ import annotations

import logging
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any

from .ports import free_port_on, port_free
from .talos import config as talos_config
from .talos import machine as mm
from .talos.maintenance import ConfigPkiEndpoint, ProvisionedMachine, config_ca, vm_disks

log = logging.getLogger(__name__)

DEFAULT_ISO = "talos-{version}-metal-amd64.iso"
TEMPLATE_BASE_VMID = 9000
DEFAULT_POOL = (100, 199)      # DHCP pool: host octets of the loopback /24


@dataclass
class ProvisionedVm:
    vmid: int
    machine: Any = None            # ProvisionedMachine, None: the VM boots nothing Talos
    powered: bool = False
    started_at: float | None = None
    kube_name: str | None = None
    kubelet: bool = False
    address: str = ""
    history: list = field(default_factory=list)


def _smbios_uuid(value: str) -> str:
    for part in str(value or "").split(","):
        key, _, val = part.partition("=")
        if key.strip() == "uuid":
            return val.strip()
    return ""


def _mac(net0: str) -> str:
    for part in str(net0 or "").split(","):
        key, _, val = part.partition("=")
        if key in ("virtio", "e1000", "vmxnet3", "rtl8139", "macaddr") and val:
            return val.lower()
    return ""


def _agent_enabled(config: dict) -> bool:
    agent = str(config.get("agent", "0"))
    return agent.split(",")[0].split("=")[-1] == "1" or "enabled=1" in agent


def node_labels_taints(docs: list[dict], role: str) -> tuple[dict, list]:
    """What Talos puts on the Node: machine.nodeLabels, machine.nodeTaints (``value:Effect`` or ``Effect``),
    the control-plane taint unless cluster.allowSchedulingOnControlPlanes."""
    v1 = talos_config.v1alpha1(docs) or {}
    machine, cluster = v1.get("machine") or {}, v1.get("cluster") or {}
    labels = {str(k): "" if v is None else str(v) for k, v in (machine.get("nodeLabels") or {}).items()}
    taints = []
    if role == "control-plane" and not cluster.get("allowSchedulingOnControlPlanes"):
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    for key, spec in (machine.get("nodeTaints") or {}).items():
        value, _, effect = str(spec).rpartition(":")
        taint = {"key": str(key), "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return labels, taints


class Provisioner:
    """Owned by the LabWorld; ``setup()`` before fakepve serves, ``await observe()`` on every world look."""

    def __init__(self, world):
        self.world = world
        self.spec = dict(world.scenario.get("provisioning") or {})
        talos = world.scenario.get("talos") or {}
        self.version = str(self.spec.get("talosVersion") or talos.get("version") or "v1.13.9")
        self.install_secs = float(self.spec.get("installSeconds", 30))
        self.iso_storage = str((self.spec.get("iso") or {}).get("storage", "local"))
        self.iso_file = str((self.spec.get("iso") or {}).get("file") or DEFAULT_ISO.format(version=self.version))
        pool = self.spec.get("dhcpPool") or DEFAULT_POOL
        self.pool = list(range(int(pool[0]), int(pool[1]) + 1))
        self.vms: dict[int, ProvisionedVm] = {}
        self.templates: dict[int, str] = {}      # vmid -> PVE host
        self.api_host = ""
        self.api_port = 0
        self._leased: dict[str, int] = {}        # address -> vmid
        self._api_starting = False
        self._kube_names: set[str] = set()      # Kubernetes node names of provisioned machines, ever

    # ------------------------------------------------------------------------------ set-up
    @property
    def prefix(self) -> str:
        return self.world.loopback_prefix

    @property
    def iso_volid(self) -> str:
        return "{0}:iso/{1}".format(self.iso_storage, self.iso_file)

    def vip(self) -> str:
        data = str((self.world.scenario.get("controlPlane") or {}).get("vip") or "192.168.1.250")
        return "{0}.{1}".format(self.prefix, data.rsplit(".", 1)[1])

    def cluster_endpoint(self) -> str:
        return "https://{0}:{1}".format(self.api_host, self.api_port)

    def setup(self) -> None:
        """Templates and the ISO in fakepve (before it serves), the cluster endpoint's port."""
        px = self.world.proxmox
        pve = px.pve
        pve.store_file(self.iso_storage, self.iso_file, 300 * 1024 ** 2)
        templates = self.spec.get("templates")
        if templates is None:
            templates = [{"vmid": TEMPLATE_BASE_VMID + i + 1, "node": host,
                          "name": "talos-{0}-template".format(self.version)} for i, host in enumerate(px.pve_nodes)]
        for tpl in templates:
            vmid, host = int(tpl["vmid"]), str(tpl.get("node") or px.pve_nodes[0])
            volume = "base-{0}-disk-0".format(vmid)
            size = int(tpl.get("disk_gb", 10)) * 1024 ** 3
            pve.storages["local-lvm"].setdefault("volumes", {})[volume] = {
                "content": "images", "format": "raw", "size": size, "vmid": vmid, "ctime": 0}
            config = {
                "name": str(tpl.get("name") or "talos-template"),
                "description": "Talos {0} (nocloud/metal image installed, no machine config)".format(self.version),
                "smbios1": "uuid={0}".format(_uuid.uuid4()),
                "memory": int(tpl.get("memory", 2048)), "cores": int(tpl.get("cores", 2)), "sockets": 1,
                "cpu": "host", "machine": "q35", "ostype": "l26", "scsihw": "virtio-scsi-pci",
                "scsi0": "local-lvm:{0},size={1}G".format(volume, size // 1024 ** 3),
                "net0": "virtio=BC:24:11:{0:02X}:{1:02X}:{2:02X},bridge=vmbr0".format(
                    (vmid >> 16) & 0xFF, (vmid >> 8) & 0xFF, vmid & 0xFF),
                "boot": "order=scsi0", "agent": "enabled=1", "balloon": 0, "serial0": "socket",
                "tags": "talos;template", "template": 1,
            }
            vm = pve.add_vm(vmid, config["name"], node=host, status="stopped", config=config, template=True)
            vm.config = config
            self.templates[vmid] = host
        addresses = [self.vip()]
        self.api_host = self.vip()
        if self.world.isolated:
            self.api_port = free_port_on(addresses)
        else:
            self.api_port = int(self.spec.get("apiPort", 6443))
            if not port_free(self.api_host, self.api_port):
                raise OSError("{0}:{1} is in use (another lab world? use isolated mode)".format(
                    self.api_host, self.api_port))

    # ------------------------------------------------------------------------------ boot sources
    def boots_talos(self, vm) -> bool:
        """Cloned (through any chain of clones) from a Talos template, or the Talos ISO in a drive."""
        pve = self.world.proxmox.pve
        seen, vmid = set(), vm.vmid
        while vmid in pve.cloned_from and vmid not in seen:
            seen.add(vmid)
            vmid = pve.cloned_from[vmid]
            if vmid in self.templates:
                return True
        for key, value in vm.config.items():
            if key[:3] in ("ide", "sat", "scs", "vir") and self.iso_volid in str(value):
                return True
        return False

    def _lease(self, vmid: int) -> str:
        used = set(self._leased) | set(self.world.addresses.values())
        for host in self.pool:
            addr = "{0}.{1}".format(self.prefix, host)
            if addr not in used:
                self._leased[addr] = vmid
                return addr
        raise RuntimeError("DHCP pool exhausted")

    # ------------------------------------------------------------------------------ the look
    async def observe(self) -> None:
        world = self.world
        pve = world.proxmox.pve
        scenario_vmids = {s.vmid for s in world.proxmox.specs}
        for vm in list(pve.vms):
            if vm.vmid in scenario_vmids or vm.template or vm.vmid in self.templates:
                continue
            st = self.vms.get(vm.vmid)
            alive = vm.status == "running" and vm.node not in world.dead_hosts
            if st is None:
                if not alive:
                    continue
                st = self._new(vm)
            if st.machine is None:
                continue
            m = st.machine
            if alive and not st.powered:
                st.powered, st.started_at = True, vm.started_at
                self._event(st, "power-on", "vm {0} running; Talos boots".format(vm.vmid))
                m.power_on()
            elif not alive and st.powered:
                st.powered, st.started_at = False, None
                self._event(st, "power-off", "vm {0} {1}".format(vm.vmid, vm.status))
                m.power_off()
            elif alive and vm.started_at != st.started_at:
                st.started_at = vm.started_at
                self._event(st, "power-cycle", "vm {0} reset".format(vm.vmid))
                m.power_off()
                m.power_on()
            self._agent(vm, st)
        present = {vm.vmid for vm in pve.vms}
        for vmid in [v for v in self.vms if v not in present]:
            await self._destroyed(vmid)
        self._sync_kube_etcd()

    def _sync_kube_etcd(self) -> None:
        """The Kubernetes twin judges etcd quorum from its list of members: keep it to the Talos etcd's members
        (a control plane removed with EtcdRemoveMemberByID no longer counts, a joined one does)."""
        kube = self.world.kube
        if kube is None or self.world.talos.etcd.gen == 0:
            return
        cp = kube.control_plane
        members = {m.hostname for m in self.world.talos.etcd.members.values()}
        ours = {st.kube_name for st in self.vms.values() if st.kube_name} | self._kube_names
        self._kube_names = ours
        wanted = [n for n in cp.etcd_members if n not in ours or n in members]
        wanted += sorted(n for n in ours & members if n not in wanted and n in kube.world)
        if wanted != cp.etcd_members:
            cp.etcd_members = wanted

    def _new(self, vm) -> ProvisionedVm:
        st = ProvisionedVm(vm.vmid)
        self.vms[vm.vmid] = st
        if not self.boots_talos(vm):
            self._event(st, "no-boot", "vm {0}: no Talos boot source (template clone or ISO)".format(vm.vmid))
            return st
        twin = self.world.talos
        st.address = self._lease(vm.vmid)
        name = "vm-{0}".format(vm.vmid)
        m = ProvisionedMachine(name, st.address, twin.clock, etcd_cluster=twin.etcd, timings=twin.timings,
                               version=self.version, system_uuid=_smbios_uuid(vm.config.get("smbios1")),
                               install_secs=self.install_secs)
        m.disks = vm_disks(vm.config)
        twin.machines[name] = m
        twin.endpoints[name] = ConfigPkiEndpoint(twin, m)
        m.subscribe(twin._on_change)
        m.subscribe(lambda machine, st=st: self._on_machine(st, machine))
        st.machine = m
        self._event(st, "talos-vm", "vm {0}: Talos twin at {1}".format(vm.vmid, st.address))
        return st

    def _agent(self, vm, st: ProvisionedVm) -> None:
        """The qemu-guest-agent (Talos extension) answers while Talos runs; fakepve serves vm.agent."""
        m = st.machine
        if not (_agent_enabled(vm.config) and m.powered and m.os_up):
            vm.agent = None
            return
        mac = _mac(vm.config.get("net0")) or "bc:24:11:00:00:00"
        suffix = mac.replace(":", "")[-4:]
        vm.agent = {"interfaces": [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                              {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}]},
            {"name": "eth0", "hardware-address": mac,
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": m.address, "prefix": 24},
                              {"ip-address-type": "ipv6", "ip-address": "fe80::be24:11ff:fe{0}:{1}".format(
                                  suffix[:2], suffix[2:]), "prefix": 64}]},
        ]}

    async def _destroyed(self, vmid: int) -> None:
        st = self.vms.pop(vmid)
        for addr in [a for a, v in self._leased.items() if v == vmid]:
            del self._leased[addr]
        m = st.machine
        if m is None:
            return
        twin = self.world.talos
        m.power_off()
        m._listeners.clear()      # the machine is gone: its etcd member (still listed) must not reach it
        endpoint = twin.endpoints.pop(m.name, None)
        twin.machines.pop(m.name, None)
        if m in twin.etcd.nodes:
            twin.etcd.nodes.remove(m)
        if endpoint is not None:
            await endpoint.stop()
        if st.kubelet and self.world.kube is not None:
            self.world.kube.power_off(st.kube_name)
            st.kubelet = False
        self._event(st, "vm-destroyed", "vm {0} deleted: its Talos twin is gone".format(vmid))

    # ------------------------------------------------------------------------------ Kubernetes
    def _on_machine(self, st: ProvisionedVm, m) -> None:
        try:
            self._follow(st, m)
        except Exception as exc:  # keep it for the tests (the model only logs listener errors)
            log.exception("provisioning: following %s failed", m.name)
            self.world._errors.append(exc)

    def cluster_api_ready(self) -> bool:
        etcd = self.world.talos.etcd
        if etcd.gen == 0 or not etcd.has_quorum():
            return False
        return any(st.machine is not None and st.machine.role == "controlplane" and st.machine.etcd_running
                   for st in self.vms.values())

    def _follow(self, st: ProvisionedVm, m) -> None:
        world = self.world
        kube = world.kube
        world._changed = True     # endpoints follow at the next look (a worker's apid waits for trustd)
        world.sync_etcd_quorum()
        if kube is not None and kube.api is None and not self._api_starting and self.cluster_api_ready():
            self._api_starting = True
            world.spawn(self._start_api(m))
        want = (kube is not None and kube.api is not None and m.powered and m.os_up and not m.maintenance
                and m.stage == mm.RUNNING and st.machine is m)
        if want and not st.kubelet:
            role = "control-plane" if m.role == "controlplane" else "worker"
            if st.kube_name is None:
                st.kube_name = m.hostname
                vm = world.proxmox.pve.vm(st.vmid)
                labels, taints = node_labels_taints(m.docs(), role)
                kube.join_node(st.kube_name, m.address, role,
                               _smbios_uuid(vm.config.get("smbios1")) if vm is not None else m.system_uuid,
                               labels, taints)
            st.kubelet = True
            self._event(st, "kubelet-start", "node {0}: kubelet starts".format(st.kube_name))
            kube.power_on(st.kube_name, boot_seconds=float(world.boot["kubelet_secs"]))
        elif not want and st.kubelet:
            st.kubelet = False
            self._event(st, "kubelet-stop", "node {0}: kubelet gone".format(st.kube_name))
            kube.power_off(st.kube_name)
        if st.kube_name and st.kube_name in kube.world and kube.world[st.kube_name].address != m.address:
            kube.set_node_address(st.kube_name, m.address)

    async def _start_api(self, m) -> None:
        """etcd and an apiserver run: the cluster endpoint answers (Kubernetes CA of the config)."""
        crt, key = config_ca(m.docs(), "cluster")
        v1 = talos_config.v1alpha1(m.docs()) or {}
        endpoint = str(((v1.get("cluster") or {}).get("controlPlane") or {}).get("endpoint") or "")
        from urllib.parse import urlparse
        url = urlparse(endpoint)
        host, port = self.api_host, self.api_port
        if url.hostname and url.hostname.startswith("127.") and url.port:
            host, port = url.hostname, url.port
        sans = [host] + [str(s) for s in ((v1.get("cluster") or {}).get("apiServer") or {}).get("certSANs") or []]
        try:
            await self.world.kube.serve_api(host, port, crt, key, extra_sans=sans)
        finally:
            self._api_starting = False
        self.world.record_event("-", "apiserver-up", "Kubernetes API at https://{0}:{1}".format(host, port))
        for st in self.vms.values():
            if st.machine is not None:
                self._follow(st, st.machine)

    def vm_named(self, name: str):
        """The fakepve VM of a provisioned node, by its Kubernetes node name, VM name or ``vm-<vmid>``."""
        pve = self.world.proxmox.pve
        for vmid, st in self.vms.items():
            vm = pve.vm(vmid)
            if vm is not None and name in (st.kube_name, vm.name, "vm-{0}".format(vmid)):
                return vm
        return None

    # ------------------------------------------------------------------------------ reporting
    def _event(self, st: ProvisionedVm, kind: str, detail: str) -> None:
        entry = {"time": self.world.clock.now_iso(), "node": "vm-{0}".format(st.vmid), "event": kind,
                 "detail": detail}
        st.history.append(entry)
        self.world.record_event("vm-{0}".format(st.vmid), kind, detail)

    def status(self) -> list[dict]:
        out = []
        for vmid, st in sorted(self.vms.items()):
            m = st.machine
            entry = {"vmid": vmid, "talos": m is not None, "address": st.address, "powered": st.powered,
                     "node": st.kube_name, "kubelet": st.kubelet}
            if m is not None:
                entry.update({"stage": mm.STAGE_NAMES.get(m.stage, str(m.stage)), "role": m.role,
                              "hostname": m.hostname, "maintenance": m.maintenance, "installed": m.installed,
                              "etcd": m.etcd_running if m.etcd is not None else None})
            out.append(entry)
        return out

    def inventory_vars(self) -> dict:
        px = self.world.proxmox
        return {
            "cluster_endpoint": self.cluster_endpoint(),
            "vip": self.api_host,
            "talos_version": self.version,
            "talos_port": self.world.talos.port if self.world.talos is not None else 50000,
            "iso": self.iso_volid,
            "templates": {host: vmid for vmid, host in sorted(self.templates.items())},
            "storage": "local-lvm",
            "bridge": "vmbr0",
            "pve_hosts": list(px.pve_nodes),
            "install_disk": "/dev/sda",
        }
