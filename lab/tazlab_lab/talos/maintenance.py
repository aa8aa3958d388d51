"""Talos nodes that start life without a config: maintenance mode, first apply, install, the config's PKI.

Written from the upstream behaviour (../shared/reference/talos-provisioning.md sections 3-4, talos.md
"Transport"), independent of the collection:

* A VM booted from the Talos ISO (or a Talos template) without a config sits in stage MAINTENANCE. apid
  answers with a certificate of a per-boot, in-memory, self-signed Ed25519 CA and requests no client
  certificate; every caller is ``os:reader``, ApplyConfiguration is admitted there only (the rest of
  the RPCs the maintenance service does not know answer Unimplemented; see server.MAINTENANCE_RPCS).
* Up to 1.12 the maintenance service accepts only REBOOT, AUTO and TRY (NO_REBOOT and STAGED answer
  Unimplemented "... not supported in maintenance mode"); 1.13 turns REBOOT into NO_REBOOT there.
* The config is validated first (InvalidArgument, nothing changes). A node not installed yet then
  installs (``install_secs``, apid down), reboots and boots from disk with the config: stage BOOTING,
  RUNNING; a control plane's etcd waits for Bootstrap (or joins an existing cluster).
* With a config the node's apid serves a certificate of the config's OS CA (``machine.ca``) and
  requires client certificates signed by it (or by ``machine.acceptedCAs``). A control plane has the
  CA key and signs its own; a worker's certificate is signed remotely by trustd on a control plane
  (same CA, same ``machine.token``): until one runs, the worker's apid does not come up.
* ``Kubeconfig`` (control planes only, else Unimplemented): one ``common.Data`` whose bytes are a gzip'd
  tar with one entry ``kubeconfig`` (mode 0600) and no end-of-archive marker (the server never closes
  the tar writer); the kubeconfig: cluster ``<clusterName>`` at ``cluster.controlPlane.endpoint`` with the
  Kubernetes CA (issuing + accepted), user ``admin@<cluster>`` with a fresh client certificate (CN
  ``admin``, O ``system:masters``, 365 days, signed by ``cluster.ca``), context ``admin@<cluster>``
  namespace ``default``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import gzip
import hashlib
import io
import logging
import ssl
import tarfile
import time
from urllib.parse import urlparse

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpclib.const import Status

from . import config as cfg
from . import machine as mm
from .machine import TalosMachine, TalosApiError
from .pki import CertKey, TalosPKI, openssl_key_pem
from .server import READ, NodeEndpoint, roles_of

log = logging.getLogger(__name__)

#: Simulated seconds the installer takes (image pull, partitioning, bootloader) before the reboot.
DEFAULT_INSTALL_SECS = 30.0
KNOWN_TYPES = ("controlplane", "worker", "init")


def _placeholder(name: str, address: str) -> str:
    # TalosMachine() wants a config; a maintenance node has none (current/persistent are cleared at once).
    return cfg.make_config(name, address, "worker", "https://127.0.0.1:6443")


def stable_hostname(system_uuid: str) -> str:
    """Talos' ``HostnameConfig {auto: stable}``: ``talos-`` plus a short stable hash of the machine."""
    digest = hashlib.sha256(system_uuid.lower().encode()).hexdigest()
    return "talos-{0}-{1}".format(digest[:3], digest[3:6])


# ----------------------------------------------------------------------------- config reading
def _b64pem(value) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value))
    except (ValueError, TypeError):
        return None


def config_ca(docs: list[dict], path: str = "machine") -> tuple[bytes | None, bytes | None]:
    """(cert PEM, key PEM) of ``machine.ca`` (or ``cluster.ca`` with path='cluster')."""
    v1 = cfg.v1alpha1(docs) or {}
    ca = ((v1.get(path) or {}).get("ca") or {})
    return _b64pem(ca.get("crt")), _b64pem(ca.get("key"))


