# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Native Talos API client: grpclib over the standard ssl module (OpenSSL does Ed25519; grpcio's
BoringSSL cannot), messages from ``pb/`` (generated from ``proto/``).

* ``node`` metadata: one-to-one pass-through through the endpoint (every service);
  ``nodes``: one-to-many (MachineService), where a node's failure is a *successful* reply whose
  ``messages[i].metadata.error``/``status`` is set: :func:`check_messages` turns it into
  :class:`TalosNodeError` naming the node.
* Connect failures fail over to the next endpoint; idempotent reads are retried (bounded) on
  unavailability; every call has a deadline.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import math
import socket
import ssl
import traceback

from ansible_collections.tazlab.resilience.plugins.module_utils.retry import (
    RetryPolicy, WaitTimeout, backoff_delay, wait_until_async)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosError, TalosNodeError, TalosPermissionDenied, TalosTimeout,
    TalosTLSError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import (
    common_pb2, config_pb2, machine_pb2, resource_pb2, runtime_pb2)

try:
    from grpclib.client import Channel
    from grpclib.const import Cardinality, Status
    from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
except ImportError:
    HAS_GRPCLIB = False
    GRPCLIB_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_GRPCLIB = True
    GRPCLIB_IMPORT_ERROR = None

try:
    from google.protobuf import duration_pb2, empty_pb2
except ImportError:
    HAS_PROTOBUF = False
    PROTOBUF_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PROTOBUF = machine_pb2.HAS_PROTOBUF
    PROTOBUF_IMPORT_ERROR = None

MACHINE = "/machine.MachineService/"
STATE = "/cosi.resource.State/"
CONFIG_NS, CONFIG_TYPE = "config", "MachineConfigs.config.talos.dev"
STATUS_NS, STATUS_TYPE, STATUS_ID = "runtime", "MachineStatuses.runtime.talos.dev", "machine"

APPLY_MODES = {"reboot": 0, "auto": 1, "no_reboot": 2, "staged": 3, "try": 4}
APPLY_MODE_NAMES = dict((v, k) for k, v in APPLY_MODES.items())
STAGES = {0: "unknown", 1: "booting", 2: "installing", 3: "maintenance", 4: "running", 5: "rebooting",
          6: "shutting_down", 7: "resetting", 8: "upgrading"}
RECOVER_CHUNK = 4096   # talosctl's chunk size for EtcdRecover

_CONNECT_ERRNOS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT,
                   errno.EADDRNOTAVAIL, errno.ECONNABORTED)


def check_messages(reply, default_node=None):
    """Raise :class:`TalosNodeError` for the first ``messages[i]`` whose metadata carries an error."""
    for msg in reply.messages:
        md = msg.metadata
        if md.error or md.status.code:
            node = md.hostname or default_node
            code = md.status.code or None
            status = Status(code).name if (HAS_GRPCLIB and code) else None
            raise TalosNodeError("node %s: %s" % (node, md.error or md.status.message),
                                 code=code, status=status, node=node)
    return reply


def per_node(reply):
    """``{node: message or TalosNodeError}`` for a one-to-many reply."""
    out = {}
    for msg in reply.messages:
        try:
            check_messages(type(reply)(messages=[msg]))
            out[msg.metadata.hostname] = msg
        except TalosNodeError as exc:
            out[exc.node] = exc
    return out


# The role a call needs (talos.md "Roles"; machined.go rules, resource AccessPolicy).
OPERATOR_RPCS = ("Reboot", "Shutdown")
READER_RPCS = ("Version", "Hostname", "ServiceList", "EtcdMemberList", "EtcdStatus")


def needed_role(path):
    """What to use instead, for the message of a PermissionDenied."""
    rpc = path.rsplit("/", 1)[-1]
    if path.startswith("/cosi.resource.State/"):
        return ("use a talosconfig with os:admin: the MachineConfig resource is Sensitive and only os:admin may read "
                "it (other resources: os:reader is enough)")
    if rpc in OPERATOR_RPCS:
        return "use a talosconfig with os:admin or os:operator"
    if rpc == "EtcdSnapshot":
        return "use a talosconfig with os:admin, os:operator or os:etcd:backup"
    if rpc in READER_RPCS:
        return "use a talosconfig with os:reader or higher"
    return "%s needs os:admin: use a talosconfig with os:admin" % rpc


