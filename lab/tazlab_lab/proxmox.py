"""The Proxmox side of the lab world: fakepve, in-process, on the world's event loop and clock.

fakepve (PyPI, AGPL-3.0) is a *test dependency* of the lab and is used unmodified: this module
imports it, builds its model through its public Python API (``add_vm``, ``add_node``,
``apitokens``, the fault methods) and subclasses ``FakePve`` only to hand its one hook for the
passage of time, ``pause()``, to the world's :class:`~tazlab_lab.clock.SimClock`. Nothing of
fakepve is copied here.

What the world gets:

* one PVE cluster (``pve1``, ``pve2``, ... from the scenario), one VM per Kubernetes node: VM name =
  node name, ``smbios1: uuid=<the node's systemUUID>`` (how the Proxmox CCM and the runbooks match a
  VM to a node), VMs spread over the PVE nodes, some HA-managed as the scenario says;
* TLS with a certificate issued by a CA the lab generates (``ca.crt``: clients verify with it);
* a password login (``root@pam``) and an API token (``root@pam!<name>``, privilege separation off).

Time (see also :class:`SimFakePve`):

* fakepve's ``time_scale`` is real seconds per PVE second, the SimClock's is real seconds per
  simulated second: the same unit. When the world's clock runs in real time (``clock.start(S)``)
  fakepve gets ``time_scale = S``.
* Every duration fakepve models through ``pause()`` -- ``stop_secs``, ``start_secs``,
  ``shutdown_secs`` and the shutdown timeout, the HA manager's ``ha_delay``, ``backup()``/``migrate()``
  lengths, ``hold_config_lock()``, ``slow_network`` latency -- is slept on the SimClock, so
  ``await clock.advance(s)`` moves it (and in real-time mode it takes the same wall time as it would
  in fakepve alone).
* ``advance()`` can NOT move what fakepve reads from the wall clock: ``time.time()`` in UPIDs and
  task start/end times, VM ``uptime``, ticket issue time and expiry (``ticket_ttl``); the wait for a
  held config lock (``lock_wait``, a loop-time deadline scaled by ``time_scale``); the hang of
  ``flaky_network(hang_rate=...)`` (``hang_secs`` real seconds scaled by ``time_scale``) and
  ``body_timeout``. With the clock driven by ``advance()`` only (tests), fakepve runs with
  ``time_scale = 1.0`` so tasks stay asynchronous (a request returns its UPID and the task waits for
  simulated time); those wall-clock waits then last their nominal number of real seconds.
* The world notices a VM's power change at its next look (every 0.5 simulated seconds), so a test
  advances the clock a little after an API call before it checks the other twins.
* Durations of the world's own Proxmox faults: ``host-offline``'s HA recovery (120 s by default)
  runs on the SimClock too.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import ipaddress
import logging
import os
import secrets
import time
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from fakepve import FakePve
from fakepve.model import PveError

from .clock import SimClock
from .ports import port_free

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.80.1"
DEFAULT_PORT = 8006
DEFAULT_USER = "root@pam"
DEFAULT_TOKEN_NAME = "tazlab"
DEFAULT_PVE_NODES = ("pve1", "pve2", "pve3")
FIRST_VMID = 101
#: Without a ``proxmox:`` section: three PVE hosts, the control-plane VMs HA-managed, workers not.
DEFAULT_PROXMOX = {"nodes": list(DEFAULT_PVE_NODES), "ha": ["control-plane"]}


# --------------------------------------------------------------------------------------- PKI
class LabCA:
    """The lab's own certificate authority: issues the TLS server certificates of the twins."""

    def __init__(self, name: str = "tazlab lab CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tazlab lab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _dt.datetime.now(_dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def cert_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, common_name: str, hosts: Iterable[str]) -> tuple[bytes, bytes]:
        """A server certificate and key (PEM) for these IP addresses / DNS names, signed by the CA."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
            except ValueError:
                entry = x509.DNSName(host)
            if entry not in names:
                names.append(entry)
        now = _dt.datetime.now(_dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_private(path: str, data: bytes | str) -> None:
    """Write a file readable by its owner only (keys, secrets)."""
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.chmod(path, 0o600)
        out.write(data)


# ---------------------------------------------------------------------------------- fakepve
class SimFakePve(FakePve):
    """fakepve whose ``pause()`` -- its single notion of elapsing PVE time -- sleeps on the SimClock.

    ``pause(secs)`` is fakepve's documented hook ("sleep secs PVE seconds, scaled by time_scale;
    nothing at 0"); everything else is fakepve's own code, unmodified.
    """

    def __init__(self, clock: SimClock, **kwargs: Any):
        super().__init__(**kwargs)
        self.clock = clock
        #: vmids whose HA requested state was written (PUT, or a stop/start through HA); the others omit
        #: ``state`` in GET /cluster/ha/resources/{sid}, as PVE does for a state never set (= started).
        self.ha_state_written: set[int] = set()
        #: newid -> source vmid of every clone asked for (the provisioning twin boots Talos from templates)
        self.cloned_from: dict[int, int] = {}

    async def _qm_clone(self, v, user):
        result = await super()._qm_clone(v, user)
        self.cloned_from[int(v["newid"])] = int(v["vmid"])
        return result

    async def _agent_call(self, match, values):
        """qemu-server's order of refusals (PVE::QemuServer::Agent::agent_available): no ``agent`` in the
        config, the VM not running, then the 3 s guest-ping (fakepve's own answer)."""
        vm = self.find(values["node"], values["vmid"])
        agent = str(vm.config.get("agent", "0"))
        enabled = agent.split(",")[0].split("=")[-1] == "1" or "enabled=1" in agent
        if not enabled:
            raise PveError(500, "No QEMU guest agent configured")
        if vm.status != "running":
            raise PveError(500, "VM {0} is not running".format(vm.vmid))
        return await super()._agent_call(match, values)

    def flaky_network(self, drop_rate=0.0, hang_rate=0.0, hang_secs=120, seed=None):
        """fakepve's, with a ``seed`` that applies at once: fakepve seeds its generator in ``start()``, so a
        seed given to a fake already serving would change nothing (the lab's worlds are started first)."""
        super().flaky_network(drop_rate=drop_rate, hang_rate=hang_rate, hang_secs=hang_secs, seed=seed)
        if seed is not None:
            self._random.seed(seed)

    async def pause(self, secs):  # noqa: D401 - fakepve's signature
        if secs and self.time_scale:
            await self.clock.sleep(float(secs))

    # -- Proxmox HA as PVE 8/9 behave (pve-ha-manager; see shared/reference/proxmox.md) -------------
    # fakepve keeps one ``vm.ha_state`` per VM; the lab reads it as the REQUESTED state
    # (started/stopped/disabled/ignored) and answers the API as PVE does from it:
    # * status/current ``ha``: ``{managed: 0}`` for ``ignored`` (PVE::HA::Config::get_service_status),
    #   else ``{managed: 1, state: <CRM state>}`` (``disabled`` reads ``stopped``, as on PVE);
    # * an ``ignored`` VM is stopped/started/shut down directly (qmstop...), not through HA;
    # * GET/PUT /cluster/ha/resources/{sid} read and store the requested state; the CRM (after
    #   ``ha_delay``) then starts a stopped VM set to ``started`` and stops a running one set to
    #   ``stopped``/``disabled``; ``ignored`` leaves the VM as it is.
    CRM_STATE = {"started": "started", "stopped": "stopped", "disabled": "stopped"}

    def _vm_status(self, vm, listing=False):
        data = super()._vm_status(vm, listing)
        if not listing and vm.ha_managed:
            if vm.ha_state == "ignored":
                data["ha"] = {"managed": 0}
            else:
                data["ha"] = {"managed": 1, "state": self.CRM_STATE.get(vm.ha_state, vm.ha_state)}
        return data

    async def _direct_if_ignored(self, action, vm, user, p):
        handler = getattr(super(), "_do_" + action)
        if vm.ha_state != "ignored":
            if vm.ha_managed and action in ("start", "stop", "shutdown"):
                self.ha_state_written.add(vm.vmid)
            return await handler(vm, user, p)
        saved, vm.ha_state = vm.ha_state, None
        try:
            return await handler(vm, user, p)
        finally:
            vm.ha_state = saved

    async def _do_start(self, vm, user, p):
        return await self._direct_if_ignored("start", vm, user, p)

    async def _do_stop(self, vm, user, p):
        return await self._direct_if_ignored("stop", vm, user, p)

    async def _do_shutdown(self, vm, user, p):
        return await self._direct_if_ignored("shutdown", vm, user, p)

    def _routes_tazlab_ha(self):
        return [("GET", "/cluster/ha/resources", self._ha_index),
                ("POST", "/cluster/ha/resources", self._ha_create),
                ("GET", "/cluster/ha/resources/{sid}", self._ha_read),
                ("PUT", "/cluster/ha/resources/{sid}", self._ha_update),
                ("DELETE", "/cluster/ha/resources/{sid}", self._ha_delete)]

    # POST/DELETE as pve-ha-manager's API2/HA/Resources.pm: Sys.Console, quorum, the VM must exist,
    # "resource ID 'vm:N' already defined"; DELETE of a VM not in HA: "resource 'vm:N' is not HA managed".
    def _ha_sid(self, sid):
        text = str(sid or "")
        kind, _, vmid = text.rpartition(":")
        if kind not in ("", "vm") or not vmid.isdigit():
            raise PveError(400, "Parameter verification failed.", {"sid": "unable to parse service id '{0}'".format(text)})
        return int(vmid)

    async def _ha_create(self, values, user):
        self.require(user, "/", "Sys.Console")
        self.need_quorum()
        vmid = self._ha_sid(values.get("sid"))
        vm = self.vm(vmid)
        if vm is None:
            raise PveError(500, "resource 'vm:{0}' does not exist in cluster".format(vmid))
        if vm.ha_managed:
            raise PveError(500, "resource ID 'vm:{0}' already defined".format(vmid))
        state = values.get("state") or "started"
        state = "started" if state == "enabled" else state
        vm.ha_state = state
        if values.get("state"):
            self.ha_state_written.add(vm.vmid)
        self._crm_follow(vm, state)
        return None

    async def _ha_delete(self, values, user):
        self.require(user, "/", "Sys.Console")
        vmid = self._ha_sid(values.get("sid"))
        vm = self.vm(vmid)
        if vm is None or not vm.ha_managed:
            raise PveError(500, "resource 'vm:{0}' is not HA managed".format(vmid))
        vm.ha_state = None
        self.ha_state_written.discard(vm.vmid)
        return None

    def _crm_follow(self, vm, state):
        """The CRM acts on a requested state after ha_delay (in the background)."""
        crm = self._crm(vm, state)
        if crm is not None:
            asyncio.ensure_future(crm)

    def _crm(self, vm, state):
        """What the CRM does on a requested state after ha_delay, as a coroutine (None: nothing to do): start a
        stopped VM set to started, stop a running one set to stopped/disabled; ignored leaves it alone."""
        want = {"started": "running", "stopped": "stopped", "disabled": "stopped"}.get(state)
        if not want or vm.status == want:
            return None

        async def crm():
            await self.pause(self.ha_delay)
            if vm.ha_state != state:
                return
            if want == "running":
                vm.apply_pending()
                vm.status = vm.qmpstatus = "running"
                vm.started_at = time.time()
            else:
                vm.status = vm.qmpstatus = "stopped"
        return crm()

    def _ha_vm(self, sid):
        text = str(sid or "")
        kind, _, vmid = text.rpartition(":")
        if kind not in ("", "vm") or not vmid.isdigit():
            raise PveError(400, "Parameter verification failed.", {"sid": "unable to parse service id '{0}'".format(text)})
        vm = next((v for v in self.vms if v.vmid == int(vmid) and v.ha_managed), None)
        if vm is None:
            raise PveError(500, "no such resource 'vm:{0}'".format(vmid))
        return vm

    def _ha_entry(self, vm):
        entry = {"sid": "vm:{0}".format(vm.vmid), "type": "vm", "digest": "0" * 40, "max_restart": 1,
                 "max_relocate": 1, "failback": 1}
        if vm.vmid in self.ha_state_written or vm.ha_state != "started":
            entry["state"] = vm.ha_state
        return entry

    async def _ha_index(self, values, user):
        return [self._ha_entry(vm) for vm in self.vms if vm.ha_managed]

    async def _ha_read(self, values, user):
        return self._ha_entry(self._ha_vm(values.get("sid")))

    async def _ha_update(self, values, user):
        vm = self._ha_vm(values.get("sid"))
        self.need_quorum()  # the resource config lives in /etc/pve
        state = values.get("state")
        if state is None:
            return None
        state = "started" if state == "enabled" else state
        vm.ha_state = state
        self.ha_state_written.add(vm.vmid)
        crm = self._crm(vm, state)
        if crm is not None and self.time_scale:
            asyncio.ensure_future(crm)
        elif crm is not None:
            await crm
        return None


# ------------------------------------------------------------------------------- the model
@dataclass
class VmSpec:
    """One VM of the world, for one Kubernetes node."""

    name: str
    system_uuid: str
    vmid: int
    pve_node: str
    ha: str | None = None            # HA requested state (started/stopped/...) when HA-managed
    role: str = "worker"
    tags: list[str] = field(default_factory=list)
    memory: int = 8192
    cores: int = 4
    disk_gb: int = 64
    status: str = "running"
    stop_secs: float = 0.0
    shutdown_secs: float = 5.0       # ACPI shutdown: the guest (Talos) takes this long to power off
    start_secs: float = 0.0
    mac: str | None = None


def build_vm_specs(nodes: list[dict], proxmox: dict | None) -> tuple[list[str], list[VmSpec]]:
    """The PVE node names and one VmSpec per cluster node, from the scenario.

    ``nodes``: ``[{name, system_uuid, role?}]`` (the Kubernetes nodes). ``proxmox``: the scenario's
    optional ``proxmox:`` section::

        proxmox:
          nodes: [pve1, pve2, pve3]           # PVE hosts (default: these three)
          ha: [control-plane]                 # roles (or node names) whose VMs are HA-managed
          vms:                                # per node overrides (all optional)
            control-plane-01: {vmid: 101, node: pve1, ha: started, stop_secs: 5, memory: 4096}

    No section at all: DEFAULT_PROXMOX (pve1..pve3, control planes HA-managed). Without an explicit ``node:`` VMs are spread round-robin over the PVE nodes, in scenario order.
    """
    proxmox = dict(DEFAULT_PROXMOX if proxmox is None else proxmox)
    pve_nodes = [str(n) for n in (proxmox.get("nodes") or DEFAULT_PVE_NODES)]
    if not pve_nodes:
        raise ValueError("proxmox.nodes must name at least one PVE node")
    overrides = proxmox.get("vms") or {}
    ha_roles = set(proxmox.get("ha") or [])
    used = {int(o["vmid"]) for o in overrides.values() if isinstance(o, dict) and "vmid" in o}
    next_id = FIRST_VMID
    specs: list[VmSpec] = []
    for index, node in enumerate(nodes):
        name = node["name"]
        over = dict(overrides.get(name) or {})
        if "vmid" in over:
            vmid = int(over["vmid"])
        else:
            while next_id in used:
                next_id += 1
            vmid = next_id
            used.add(vmid)
        role = node.get("role") or "worker"
        ha = over.get("ha")
        if ha is None and (role in ha_roles or name in ha_roles):
            ha = "started"
        spec = VmSpec(
            name=name,
            system_uuid=str(node["system_uuid"]),
            vmid=vmid,
            pve_node=str(over.get("node") or pve_nodes[index % len(pve_nodes)]),
            ha=ha,
            role=role,
            tags=list(over.get("tags") or ["talos", role]),
            memory=int(over.get("memory", 4096 if role == "control-plane" else 8192)),
            cores=int(over.get("cores", 2 if role == "control-plane" else 4)),
            disk_gb=int(over.get("disk_gb", 32 if role == "control-plane" else 64)),
            status=str(over.get("status", node.get("vm_status", "running"))),
            stop_secs=float(over.get("stop_secs", 0)),
            shutdown_secs=float(over.get("shutdown_secs", 5)),
            start_secs=float(over.get("start_secs", 0)),
            mac=over.get("mac"),
        )
        specs.append(spec)
    return pve_nodes, specs


def _mac_for(spec: VmSpec) -> str:
    if spec.mac:
        return spec.mac
    # Proxmox's own OUI (BC:24:11), the rest derived from the VMID: stable across runs.
    return "BC:24:11:{0:02X}:{1:02X}:{2:02X}".format((spec.vmid >> 16) & 0xFF, (spec.vmid >> 8) & 0xFF,
                                                     spec.vmid & 0xFF)


def vm_config(spec: VmSpec) -> dict[str, Any]:
    """The qemu-server config of a Talos VM, as `GET .../config` shows it."""
    return {
        "name": spec.name,
        "smbios1": "uuid={0}".format(spec.system_uuid),
        "vmgenid": str(_uuid.uuid5(_uuid.NAMESPACE_OID, "vmgenid-{0}".format(spec.vmid))),
        "memory": spec.memory,
        "cores": spec.cores,
        "sockets": 1,
        "cpu": "host",
        "machine": "q35",
        "ostype": "l26",
        "scsihw": "virtio-scsi-single",
        "scsi0": "local-lvm:vm-{0}-disk-0,iothread=1,size={1}G".format(spec.vmid, spec.disk_gb),
        "net0": "virtio={0},bridge=vmbr0".format(_mac_for(spec)),
        "boot": "order=scsi0",
        "onboot": 1,
        "agent": "0",
        "tags": ";".join(sorted(set(t.lower() for t in spec.tags))),
        "description": "Talos {0} node {1} (tazlab lab)".format(spec.role, spec.name),
    }


class ProxmoxSide:
    """fakepve for the world: built from VmSpecs, served with TLS from the lab CA, on the world's loop."""

    def __init__(self, clock: SimClock, nodes: list[dict], proxmox: dict | None = None, *,
                 host: str | None = None, port: int | None = None, ca: LabCA | None = None):
        proxmox = dict(proxmox or {})
        self.clock = clock
        self.host = host or proxmox.get("host") or DEFAULT_HOST
        self.port = DEFAULT_PORT if port is None else int(port)
        self.user = str(proxmox.get("user") or DEFAULT_USER)
        self.password = str(proxmox.get("password") or secrets.token_urlsafe(18))
        self.token_name = str(proxmox.get("token_name") or DEFAULT_TOKEN_NAME)
        self.token_secret = str(proxmox.get("token_secret") or _uuid.uuid4())
        self.pve_nodes, self.specs = build_vm_specs(nodes, proxmox or None)
        self.ca = ca or LabCA()
        self.pve = SimFakePve(clock, user=self.user, password=self.password, host=self.host, port=self.port)
        self.pve.cluster_name = str(proxmox.get("cluster_name") or "tazlab")
        self.pve.apitokens[self.token_id] = self.token_secret
        self.pve.max_requests = 10 ** 6   # the request log is the Proxmox twin's counter (counters.py)
        # Default PVE node list: fakepve starts with pve1; make it exactly the scenario's.
        self.pve.nodes = {}
        for name in self.pve_nodes:
            self.pve.add_node(name)
        for spec in self.specs:
            vm = self.pve.add_vm(spec.vmid, spec.name, node=spec.pve_node, status=spec.status,
                                 config=vm_config(spec))
            vm.stop_secs = spec.stop_secs
            vm.shutdown_secs = spec.shutdown_secs
            vm.start_secs = spec.start_secs
            if spec.ha:
                vm.ha_state = spec.ha
        self.certfile: str | None = None
        self.keyfile: str | None = None
        self.cafile: str | None = None
        self.started = False

    # -- identity ---------------------------------------------------------------------------
    @property
    def token_id(self) -> str:
        """The full token id, ``user@realm!name`` (what the PVEAPIToken header carries)."""
        return "{0}!{1}".format(self.user, self.token_name)

    @property
    def url(self) -> str:
        return "https://{0}:{1}".format(self.host, self.port)

    def vm_by_name(self, name: str):
        for vm in self.pve.vms:
            if vm.name == name:
                return vm
        raise KeyError("no VM named {0!r}".format(name))

    def spec(self, name: str) -> VmSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError("no VM named {0!r}".format(name))

    # -- lifecycle --------------------------------------------------------------------------
    def write_pki(self, directory: str) -> None:
        """Write ca.crt, proxmox.crt and proxmox.key into directory (the key owner-only)."""
        os.makedirs(directory, exist_ok=True)
        cert, key = self.ca.issue_server("pve", [self.host, "localhost", "127.0.0.1"])
        self.cafile = os.path.join(directory, "ca.crt")
        self.certfile = os.path.join(directory, "proxmox.crt")
        self.keyfile = os.path.join(directory, "proxmox.key")
        with open(self.cafile, "wb") as out:
            out.write(self.ca.cert_pem())
        with open(self.certfile, "wb") as out:
            out.write(cert)
        write_private(self.keyfile, key)

    async def start(self, directory: str) -> None:
        """Serve on the running loop (the world's); PKI files go into directory."""
        self.sync_time_scale()
        if self.certfile is None:
            self.write_pki(directory)
        if self.port and not port_free(self.host, self.port):
            raise OSError("{0}:{1} is in use (another lab world?)".format(self.host, self.port))
        await self.pve.start(self.certfile, self.keyfile)
        self.port = self.pve.port
        self.started = True
        log.info("proxmox twin on %s (%d VMs on %s)", self.url, len(self.specs), ", ".join(self.pve_nodes))

    async def stop(self) -> None:
        if self.started:
            await self.pve.stop()
            self.started = False

    def sync_time_scale(self) -> None:
        """fakepve's time_scale follows the clock's when it runs in real time (same unit).

        With the clock moved only by ``advance()``, fakepve keeps 1.0 so its tasks stay
        asynchronous; their durations are slept on the SimClock either way (see SimFakePve).
        """
        scale = self.clock.time_scale
        self.pve.time_scale = float(scale) if scale else 1.0

    # -- connection settings ----------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """community.proxmox's environment variables for this PVE (token name without the user part)."""
        return {
            "PROXMOX_HOST": self.host,
            "PROXMOX_PORT": str(self.port),
            "PROXMOX_USER": self.user,
            "PROXMOX_PASSWORD": self.password,
            "PROXMOX_TOKEN_ID": self.token_name,
            "PROXMOX_TOKEN_SECRET": self.token_secret,
            "PROXMOX_CA_PATH": self.cafile or "",
            "PROXMOX_VALIDATE_CERTS": "true",
        }

    def write_env(self, path: str) -> None:
        lines = ["# Proxmox twin of the tazlab lab: community.proxmox / tazlab.resilience variables"]
        for key, value in self.env().items():
            lines.append("{0}={1}".format(key, _shell_quote(value)))
        write_private(path, "\n".join(lines) + "\n")

    def summary(self) -> list[dict[str, Any]]:
        """Every VM as Proxmox knows it (status 'unknown' on an offline PVE node)."""
        out = []
        for vm in self.pve.vms:
            online = self.pve.nodes.get(vm.node, {}).get("online", True)
            out.append({
                "vmid": vm.vmid, "name": vm.name, "node": vm.node,
                "status": vm.status if online else "unknown",
                "real_status": vm.status, "lock": vm.lock, "ha_state": vm.ha_state,
                "smbios_uuid": _smbios_uuid(vm.config.get("smbios1", "")),
            })
        return out


def _smbios_uuid(value: str) -> str | None:
    for part in str(value).split(","):
        key, _, val = part.partition("=")
        if key.strip() == "uuid":
            return val.strip()
    return None


def _shell_quote(value: str) -> str:
    """Quote for a POSIX shell and for python-dotenv/systemd EnvironmentFile alike when needed."""
    if value and all(c.isalnum() or c in "@%+=:,./-_!" for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"