def accepted_cas(docs: list[dict], path: str = "machine") -> list[bytes]:
    v1 = cfg.v1alpha1(docs) or {}
    out = []
    for item in (v1.get(path) or {}).get("acceptedCAs") or []:
        pem = _b64pem((item or {}).get("crt"))
        if pem:
            out.append(pem)
    return out


def load_key(pem: bytes):
    return serialization.load_pem_private_key(openssl_key_pem(pem), password=None)


def validate(docs: list[dict], installed: bool) -> list[str]:
    """What Talos' v1alpha1 validation refuses (the minimum of talos-provisioning.md section 2)."""
    errors = []
    v1 = cfg.v1alpha1(docs)
    if v1 is None:
        return ["the config is missing the v1alpha1 document"]
    machine, cluster = v1.get("machine"), v1.get("cluster")
    if not isinstance(machine, dict):
        errors.append("machine instructions are required")
        machine = {}
    if not isinstance(cluster, dict):
        errors.append("cluster instructions are required")
        cluster = {}
    mtype = machine.get("type")
    if mtype not in KNOWN_TYPES:
        errors.append("unknown machine type {0!r}".format(mtype))
    endpoint = str(((cluster.get("controlPlane") or {}).get("endpoint")) or "")
    url = urlparse(endpoint)
    if not endpoint or url.scheme not in ("https", "http") or not url.hostname:
        errors.append("cluster.controlPlane.endpoint {0!r} is not a valid URL".format(endpoint))
    install = machine.get("install") or {}
    if not installed and not install.get("disk") and not install.get("diskSelector"):
        errors.append("install instructions are required in \"metal\" mode (machine.install.disk or diskSelector)")
    crt, key = config_ca(docs)
    if crt is None:
        errors.append("machine.ca.crt is required")
    else:
        try:
            x509.load_pem_x509_certificate(crt)
        except ValueError:
            errors.append("machine.ca.crt is not a PEM certificate")
    if mtype in ("controlplane", "init") and key is None:
        errors.append("machine.ca.key is required on control plane nodes")
    if mtype == "worker":
        if key is not None:
            errors.append("machine.ca.key must not be set on worker nodes")
        if ((cluster.get("ca") or {}).get("key")):
            errors.append("cluster.ca.key must not be set on worker nodes")
    return errors