def _routing(node=None, nodes=None):
    if node and nodes:
        raise TalosError("give node or nodes, not both")
    if node:
        return [("node", str(node))]
    return [("nodes", str(n)) for n in (nodes or [])]


class TalosClient(object):
    """One client per task; use as ``async with TalosClient(auth) as c: ...``."""

    def __init__(self, auth, timeout=30.0, connect_timeout=10.0, retries=3, retry_delay=1.0):
        if not HAS_GRPCLIB:
            raise TalosError("grpclib is required for the Talos API: %s" % GRPCLIB_IMPORT_ERROR)
        if not HAS_PROTOBUF:
            raise TalosError("protobuf is required for the Talos API: %s" % PROTOBUF_IMPORT_ERROR)
        self.auth = auth
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retries = max(0, int(retries))
        self.retry_delay = float(retry_delay)
        self._ssl = auth.ssl_context()
        self._channels = {}

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    def close(self):
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def _channel(self, host, port):
        key = (host, port)
        if key not in self._channels:
            self._channels[key] = Channel(host, port, ssl=self._ssl)
        return self._channels[key]

    def _drop_channel(self, host, port):
        ch = self._channels.pop((host, port), None)
        if ch is not None:
            ch.close()

    def _endpoints(self, endpoint):
        if endpoint is None:
            return list(self.auth.endpoints)
        from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import split_endpoint
        return [split_endpoint(endpoint)]

    # -- error translation -----------------------------------------------------------------------
    def _translate(self, exc, host, port, path, node, sent):
        where = "%s:%s" % (host, port)
        target = node or host
        rpc = path.rsplit("/", 1)[-1]
        if isinstance(exc, GRPCError):
            name = exc.status.name
            if exc.status == Status.PERMISSION_DENIED:
                return TalosPermissionDenied(
                    "%s on %s: permission denied (%s): the client certificate's role (its Organization, e.g. "
                    "os:reader) does not allow this call; %s"
                    % (rpc, target, exc.message, needed_role(path)), code=exc.status.value, status=name,
                    node=target, rpc=path)
            return TalosApiError("%s on %s failed: %s: %s" % (rpc, target, name, exc.message),
                                 code=exc.status.value, status=name, node=target, rpc=path)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TalosTLSError("TLS verification of Talos endpoint %s failed: %s (wrong CA in the talosconfig, "
                                 "or the server certificate does not cover this address)"
                                 % (where, exc.verify_message or exc))
        if isinstance(exc, ssl.SSLError):
            return TalosTLSError("TLS handshake with Talos endpoint %s failed: %s (client certificate refused?)"
                                 % (where, exc))
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            if not sent:
                return TalosUnreachable("Talos endpoint %s did not answer within %ss" % (where, self.connect_timeout))
            return TalosTimeout("%s on %s timed out after %ss" % (rpc, target, self.timeout))
        if isinstance(exc, (StreamTerminatedError, ProtocolError, ConnectionResetError, BrokenPipeError,
                            asyncio.IncompleteReadError, EOFError)) or (sent and isinstance(exc, OSError)):
            return TalosDisconnected("connection to Talos endpoint %s was lost during %s for %s (node rebooting "
                                     "or going down?): %s" % (where, rpc, target, exc or type(exc).__name__))
        if isinstance(exc, (ConnectionError, socket.gaierror)) or (isinstance(exc, OSError)
                                                                   and exc.errno in _CONNECT_ERRNOS):
            return TalosUnreachable("Talos endpoint %s is unreachable: %s" % (where, exc.strerror or exc))
        return None

    # -- calls -----------------------------------------------------------------------------------
    async def _attempts(self, path, body, node, nodes, endpoint, idempotent, timeout, retries=None):
        """Run ``body(stream)`` with failover across endpoints and bounded retries."""
        metadata = _routing(node, nodes)
        timeout = self.timeout if timeout is None else float(timeout)
        retries = self.retries if retries is None else max(0, int(retries))
        # retry_delay, doubling per round, no cap, no jitter (a round already tries every endpoint)
        policy = RetryPolicy(attempts=retries + 1, base_delay=self.retry_delay, factor=2.0, max_delay=math.inf,
                             jitter=0)
        last = None
        for attempt in range(retries + 1):
            for host, port in self._endpoints(endpoint):
                sent = False
                try:
                    channel = self._channel(host, port)
                    await asyncio.wait_for(channel.__connect__(), self.connect_timeout)
                    sent = True
                    return await asyncio.wait_for(body(channel, metadata, timeout), timeout)
                except TalosError:
                    raise
                except (GRPCError, OSError, ssl.SSLError, asyncio.TimeoutError, TimeoutError, StreamTerminatedError,
                        ProtocolError, EOFError) as exc:
                    err = self._translate(exc, host, port, path, node, sent)
                    if err is None:
                        raise
                    if not isinstance(err, TalosApiError):
                        self._drop_channel(host, port)
                    if isinstance(err, TalosTLSError):
                        raise err from None
                    if last is None or not isinstance(last, TalosApiError) or isinstance(err, TalosApiError):
                        last = err   # an answer from the API says more than an unreachable fallback
                    retryable = isinstance(err, TalosUnreachable) or (
                        idempotent and (isinstance(err, (TalosDisconnected, TalosTimeout))
                                        or (isinstance(err, TalosApiError) and err.status == "UNAVAILABLE")))
                    if not retryable:
                        raise err from None
            if attempt < retries:
                await asyncio.sleep(backoff_delay(attempt + 1, policy))
        raise last

    async def unary(self, path, request, reply_type, node=None, nodes=None, endpoint=None, idempotent=False,
                    timeout=None, check=True, retries=None):
        async def body(channel, metadata, t):
            async with channel.request(path, Cardinality.UNARY_UNARY, type(request), reply_type,
                                       metadata=metadata, timeout=t) as stream:
                await stream.send_message(request, end=True)
                reply = await stream.recv_message()
                await stream.recv_trailing_metadata()
                return reply
        reply = await self._attempts(path, body, node, nodes, endpoint, idempotent, timeout, retries)
        if check and hasattr(reply, "messages"):
            check_messages(reply, node)
        return reply

    async def server_stream(self, path, request, reply_type, node=None, endpoint=None, idempotent=False,
                            timeout=None, on_message=None):
        async def body(channel, metadata, t):
            out = []
            async with channel.request(path, Cardinality.UNARY_STREAM, type(request), reply_type,
                                       metadata=metadata, timeout=t) as stream:
                await stream.send_message(request, end=True)
                async for msg in stream:
                    if on_message is not None:
                        on_message(msg)
                    else:
                        out.append(msg)
            return out
        return await self._attempts(path, body, node, None, endpoint, idempotent, timeout)

    async def client_stream(self, path, requests, request_type, reply_type, node=None, endpoint=None, timeout=None):
        requests = list(requests)

        async def body(channel, metadata, t):
            async with channel.request(path, Cardinality.STREAM_UNARY, request_type, reply_type,
                                       metadata=metadata, timeout=t) as stream:
                for i, msg in enumerate(requests):
                    await stream.send_message(msg, end=(i == len(requests) - 1))
                if not requests:
                    await stream.end()
                reply = await stream.recv_message()
                await stream.recv_trailing_metadata()
                return reply
        reply = await self._attempts(path, body, node, None, endpoint, False, timeout)
        check_messages(reply, node)
        return reply

    # -- MachineService --------------------------------------------------------------------------
    async def version(self, node=None, nodes=None, endpoint=None, retries=None):
        reply = await self.unary(MACHINE + "Version", empty_pb2.Empty(), machine_pb2.VersionResponse,
                                 node=node, nodes=nodes, endpoint=endpoint, idempotent=True, retries=retries)
        return reply

    async def hostname(self, node=None, endpoint=None):
        reply = await self.unary(MACHINE + "Hostname", empty_pb2.Empty(), machine_pb2.HostnameResponse,
                                 node=node, endpoint=endpoint, idempotent=True)
        return reply.messages[0].hostname

    async def service_list(self, node=None, endpoint=None):
        reply = await self.unary(MACHINE + "ServiceList", empty_pb2.Empty(), machine_pb2.ServiceListResponse,
                                 node=node, endpoint=endpoint, idempotent=True)
        return [dict(id=s.id, state=s.state, healthy=s.health.healthy, unknown=s.health.unknown)
                for s in reply.messages[0].services]

    async def apply_configuration(self, data, mode="auto", dry_run=False, try_timeout=None, node=None, endpoint=None):
        if mode not in APPLY_MODES:
            raise TalosError("unknown apply mode %r (one of %s)" % (mode, ", ".join(sorted(APPLY_MODES))))
        req = machine_pb2.ApplyConfigurationRequest(
            data=data if isinstance(data, bytes) else data.encode("utf-8"), mode=APPLY_MODES[mode], dry_run=dry_run)
        if try_timeout:
            req.try_mode_timeout.CopyFrom(duration_pb2.Duration(seconds=int(try_timeout)))
        reply = await self.unary(MACHINE + "ApplyConfiguration", req, machine_pb2.ApplyConfigurationResponse,
                                 node=node, endpoint=endpoint)
        msg = reply.messages[0]
        return dict(mode=APPLY_MODE_NAMES.get(msg.mode, str(msg.mode)), mode_details=msg.mode_details,
                    warnings=list(msg.warnings))

    async def reboot(self, node=None, endpoint=None, mode="default"):
        modes = {"default": 0, "powercycle": 1, "force": 2}
        reply = await self.unary(MACHINE + "Reboot", machine_pb2.RebootRequest(mode=modes[mode]),
                                 machine_pb2.RebootResponse, node=node, endpoint=endpoint)
        return reply.messages[0].actor_id

    async def shutdown(self, node=None, endpoint=None, force=False):
        reply = await self.unary(MACHINE + "Shutdown", machine_pb2.ShutdownRequest(force=force),
                                 machine_pb2.ShutdownResponse, node=node, endpoint=endpoint)
        return reply.messages[0].actor_id

    async def reset(self, node=None, endpoint=None, graceful=True, reboot=False, wipe_partitions=None):
        req = machine_pb2.ResetRequest(graceful=graceful, reboot=reboot)
        for label in wipe_partitions or []:
            req.system_partitions_to_wipe.add(label=label, wipe=True)
        reply = await self.unary(MACHINE + "Reset", req, machine_pb2.ResetResponse, node=node, endpoint=endpoint)
        return reply.messages[0].actor_id

    async def bootstrap(self, node=None, endpoint=None, recover_etcd=False, recover_skip_hash_check=False):
        await self.unary(MACHINE + "Bootstrap", machine_pb2.BootstrapRequest(
            recover_etcd=recover_etcd, recover_skip_hash_check=recover_skip_hash_check),
            machine_pb2.BootstrapResponse, node=node, endpoint=endpoint)

    async def etcd_member_list(self, node=None, endpoint=None, query_local=False):
        reply = await self.unary(MACHINE + "EtcdMemberList", machine_pb2.EtcdMemberListRequest(query_local=query_local),
                                 machine_pb2.EtcdMemberListResponse, node=node, endpoint=endpoint, idempotent=True)
        return [dict(id=m.id, hostname=m.hostname, peer_urls=list(m.peer_urls), client_urls=list(m.client_urls),
                     is_learner=m.is_learner) for m in reply.messages[0].members]

    async def etcd_remove_member(self, member_id, node=None, endpoint=None):
        await self.unary(MACHINE + "EtcdRemoveMemberByID", machine_pb2.EtcdRemoveMemberByIDRequest(
            member_id=int(member_id)), machine_pb2.EtcdRemoveMemberByIDResponse, node=node, endpoint=endpoint)

    async def etcd_leave_cluster(self, node=None, endpoint=None):
        await self.unary(MACHINE + "EtcdLeaveCluster", machine_pb2.EtcdLeaveClusterRequest(),
                         machine_pb2.EtcdLeaveClusterResponse, node=node, endpoint=endpoint)

    async def etcd_status(self, node=None, endpoint=None, retries=None):
        reply = await self.unary(MACHINE + "EtcdStatus", empty_pb2.Empty(), machine_pb2.EtcdStatusResponse,
                                 node=node, endpoint=endpoint, idempotent=True, retries=retries)
        st = reply.messages[0].member_status
        return dict(member_id=st.member_id, leader=st.leader, db_size=st.db_size, db_size_in_use=st.db_size_in_use,
                    raft_index=st.raft_index, raft_term=st.raft_term, raft_applied_index=st.raft_applied_index,
                    is_learner=st.is_learner, errors=list(st.errors), protocol_version=st.protocol_version,
                    storage_version=st.storage_version)

    async def etcd_snapshot(self, write, node=None, endpoint=None, timeout=None):
        """Stream the snapshot into ``write(bytes)``; returns (size, sha256 hex)."""
        digest, size = hashlib.sha256(), [0]

        def on_message(msg):
            digest.update(msg.bytes)
            size[0] += len(msg.bytes)
            write(msg.bytes)
        await self.server_stream(MACHINE + "EtcdSnapshot", machine_pb2.EtcdSnapshotRequest(), common_pb2.Data,
                                 node=node, endpoint=endpoint, timeout=timeout, on_message=on_message)
        return size[0], digest.hexdigest()

    async def etcd_recover(self, data, node=None, endpoint=None, chunk_size=RECOVER_CHUNK, timeout=None):
        chunks = [common_pb2.Data(bytes=data[i:i + chunk_size]) for i in range(0, len(data), chunk_size)]
        await self.client_stream(MACHINE + "EtcdRecover", chunks, common_pb2.Data, machine_pb2.EtcdRecoverResponse,
                                 node=node, endpoint=endpoint, timeout=timeout)

    # -- cosi.resource.State ---------------------------------------------------------------------
    async def get_resource(self, namespace, rtype, rid, node=None, endpoint=None, retries=None):
        reply = await self.unary(STATE + "Get", resource_pb2.GetRequest(namespace=namespace, type=rtype, id=rid),
                                 resource_pb2.GetResponse, node=node, endpoint=endpoint, idempotent=True,
                                 retries=retries)
        return reply.resource

    async def list_resources(self, namespace, rtype, node=None, endpoint=None):
        replies = await self.server_stream(STATE + "List", resource_pb2.ListRequest(namespace=namespace, type=rtype),
                                           resource_pb2.ListResponse, node=node, endpoint=endpoint, idempotent=True)
        return [r.resource for r in replies]

    async def machine_config(self, node=None, endpoint=None, rid="v1alpha1"):
        """The exact multi-document YAML of the current (or ``persistent``) machine config."""
        res = await self.get_resource(CONFIG_NS, CONFIG_TYPE, rid, node=node, endpoint=endpoint)
        return config_pb2.MachineConfigSpec.FromString(res.spec.proto_spec).yaml_marshalled

    async def machine_status(self, node=None, endpoint=None, retries=None):
        res = await self.get_resource(STATUS_NS, STATUS_TYPE, STATUS_ID, node=node, endpoint=endpoint, retries=retries)
        spec = runtime_pb2.MachineStatusSpec.FromString(res.spec.proto_spec)
        return dict(stage=STAGES.get(spec.stage, str(spec.stage)), ready=spec.status.ready,
                    unmet_conditions=[dict(name=c.name, reason=c.reason) for c in spec.status.unmet_conditions])

    async def wait_ready(self, node=None, endpoint=None, timeout=600.0, poll=2.0, tolerate_tls=False):
        """Poll MachineStatus until RUNNING and ready; unreachable/disconnected meanwhile is expected.

        ``tolerate_tls``: a node leaving maintenance mode still shows its self-signed certificate for a
        moment, so TLS failures are retried until the deadline (and reported if they last).
        """
        def not_yet(exc):
            if isinstance(exc, (TalosUnreachable, TalosDisconnected, TalosTimeout)):
                return True
            if isinstance(exc, TalosTLSError):
                return tolerate_tls
            return isinstance(exc, TalosApiError) and exc.status in ("UNAVAILABLE", "DEADLINE_EXCEEDED")

        try:
            return await wait_until_async(
                lambda: self.machine_status(node=node, endpoint=endpoint, retries=0),  # the wait retries
                lambda status: status["stage"] == "running" and status["ready"], float(timeout), interval=poll,
                is_transient=not_yet, what="RUNNING and ready")
        except WaitTimeout as exc:
            last = str(exc.last_error) if exc.last_error is not None else \
                "stage %s, ready %s" % (exc.last["stage"], exc.last["ready"])
            raise TalosTimeout("node %s not RUNNING and ready after %ss (last: %s)"
                               % (node or endpoint or self.auth.endpoints[0][0], timeout, last)) from None


def run(auth, fn, **kwargs):
    """Synchronous entry point for modules: ``run(auth, lambda c: c.version())``."""
    async def main():
        async with TalosClient(auth, **kwargs) as client:
            return await fn(client)
    return asyncio.run(main())
