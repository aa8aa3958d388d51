"""Transport of the Talos twin: one grpclib server per node, mutual TLS, apid's routing and roles.

The machine model (machine.py) knows nothing of gRPC; this module maps the wire contract onto it:
MachineService and cosi.resource.State, `node` (one-to-one pass-through, all services) and `nodes`
(one-to-many, MachineService unary calls, per-node failures in messages[i].metadata.error/status).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from . import machine as mm
from . import volumes as vol
from .machine import TalosApiError
from .pb import common_pb2, config_pb2, empty_pb2, machine_pb2 as mpb, resource_pb2, runtime_pb2, timestamp_pb2

log = logging.getLogger(__name__)

ADMIN = {"os:admin"}
OPERATOR = {"os:admin", "os:operator"}
READ = {"os:admin", "os:operator", "os:reader"}
SNAPSHOT = {"os:admin", "os:operator", "os:etcd:backup"}
UU, US, SU = Cardinality.UNARY_UNARY, Cardinality.UNARY_STREAM, Cardinality.STREAM_UNARY

MACHINE_RPCS = {
    "ApplyConfiguration": (UU, mpb.ApplyConfigurationRequest, mpb.ApplyConfigurationResponse, ADMIN),
    "Bootstrap": (UU, mpb.BootstrapRequest, mpb.BootstrapResponse, ADMIN),
    "EtcdMemberList": (UU, mpb.EtcdMemberListRequest, mpb.EtcdMemberListResponse, READ),
    "EtcdRemoveMemberByID": (UU, mpb.EtcdRemoveMemberByIDRequest, mpb.EtcdRemoveMemberByIDResponse, ADMIN),
    "EtcdLeaveCluster": (UU, mpb.EtcdLeaveClusterRequest, mpb.EtcdLeaveClusterResponse, ADMIN),
    "EtcdRecover": (SU, common_pb2.Data, mpb.EtcdRecoverResponse, ADMIN),
    "EtcdSnapshot": (US, mpb.EtcdSnapshotRequest, common_pb2.Data, SNAPSHOT),
    "EtcdStatus": (UU, empty_pb2.Empty, mpb.EtcdStatusResponse, READ),
    "Hostname": (UU, empty_pb2.Empty, mpb.HostnameResponse, READ),
    "Reboot": (UU, mpb.RebootRequest, mpb.RebootResponse, OPERATOR),
    "Reset": (UU, mpb.ResetRequest, mpb.ResetResponse, ADMIN),
    "ServiceList": (UU, empty_pb2.Empty, mpb.ServiceListResponse, READ),
    "Shutdown": (UU, mpb.ShutdownRequest, mpb.ShutdownResponse, OPERATOR),
    "Version": (UU, empty_pb2.Empty, mpb.VersionResponse, READ),
    "Kubeconfig": (US, empty_pb2.Empty, common_pb2.Data, ADMIN),   # control planes only (maintenance.py)
}

CONFIG_TYPE = "MachineConfigs.config.talos.dev"
STATUS_TYPE = "MachineStatuses.runtime.talos.dev"
SNAPSHOT_CHUNK = 32 * 1024
# What the maintenance service answers (no apid, no client certificate, no roles); the rest is Unimplemented.
MAINTENANCE_RPCS = {"ApplyConfiguration", "Version", "Reset", "StateGet", "StateList"}


def roles_of(cert: dict | None) -> set[str]:
    roles = set()
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "organizationName":
                roles.add(value)
    return roles


def _ts(t: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def _unavailable(target: str, port: int) -> TalosApiError:
    return TalosApiError(Status.UNAVAILABLE, 'connection error: desc = "transport: Error while dialing: '
                         f'dial tcp {target}:{port}: connect: connection refused"')


class MachineApi:
    """The RPC implementations against one machine (what machined does behind apid)."""

    def __init__(self, twin):
        self.twin = twin

    # ---- MachineService -------------------------------------------------------------------------
    async def ApplyConfiguration(self, m: mm.TalosMachine, req, ctx):
        timeout = None
        if req.HasField("try_mode_timeout"):
            timeout = req.try_mode_timeout.ToTimedelta().total_seconds() or None
        mode, details, warnings = await m.apply(req.data, int(req.mode), req.dry_run, timeout)
        return mpb.ApplyConfiguration(mode=mode, mode_details=details, warnings=warnings)

    async def Reboot(self, m, req, ctx):
        self._need_running(m)
        m.reboot(int(req.mode))
        return mpb.Reboot(actor_id=str(uuid.uuid4()))

    async def Shutdown(self, m, req, ctx):
        m.shutdown()
        return mpb.Shutdown(actor_id=str(uuid.uuid4()))

    async def Reset(self, m, req, ctx):
        labels = [p.label for p in req.system_partitions_to_wipe if p.wipe]
        wipe_all = not labels and req.mode in (mpb.ResetRequest.ALL, mpb.ResetRequest.SYSTEM_DISK)
        m.reset(req.graceful, req.reboot, labels, wipe_all)
        return mpb.Reset(actor_id=str(uuid.uuid4()))

    async def Version(self, m, req, ctx):
        return mpb.Version(
            version=mpb.VersionInfo(tag=m.version, sha="3ebd10a7c", built="", go_version="go1.25.5",
                                    os="linux", arch="amd64"),
            platform=mpb.PlatformInfo(name="nocloud", mode="cloud"),
            features=mpb.FeaturesInfo(rbac=True))

    async def Hostname(self, m, req, ctx):
        return mpb.Hostname(hostname=m.hostname)

    async def ServiceList(self, m, req, ctx):
        out = mpb.ServiceList()
        for s in m.services():
            info = out.services.add(id=s.id, state=s.state)
            info.health.unknown = s.healthy is None
            info.health.healthy = bool(s.healthy)
            info.health.last_message = s.message
            info.health.last_change.CopyFrom(_ts(self.twin.clock.now()))
        return out

    # ---- etcd ------------------------------------------------------------------------------------
    @staticmethod
    def _cp(m):
        if m.etcd is None:
            raise TalosApiError(Status.FAILED_PRECONDITION, "etcd is not available on worker nodes")
        return m.etcd

    @staticmethod
    def _need_running(m):
        if m.maintenance:
            raise TalosApiError(Status.UNIMPLEMENTED, "API is not implemented in maintenance mode")

    def _etcd_up(self, m):
        etcd = self._cp(m)
        if not m.etcd_running:
            raise TalosApiError(Status.UNAVAILABLE, "failed to create etcd client: etcd is not running on this node")
        return etcd

    def _quorum(self, m):
        etcd = self._etcd_up(m)
        if not etcd.has_quorum(m):
            raise TalosApiError(Status.UNAVAILABLE, "etcdserver: no leader: context deadline exceeded (no quorum)")
        return etcd

    async def Bootstrap(self, m, req, ctx):
        self._need_running(m)
        if m.etcd is None:   # machined's checkControlplane("bootstrap")
            raise TalosApiError(Status.UNIMPLEMENTED, "bootstrap is only available on control plane nodes")
        etcd = self._cp(m)
        if m.etcd_data:
            raise TalosApiError(Status.ALREADY_EXISTS, "etcd data directory is not empty")
        if m.stage != mm.RUNNING:
            raise TalosApiError(Status.FAILED_PRECONDITION, "bootstrap is not available yet")
        db = b""
        if req.recover_etcd:
            if m.etcd_upload is None:
                raise TalosApiError(Status.FAILED_PRECONDITION,
                                    "failed to recover etcd: no snapshot was uploaded (EtcdRecover)")
            db = mm.check_snapshot(m.etcd_upload, req.recover_skip_hash_check)
        etcd.bootstrap(m, db)
        return mpb.Bootstrap()

    async def EtcdMemberList(self, m, req, ctx):
        etcd = self._etcd_up(m) if req.query_local else self._quorum(m)
        out = mpb.EtcdMembers()
        for mem in sorted(etcd.members.values(), key=lambda x: x.hostname):
            out.members.add(id=mem.id, hostname=mem.hostname, peer_urls=mem.peer_urls,
                            client_urls=mem.client_urls, is_learner=mem.is_learner)
        return out

    async def EtcdRemoveMemberByID(self, m, req, ctx):
        etcd = self._quorum(m)
        if req.member_id not in etcd.members:
            raise TalosApiError(Status.NOT_FOUND, f"member with id {req.member_id:x} not found")
        voters = [x for x in etcd.members.values() if not x.is_learner]
        target = etcd.members[req.member_id]
        if not target.is_learner and len(voters) > 1:
            healthy_after = [x for x in etcd._healthy_from(m) if x.id != req.member_id]
            if len(healthy_after) <= (len(voters) - 1) // 2:
                raise TalosApiError(Status.FAILED_PRECONDITION,
                                    "etcdserver: re-configuration failed due to not enough started members")
        etcd.remove(req.member_id)
        return mpb.EtcdRemoveMemberByID()

    async def EtcdLeaveCluster(self, m, req, ctx):
        etcd = self._quorum(m)
        member = etcd.member_of(m)
        if member is None:
            raise TalosApiError(Status.FAILED_PRECONDITION, "this node is not an etcd member")
        etcd.remove(member.id)
        m.etcd_left = True
        m._changed()
        return mpb.EtcdLeaveCluster()

    async def EtcdStatus(self, m, req, ctx):
        etcd = self._etcd_up(m)
        member = etcd.member_of(m)
        st = mpb.EtcdMemberStatus(
            protocol_version="3.6.0", storage_version="3.6.0", db_size=len(etcd.db), db_size_in_use=len(etcd.db),
            leader=etcd.leader_id(m), raft_index=etcd.raft_index, raft_term=etcd.raft_term,
            raft_applied_index=etcd.raft_index, is_learner=bool(member and member.is_learner),
            member_id=member.id if member else 0)
        if not etcd.has_quorum(m):
            st.errors.append("etcdserver: no leader")
        return mpb.EtcdStatus(member_status=st)

    async def EtcdSnapshot(self, m, req, ctx):
        etcd = self._etcd_up(m)
        data = etcd.snapshot()
        for i in range(0, len(data), SNAPSHOT_CHUNK):
            yield common_pb2.Data(bytes=data[i:i + SNAPSHOT_CHUNK])

    async def Kubeconfig(self, m, req, ctx):
        from .maintenance import kubeconfig_stream
        async for msg in kubeconfig_stream(m, self.twin):
            yield msg

    async def EtcdRecover(self, m, chunks, ctx):
        self._cp(m)
        if m.etcd_data or m.stage != mm.RUNNING:
            raise TalosApiError(Status.FAILED_PRECONDITION,
                                "etcd service should be in Preparing state (waiting for bootstrap) to recover")
        buf = bytearray()
        async for chunk in chunks:
            buf += chunk.bytes
        m.etcd_upload = bytes(buf)
        return mpb.EtcdRecover()

    # ---- cosi.resource.State ---------------------------------------------------------------------
    def _resource(self, m: mm.TalosMachine, ns: str, typ: str, rid: str, roles: set[str]):
        if (ns, typ) == ("runtime", vol.VOLUME_STATUS_TYPE) and rid in m.volumes:
            spec, yaml_spec = vol.status_spec(m.volumes[rid])
            return self._wrap(ns, typ, rid, m.status_version, m.created, self.twin.clock.now(),
                              spec.SerializeToString(), yaml_spec)
        if (ns, typ) == ("config", CONFIG_TYPE):
            if "os:admin" not in roles:
                raise TalosApiError(Status.PERMISSION_DENIED, "not authorized")
            data = m.current if rid == "v1alpha1" else m.persistent if rid == "persistent" else None
            if data is None:
                raise TalosApiError(Status.NOT_FOUND, f"resource {typ}({ns}/{rid}@undefined) doesn't exist")
            spec = config_pb2.MachineConfigSpec(yaml_marshalled=data)
            return self._wrap(ns, typ, rid, m.config_version[rid], m.created, m.updated[rid],
                              spec.SerializeToString(), data.decode())
        if (ns, typ, rid) == ("runtime", STATUS_TYPE, "machine"):
            spec = runtime_pb2.MachineStatusSpec(stage=m.stage)
            spec.status.ready = m.ready
            unmet = []
            if not m.ready:
                unmet.append(("services", "stage is " + mm.STAGE_NAMES[m.stage]))
                spec.status.unmet_conditions.add(name=unmet[0][0], reason=unmet[0][1])
            yaml_spec = f"stage: {mm.STAGE_NAMES[m.stage]}\nstatus:\n    ready: {str(m.ready).lower()}\n"
            return self._wrap(ns, typ, rid, m.status_version, m.created, self.twin.clock.now(),
                              spec.SerializeToString(), yaml_spec)
        raise TalosApiError(Status.NOT_FOUND, f"resource {typ}({ns}/{rid}@undefined) doesn't exist")

    def _wrap(self, ns, typ, rid, version, created, updated, proto_spec, yaml_spec):
        md = resource_pb2.Metadata(namespace=ns, type=typ, id=rid, version=str(version), phase="running",
                                   created=_ts(created), updated=_ts(updated))
        return resource_pb2.Resource(metadata=md, spec=resource_pb2.Spec(proto_spec=proto_spec, yaml_spec=yaml_spec))

    async def StateGet(self, m, req, roles):
        return resource_pb2.GetResponse(resource=self._resource(m, req.namespace, req.type, req.id, roles))

    async def StateList(self, m, req, roles):
        ids = {("config", CONFIG_TYPE): ["persistent", "v1alpha1"], ("runtime", STATUS_TYPE): ["machine"],
               ("runtime", vol.VOLUME_STATUS_TYPE): vol.ids(m)}
        out = []
        for rid in ids.get((req.namespace, req.type), []):
            try:
                out.append(resource_pb2.ListResponse(resource=self._resource(m, req.namespace, req.type, rid, roles)))
            except TalosApiError as exc:
                if exc.status != Status.NOT_FOUND:
                    raise
        return out


class _TrackingServer(Server):
    """grpclib Server that can drop its open connections (a node going down drops them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transports: set = set()

    def _protocol_factory(self):
        proto = super()._protocol_factory()
        made, lost = proto.connection_made, proto.connection_lost

        def connection_made(transport):
            proto._tz_transport = transport
            self.transports.add(transport)
            made(transport)

        def connection_lost(exc):
            self.transports.discard(getattr(proto, "_tz_transport", None))
            lost(exc)
        proto.connection_made = connection_made
        proto.connection_lost = connection_lost
        return proto

    def abort_connections(self) -> None:
        for t in list(self.transports):
            t.abort()
        self.transports.clear()


class NodeEndpoint:
    """apid of one node: listens on the node's current address while the node is reachable."""

    def __init__(self, twin, machine: mm.TalosMachine):
        self.twin = twin
        self.machine = machine
        self.bound: str | None = None
        self.server: _TrackingServer | None = None
        self.ssl: ssl.SSLContext | None = None
        self._cert_key = None
        self._lock = asyncio.Lock()

    # grpclib service protocol
    def __mapping__(self):
        mapping = {}
        for name, (card, req_t, resp_t, _) in MACHINE_RPCS.items():
            if card is UU:
                fn = self._make_unary(name, resp_t)
            elif card is US:
                fn = self._make_server_stream(name)
            else:
                fn = self._make_client_stream(name, resp_t)
            mapping[f"/machine.MachineService/{name}"] = Handler(fn, card, req_t, resp_t)
        mapping["/cosi.resource.State/Get"] = Handler(self._state_get, UU, resource_pb2.GetRequest,
                                                      resource_pb2.GetResponse)
        mapping["/cosi.resource.State/List"] = Handler(self._state_list, US, resource_pb2.ListRequest,
                                                       resource_pb2.ListResponse)
        return mapping

    # -- routing ---------------------------------------------------------------------------------
    @staticmethod
    def _md(stream, key: str) -> list[str]:
        out = []
        for v in stream.metadata.getall(key, []) if stream.metadata else []:
            out.extend(x.strip() for x in str(v).split(",") if x.strip())
        return out

    def _authorize(self, stream, allowed: set[str], rpc: str = "") -> set[str]:
        if self.machine.maintenance:
            if rpc not in MAINTENANCE_RPCS:
                raise GRPCError(Status.UNIMPLEMENTED, "API is not implemented in maintenance mode")
            return {"os:admin"}   # maintenance mode has no RBAC (and no client certificate)
        roles = roles_of(stream.peer.cert())
        if not roles & allowed:
            raise GRPCError(Status.PERMISSION_DENIED, "not authorized")
        return roles

    def _target(self, name: str) -> mm.TalosMachine:
        """The machine a call is proxied to (apid dials it; it has to answer)."""
        m = self.twin.lookup(name)
        if m is None or not m.reachable or self.machine.partitioned:
            raise _unavailable(name, self.twin.port)
        if m.maintenance and m is not self.machine:   # no apid there: the proxy's mTLS handshake fails
            raise TalosApiError(Status.UNAVAILABLE, 'connection error: desc = "transport: authentication handshake '
                                f'failed: tls: failed to verify certificate" ({name} is in maintenance mode)')
        return m

    def _one(self, stream) -> mm.TalosMachine:
        if self.machine.maintenance:      # the maintenance service does not proxy
            return self.machine
        node = self._md(stream, "node")
        nodes = self._md(stream, "nodes")
        if len(nodes) > 1:
            raise TalosApiError(Status.INVALID_ARGUMENT, "one-to-many proxying is not supported for this call")
        target = (node or nodes or [None])[0]
        return self.machine if target is None else self._target(target)

    def _make_unary(self, name, resp_t):
        allowed = MACHINE_RPCS[name][3]

        async def handler(stream):
            roles = self._authorize(stream, allowed, name)
            req = await stream.recv_message()
            nodes = self._md(stream, "nodes")
            impl = getattr(self.twin.api, name)
            if nodes and not self._md(stream, "node") and not self.machine.maintenance:
                resp = resp_t()
                for target in nodes:
                    msg = resp.messages.add()
                    try:
                        msg.CopyFrom(await impl(self._target(target), req, roles))
                    except TalosApiError as exc:
                        msg.metadata.error = exc.message
                        msg.metadata.status.code = exc.status.value
                        msg.metadata.status.message = exc.message
                    msg.metadata.hostname = target
                await stream.send_message(resp)
                return
            try:
                msg = await impl(self._one(stream), req, roles)
            except TalosApiError as exc:
                raise GRPCError(exc.status, exc.message) from None
            await stream.send_message(resp_t(messages=[msg]))
        return handler

    def _make_server_stream(self, name):
        allowed = MACHINE_RPCS[name][3]

        async def handler(stream):
            roles = self._authorize(stream, allowed, name)
            req = await stream.recv_message()
            try:
                target = self._one(stream)
                async for msg in getattr(self.twin.api, name)(target, req, roles):
                    await stream.send_message(msg)
            except TalosApiError as exc:
                raise GRPCError(exc.status, exc.message) from None
        return handler

    def _make_client_stream(self, name, resp_t):
        allowed = MACHINE_RPCS[name][3]

        async def handler(stream):
            roles = self._authorize(stream, allowed, name)

            async def chunks():
                async for msg in stream:
                    yield msg
            try:
                msg = await getattr(self.twin.api, name)(self._one(stream), chunks(), roles)
            except TalosApiError as exc:
                raise GRPCError(exc.status, exc.message) from None
            await stream.send_message(resp_t(messages=[msg]))
        return handler

    def _state_target(self, stream) -> mm.TalosMachine:
        if self._md(stream, "nodes") and not self._md(stream, "node") and not self.machine.maintenance:
            raise TalosApiError(Status.INVALID_ARGUMENT,
                                "one-to-many proxying is not supported for cosi.resource.State, use the node metadata")
        return self._one(stream)

    async def _state_get(self, stream):
        roles = self._authorize(stream, READ, "StateGet")
        req = await stream.recv_message()
        try:
            resp = await self.twin.api.StateGet(self._state_target(stream), req, roles)
        except TalosApiError as exc:
            raise GRPCError(exc.status, exc.message) from None
        await stream.send_message(resp)

    async def _state_list(self, stream):
        roles = self._authorize(stream, READ, "StateList")
        req = await stream.recv_message()
        try:
            items = await self.twin.api.StateList(self._state_target(stream), req, roles)
        except TalosApiError as exc:
            raise GRPCError(exc.status, exc.message) from None
        for item in items:
            await stream.send_message(item)

    # -- listening -------------------------------------------------------------------------------
    def _load_cert(self) -> None:
        """mTLS with a cert of the OS CA; in maintenance mode a self-signed cert and no client cert."""
        m = self.machine
        key = (m.hostname, tuple([m.address, *m.cert_sans]), m.maintenance)
        if key == self._cert_key and self.ssl is not None:
            return
        if m.maintenance:
            from .pki import TalosPKI
            ck = TalosPKI(key_type=self.twin.pki.key_type).server_cert(m.hostname or m.name, [m.address])
        else:
            ck = self.twin.pki.server_cert(m.hostname, [m.address], list(m.cert_sans))
        if self.ssl is None or self._cert_key is None or self._cert_key[2] != m.maintenance:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            if m.maintenance:
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=self.twin.pki.ca_pem.decode())
            ctx.set_alpn_protocols(["h2"])
            self.ssl = ctx
        ck.load_into(self.ssl)
        self._cert_key = key
        self.cert = ck

    async def reconcile(self) -> None:
        async with self._lock:
            m = self.machine
            want = m.address if m.reachable else None
            if want != self.bound or (self._cert_key is not None and self._cert_key[2] != m.maintenance):
                await self._close()   # moved, down, or entering/leaving maintenance mode (another TLS setup)
            if want is not None:
                self._load_cert()
                if self.server is None:
                    server = _TrackingServer([self])
                    await server.start(want, self.twin.port, ssl=self.ssl, reuse_address=True)
                    self.server, self.bound = server, want
                    log.info("talos twin %s: apid on %s:%s", m.name, want, self.twin.port)

    async def _close(self) -> None:
        if self.server is not None:
            server, self.server, self.bound = self.server, None, None
            server.close()
            server.abort_connections()
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except (asyncio.TimeoutError, RuntimeError):  # pragma: no cover - defensive
                log.warning("talos twin %s: endpoint did not close in time", self.machine.name)

    async def stop(self) -> None:
        async with self._lock:
            await self._close()