# ------------------------------------------------------------------------------- the machine
class ProvisionedMachine(TalosMachine):
    """A Talos VM that boots without a config: maintenance mode at its DHCP address, then the first apply.

    ``etcd_cluster`` is the twin's etcd: the machine joins it (as a control plane) once a config with
    ``machine.type: controlplane`` is applied. Starts powered off; ``power_on()`` boots it.
    """

    def __init__(self, name: str, address: str, clock, *, etcd_cluster, timings=None, version: str = "v1.13.9",
                 system_uuid: str = "", install_secs: float = DEFAULT_INSTALL_SECS):
        super().__init__(name, _placeholder(name, address), clock, etcd=None, timings=timings, version=version)
        self.etcd_cluster = etcd_cluster
        self.system_uuid = system_uuid
        self.install_secs = float(install_secs)
        self.installed = False
        self.current = None
        self.persistent = None
        self.maintenance = True
        self.role = "worker"
        self.hostname = stable_hostname(system_uuid or name)
        self.cert_sans = []
        self.stage = mm.UNKNOWN
        self.ready = False
        self.powered = False
        self.os_up = False
        self.applied_at: float | None = None
        #: [{device_name, size, model, bus_path, ssd}] of the VM's disks (the provisioner fills it in)
        self.disks: list[dict] = []

    # -- first apply ---------------------------------------------------------------------------
    async def apply(self, data: bytes, mode: int, dry_run: bool, try_timeout: float | None):
        separate = self.maintenance and cfg.version_tuple(self.version)[:2] < (1, 13)
        if self.maintenance:
            if separate and mode in (mm.NO_REBOOT, mm.STAGED):
                # internal/app/maintenance/server.go (up to 1.12)
                name = "no-reboot" if mode == mm.NO_REBOOT else "staged"
                raise TalosApiError(Status.UNIMPLEMENTED, "apply configuration --mode='{0}' is not supported in "
                                    "maintenance mode".format(name))
            try:
                docs = cfg.parse(data)
            except cfg.ConfigError as exc:
                raise TalosApiError(Status.INVALID_ARGUMENT, str(exc)) from None
            errors = validate(docs, self.installed)
            if errors:
                raise TalosApiError(Status.INVALID_ARGUMENT, "configuration validation failed: {0} error{1} "
                                    "occurred:\n{2}\n".format(len(errors), "" if len(errors) == 1 else "s",
                                                               "\n".join("\t* " + e for e in errors)))
        if separate:
            # The maintenance service of <= 1.12 answers with the warnings only (no mode, no details) and hands
            # the config to machined, which boots on with it.
            if dry_run:
                return 0, "Dry run summary:\nNode is running in maintenance mode and does not have a config yet.", []
            await super().apply(data, mm.NO_REBOOT, False, None)
            return 0, "", []
        return await super().apply(data, mode, dry_run, try_timeout)

    def _leave_maintenance(self) -> None:
        """The config arrived: take the role; install first when booted from the ISO/template."""
        docs = self.docs()
        self.role = "controlplane" if cfg.machine_type(docs) in ("controlplane", "init") else "worker"
        if self.role == "controlplane" and self.etcd is None:
            self.etcd = self.etcd_cluster
            self.etcd.attach(self)
        self.applied_at = self.clock.now()
        if self.installed:
            super()._leave_maintenance()
            return
        # The maintenance service stops, the installer runs, then the machine reboots into the disk.
        self.maintenance = False
        self.stage = mm.INSTALLING
        self.os_up = False
        self.ready = False
        self._adopt(docs)
        self._changed()
        self._later(self.install_secs, self._installed)

    def _installed(self) -> None:
        self.installed = True
        self.stage = mm.REBOOTING
        self.reboots.append("install")
        self._changed()
        self._later(self.timings.reboot_downtime, self._boot)

    def _boot(self) -> None:
        if not self.installed:
            # Booting the ISO/template again: an applied config lived in memory only (no STATE yet).
            self.persistent = None
        super()._boot()

    def _adopt(self, docs: list[dict]) -> None:
        super()._adopt(docs)
        if not cfg.hostname(docs):
            self.hostname = stable_hostname(self.system_uuid or self.name)


def _token_of(m) -> str | None:
    if not m.current:
        return None
    v1 = cfg.v1alpha1(m.docs()) or {}
    return (v1.get("machine") or {}).get("token")


def _key_type(key) -> str:
    return "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "ecdsa"


class ConfigPkiEndpoint(NodeEndpoint):
    """apid of a provisioned node: maintenance (self-signed, no client cert) or the config's OS CA (mTLS)."""

    def _signer(self) -> TalosPKI | None:
        """The CA (with key) that signs this node's apid certificate: its own (control plane) or, through
        trustd, a running control plane's with the same CA and machine token (worker)."""
        m = self.machine
        crt, key = config_ca(m.docs()) if m.current else (None, None)
        if crt is None:
            return None
        if key is None:
            for other in self.twin.machines.values():
                if other is m or other.role != "controlplane" or not other.reachable or other.stage != mm.RUNNING \
                        or not other.current:
                    continue
                ocrt, okey = config_ca(other.docs())
                if ocrt == crt and okey is not None and _token_of(other) == _token_of(m):
                    key = okey
                    break
            if key is None:
                return None
        try:
            ca_key = load_key(key)
            ca_cert = x509.load_pem_x509_certificate(crt)
        except ValueError:
            return None
        return TalosPKI(ca=CertKey(ca_cert, ca_key), key_type=_key_type(ca_key))

    def _load_cert(self) -> None:
        m = self.machine
        if m.maintenance:
            super()._load_cert()
            return
        signer = self._signer()
        crt, _ = config_ca(m.docs())
        trusted = [crt, *accepted_cas(m.docs())]
        key = (m.hostname, tuple([m.address, *m.cert_sans]), False, hashlib.sha256(b"".join(trusted)).hexdigest())
        if key == self._cert_key and self.ssl is not None:
            return
        ck = signer.server_cert(m.hostname, [m.address], list(m.cert_sans))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata="".join(p.decode() for p in trusted))
        ctx.set_alpn_protocols(["h2"])
        ck.load_into(ctx)
        self.ssl = ctx
        self._cert_key = key
        self.cert = ck

    # -- storage.StorageService/Disks (maintenance: any caller; configured: os:reader and up) ------------
    def __mapping__(self):
        from google.protobuf import empty_pb2
        from grpclib.const import Cardinality, Handler
        mapping = super().__mapping__()
        mapping["/storage.StorageService/Disks"] = Handler(self._disks, Cardinality.UNARY_UNARY, empty_pb2.Empty,
                                                           _storage_pb2().DisksResponse)
        return mapping

    async def _disks(self, stream):
        from grpclib.exceptions import GRPCError
        m = self.machine
        if not m.maintenance and not roles_of(stream.peer.cert()) & READ:
            raise GRPCError(Status.PERMISSION_DENIED, "not authorized")
        await stream.recv_message()
        counts = getattr(self.twin.api, "counts", None)
        if counts is not None:
            counts["Disks"] += 1
        spb = _storage_pb2()
        install = ""
        if m.current:
            v1 = cfg.v1alpha1(m.docs()) or {}
            install = str(((v1.get("machine") or {}).get("install") or {}).get("disk") or "")
        reply = spb.Disks()
        for d in getattr(m, "disks", []) or []:
            reply.disks.add(size=int(d["size"]), model=d.get("model", ""), device_name=d["device_name"],
                            name=d.get("name", ""), serial=d.get("serial", ""), modalias=d.get("modalias", ""),
                            type=spb.Disk.SSD if d.get("ssd") else spb.Disk.HDD, bus_path=d.get("bus_path", ""),
                            system_disk=bool(getattr(m, "installed", False) and d["device_name"] == install),
                            subsystem=d.get("subsystem", "/sys/class/block"))
        await stream.send_message(spb.DisksResponse(messages=[reply]))

    async def reconcile(self) -> None:
        m = self.machine
        if m.reachable and not m.maintenance and (not m.current or self._signer() is None):
            # apid waits for its certificate (a worker: until trustd on a control plane answers)
            async with self._lock:
                await self._close()
            return
        await super().reconcile()


def _storage_pb2():
    """The messages of proto/storage/storage.proto, built by the lab's own pb loader."""
    from .pb import storage_pb2
    return storage_pb2


def vm_disks(config: dict) -> list[dict]:
    """The block devices a Talos VM sees for its qemu-server config: scsiN/sataN -> sdX (QEMU HARDDISK),
    virtioN -> vdX; CD-ROMs and cloud-init drives are not disks."""
    import re
    out, sd, vd = [], 0, 0
    for key in sorted(config, key=lambda k: (not k.startswith("scsi"), not k.startswith("sata"), k)):
        m = re.fullmatch(r"(scsi|sata|virtio)(\d+)", key)
        if not m:
            continue
        value = str(config[key])
        if "media=cdrom" in value or "cloudinit" in value:
            continue
        size = 0
        for part in value.split(",")[1:]:
            k, _, v = part.partition("=")
            if k == "size":
                units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
                size = int(float(v[:-1]) * units[v[-1]]) if v and v[-1] in units else int(v or 0)
        bus, index = m.group(1), int(m.group(2))
        if bus == "virtio":
            name, vd = "/dev/vd" + chr(ord("a") + vd), vd + 1
            model, path = "", "/pci0000:00/0000:00:{0:02x}.0/virtio{1}".format(10 + index, index + 2)
        else:
            name, sd = "/dev/sd" + chr(ord("a") + sd), sd + 1
            model = "QEMU HARDDISK"
            path = "/pci0000:00/0000:00:05.0/virtio1/host2/target2:0:{0}/2:0:{0}:0".format(index)
        out.append({"device_name": name, "size": size, "model": model, "bus_path": path,
                    "ssd": "ssd=1" in value, "modalias": "scsi:t-0x00" if bus != "virtio" else "virtio:d00000002v00001AF4"})
    return out


# ------------------------------------------------------------------------------- Kubeconfig
def _ca_from(crt: bytes, key: bytes):
    return x509.load_pem_x509_certificate(crt), load_key(key)


def admin_kubeconfig(docs: list[dict], now: float | None = None) -> bytes:
    """The admin kubeconfig Talos generates from a control plane's config (pkg/kubeconfig/generate.go)."""
    v1 = cfg.v1alpha1(docs) or {}
    cluster = v1.get("cluster") or {}
    crt, key = config_ca(docs, "cluster")
    if crt is None or key is None:
        raise TalosApiError(Status.FAILED_PRECONDITION, "failed to generate kubeconfig: kubernetes CA is not available")
    ca_cert, ca_key = _ca_from(crt, key)
    name = str(cluster.get("clusterName") or "talos")
    endpoint = str((cluster.get("controlPlane") or {}).get("endpoint") or "")
    client_key = ec.generate_private_key(ec.SECP256R1())
    when = _dt.datetime.fromtimestamp(now if now is not None else time.time(), _dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .issuer_name(ca_cert.subject).public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when - _dt.timedelta(minutes=5)).not_valid_after(when + _dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    cas = crt + b"".join(accepted_cas(docs, "cluster"))
    user = "admin@{0}".format(name)
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": endpoint,
                                                "certificate-authority-data": base64.b64encode(cas).decode()}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            "client-key-data": base64.b64encode(client_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption())).decode()}}],
        "contexts": [{"name": user, "context": {"cluster": name, "namespace": "default", "user": user}}],
        "current-context": user,
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def unterminated_targz(name: str, data: bytes, mode: int = 0o600, mtime: float | None = None) -> bytes:
    """A gzip'd tar of one entry as Talos streams it: the header and the bytes, no padding, no end marker."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(mtime if mtime is not None else time.time())
    raw = info.tobuf(format=tarfile.USTAR_FORMAT) + data
    return gzip.compress(raw)


async def kubeconfig_stream(m, twin):
    """The Kubeconfig RPC: yields the one common.Data message (a TalosApiError when refused)."""
    from .pb import common_pb2

    if m.maintenance:
        raise TalosApiError(Status.UNIMPLEMENTED, "API is not implemented in maintenance mode")
    if m.role != "controlplane":
        raise TalosApiError(Status.UNIMPLEMENTED, "kubeconfig is only available on control plane nodes")
    docs = m.docs()
    crt, key = config_ca(docs, "cluster")
    if crt is not None and key is not None:
        text = admin_kubeconfig(docs, twin.clock.now())
    else:
        fallback = getattr(twin, "kubeconfig_fallback", None)
        if fallback is None:
            raise TalosApiError(Status.FAILED_PRECONDITION,
                                "failed to generate kubeconfig: kubernetes CA is not available")
        text = fallback()
    yield common_pb2.Data(bytes=unterminated_targz("kubeconfig", text, mtime=twin.clock.now()))


def read_unterminated_targz(blob: bytes) -> bytes:
    """The first member of such an archive (tarfile's next()/extractfile() cope; getmembers() does not)."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = tar.next()
        return tar.extractfile(member).read()
