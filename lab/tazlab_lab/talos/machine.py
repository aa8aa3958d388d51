"""The per-node machine model of the Talos twin (no transport here).

A :class:`TalosMachine` keeps the config (current `v1alpha1` and on-disk `persistent`), the stage, the ready
flag, the address, the hostname and the services; an :class:`EtcdCluster` is shared by the control
planes. Everything that takes time is scheduled on the clock given to the constructor (an object with
``now()``, ``call_later(delay, fn)`` and ``async sleep(d)``, e.g. :class:`tazlab_lab.clock.SimClock`).

Power and reachability hooks for the world: :meth:`TalosMachine.power_off`, :meth:`TalosMachine.power_on`,
:meth:`TalosMachine.set_partitioned`. Listeners (:meth:`TalosMachine.subscribe`) are told about every change;
the transport uses that to move or close the node's endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from grpclib.const import Status

from . import config as cfg
from . import volumes as vol

log = logging.getLogger(__name__)

# Stages, numbered as talos.resource.definitions.enums.RuntimeMachineStage.
UNKNOWN, BOOTING, INSTALLING, MAINTENANCE, RUNNING, REBOOTING, SHUTTING_DOWN, RESETTING, UPGRADING = range(9)
STAGE_NAMES = {UNKNOWN: "unknown", BOOTING: "booting", INSTALLING: "installing", MAINTENANCE: "maintenance",
               RUNNING: "running", REBOOTING: "rebooting", SHUTTING_DOWN: "shutting down",
               RESETTING: "resetting", UPGRADING: "upgrading"}

# ApplyConfigurationRequest.Mode
REBOOT, AUTO, NO_REBOOT, STAGED, TRY = range(5)
# RebootRequest.Mode (FORCE from v1.12)
REBOOT_DEFAULT, REBOOT_POWERCYCLE, REBOOT_FORCE = range(3)


class TalosApiError(Exception):
    """An error the API returns as a gRPC status."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Timings:
    """Simulated seconds."""
    apply: float = 0.5            # an apply holds the node's config lock this long
    shutdown: float = 2.0         # from Reboot/Shutdown accepted until apid stops answering
    reboot_downtime: float = 3.0  # from going down until the next boot starts (apid answers again)
    boot: float = 5.0             # from boot start until RUNNING and ready
    power_on: float = 2.0         # from power on until boot start
    etcd_tick: float = 1.0        # how often members join / learners are promoted
    address_move: float = 0.2     # an immediate address change moves the endpoint after this


@dataclass
class Service:
    id: str
    state: str
    healthy: bool | None  # None = unknown
    message: str = ""


class TalosMachine:
    """One node as Talos sees it: config, stage, services, etcd membership, power and reachability hooks.

    Not the Kubernetes twin's ``KubeMachine`` (k8s/controllers/world.py); ``LabWorld`` couples the two."""

    def __init__(self, name: str, config: str | bytes, clock, *, etcd: "EtcdCluster | None" = None,
                 timings: Timings | None = None, version: str = "v1.13.9"):
        self.name = name
        self.clock = clock
        self.timings = timings or Timings()
        self.version = version
        data = config.encode() if isinstance(config, str) else bytes(config)
        docs = cfg.parse(data)
        if cfg.v1alpha1(docs) is None:
            raise ValueError("initial config needs a v1alpha1 document")
        self.current: bytes | None = data         # resource id v1alpha1
        self.persistent: bytes | None = data      # resource id persistent (on disk)
        self.config_version = {"v1alpha1": 1, "persistent": 1}
        self.created = clock.now()
        self.updated = {"v1alpha1": clock.now(), "persistent": clock.now()}
        self.role = cfg.machine_type(docs)
        self.hostname = cfg.hostname(docs) or name
        addrs = cfg.addresses(docs)
        if not addrs:
            raise ValueError(f"{name}: config has no static address")
        self.address = addrs[0]
        self.cert_sans = cfg.addresses(docs) + cfg.cert_sans(docs)
        self.stage = RUNNING
        self.ready = True
        self.status_version = 1
        self.powered = True
        self.partitioned = False
        self.os_up = True             # apid answers (between boot start and going down)
        self.maintenance = False
        self.etcd = etcd if self.role == "controlplane" else None
        self.etcd_data = False        # EPHEMERAL holds etcd data of cluster generation etcd_gen
        self.etcd_gen = 0
        self.etcd_left = False
        self.etcd_upload: bytes | None = None   # EtcdRecover upload waiting for Bootstrap(recover)
        self.apply_busy = False
        self.reboots: list[str] = []  # how each reboot went: graceful, powercycle, force
        self._try_timer = None
        self._pending: list = []      # timers of the current power/boot cycle
        self._boot_id = 0
        self._listeners: list[Callable[["TalosMachine"], None]] = []
        if self.etcd is not None:
            self.etcd.attach(self)
        self.volumes = vol.initial(self)   # STATE and EPHEMERAL as the first boot formatted them

    # -- observation ---------------------------------------------------------------------------
    def subscribe(self, fn: Callable[["TalosMachine"], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        self.status_version += 1
        for fn in list(self._listeners):
            try:
                fn(self)
            except Exception:  # pragma: no cover - a listener must not break the model
                log.exception("listener failed for %s", self.name)

    @property
    def reachable(self) -> bool:
        """apid answers on ``self.address``."""
        return self.powered and self.os_up and not self.partitioned

    @property
    def etcd_running(self) -> bool:
        return (self.etcd is not None and self.powered and self.os_up and self.stage == RUNNING
                and self.etcd_data and self.etcd_gen == self.etcd.gen)

    def docs(self, which: str = "v1alpha1") -> list[dict]:
        data = self.current if which == "v1alpha1" else self.persistent
        return cfg.parse(data) if data else []

    # -- hooks for the world -------------------------------------------------------------------
    def power_off(self) -> None:
        """Pull the plug: the endpoint stops answering at once."""
        self._cancel_pending()
        self.powered = False
        self.os_up = False
        self.ready = False
        self.stage = UNKNOWN
        self._changed()

    def power_on(self) -> None:
        """Press the button: boots after ``timings.power_on`` to RUNNING and ready."""
        if self.powered:
            return
        self.powered = True
        self._changed()
        self._later(self.timings.power_on, self._boot)

    def set_partitioned(self, partitioned: bool) -> None:
        self.partitioned = bool(partitioned)
        self._changed()

    # -- lifecycle -----------------------------------------------------------------------------
    def _later(self, delay: float, fn, *args) -> None:
        boot_id = self._boot_id

        def run():
            if boot_id == self._boot_id:
                fn(*args)
        self._pending.append(self.clock.call_later(delay, run))

    def _cancel_pending(self) -> None:
        self._boot_id += 1
        for t in self._pending:
            t.cancel()
        self._pending.clear()
        if self._try_timer is not None:
            self._try_timer.cancel()
            self._try_timer = None

    def reboot(self, mode: int = 0) -> None:
        """Accepted now, acted on asynchronously (on the clock).

        ``mode`` is RebootRequest.Mode. FORCE (2) exists from v1.12 and skips the cleanup and stop phases
        (down at once); an older node does not know the value and reboots gracefully, without an error."""
        force = mode == REBOOT_FORCE and cfg.version_tuple(self.version)[:2] >= (1, 12)
        self.reboots.append("force" if force else "powercycle" if mode == REBOOT_POWERCYCLE else "graceful")
        self._cancel_pending()
        self.stage = REBOOTING
        self.ready = False
        self._changed()
        self._later(0.0 if force else self.timings.shutdown, self._go_down, True)

    def shutdown(self) -> None:
        self._cancel_pending()
        self.stage = SHUTTING_DOWN
        self.ready = False
        self._changed()
        self._later(self.timings.shutdown, self._go_down, False)

    def reset(self, graceful: bool, reboot: bool, wipe_labels: list[str], wipe_all: bool) -> None:
        self._cancel_pending()
        if graceful and self.etcd is not None and self.etcd_running and self.etcd.has_quorum(self):
            member = self.etcd.member_of(self)
            if member is not None:
                self.etcd.remove(member.id)
        self.stage = RESETTING
        self.ready = False
        self._changed()

        def wipe():
            if wipe_all or "STATE" in wipe_labels:
                self.current = None
                self.persistent = None
            if wipe_all or "EPHEMERAL" in wipe_labels:
                self.etcd_data = False
                self.etcd_upload = None
                self.etcd_left = False
            vol.wipe(self, wipe_labels, wipe_all)
            self._go_down(reboot)
        self._later(self.timings.shutdown, wipe)

    def _go_down(self, boot_again: bool) -> None:
        self.os_up = False
        self.ready = False
        if not boot_again:
            self.powered = False
            self.stage = UNKNOWN
        self._changed()
        if boot_again:
            self._later(self.timings.reboot_downtime, self._boot)

    def _boot(self) -> None:
        if not self.powered:
            return
        if self._try_timer is not None:
            self._try_timer.cancel()
            self._try_timer = None
        self.current = self.persistent
        self.config_version["v1alpha1"] += 1
        self.updated["v1alpha1"] = self.clock.now()
        self.os_up = True
        self.ready = False
        if self.current is None:
            self.maintenance = True
            self.stage = MAINTENANCE
            self._changed()
            return
        self.maintenance = False
        self._adopt(self.docs())
        self.stage = BOOTING
        self._changed()
        if not vol.prepare(self):   # a volume that cannot be mounted (e.g. EPHEMERAL): the boot hangs
            return
        self._later(self.timings.boot, self._running)

    def _running(self) -> None:
        self.stage = RUNNING
        self.ready = True
        self._changed()
        if self.etcd is not None:
            self.etcd.tick()

    def _adopt(self, docs: list[dict]) -> None:
        """Take address, hostname and SANs from the current config."""
        old = self.address
        addrs = cfg.addresses(docs)
        if addrs:
            self.address = addrs[0]
        self.hostname = cfg.hostname(docs) or self.name
        self.cert_sans = addrs + cfg.cert_sans(docs)
        if self.etcd is not None and old != self.address:
            self.etcd.address_changed(self)

    # -- ApplyConfiguration --------------------------------------------------------------------
    async def apply(self, data: bytes, mode: int, dry_run: bool, try_timeout: float | None):
        """Returns (resolved mode, mode_details, warnings) or raises TalosApiError."""
        if self.apply_busy:
            raise TalosApiError(Status.FAILED_PRECONDITION,
                                "failed to apply configuration: another apply configuration is in progress")
        self.apply_busy = True
        try:
            return await self._apply(data, mode, dry_run, try_timeout)
        finally:
            self.apply_busy = False

    async def _apply(self, data, mode, dry_run, try_timeout):
        try:
            new_docs = cfg.parse(data)
        except cfg.ConfigError as exc:
            raise TalosApiError(Status.INVALID_ARGUMENT, str(exc)) from None
        if cfg.v1alpha1(new_docs) is None:
            raise TalosApiError(Status.INVALID_ARGUMENT,
                                "config validation failed: the config is missing the v1alpha1 document")
        if self.maintenance and mode == REBOOT:
            mode = NO_REBOOT   # 1.13+: REBOOT becomes NO_REBOOT in maintenance mode
        old_docs = self.docs() if self.current else []
        reboot_needed = bool(old_docs) and cfg.needs_reboot(old_docs, new_docs, self.version)
        if mode == AUTO:
            mode = REBOOT if reboot_needed else NO_REBOOT
        if mode in (NO_REBOOT, TRY) and reboot_needed:
            raise TalosApiError(Status.INVALID_ARGUMENT,
                                "this config change can't be applied in immediate mode\ndiff: "
                                + cfg.diff(self.current or b"", data))
        if mode == REBOOT:
            details = "Applied configuration with a reboot"
        elif mode == STAGED:
            details = "Staged configuration to be applied after the next reboot"
        else:
            details = "Applied configuration without a reboot"
            if mode == TRY:
                details += f" (will be rolled back in {try_timeout or 60:g}s)"
        if dry_run:
            d = cfg.diff(self.current or b"", data)
            summary = f"Dry run summary:\n{details} (skipped in dry-run).\n\nConfig diff:\n\n{d if d else 'No changes.'}"
            return mode, summary, []
        await self.clock.sleep(self.timings.apply)
        now = self.clock.now()
        if mode != STAGED and self._try_timer is not None:
            # a new config during try mode replaces the tried one: no rollback any more
            self._try_timer.cancel()
            self._try_timer = None
        if mode != TRY:
            # Any other apply confirms (or replaces) a config applied in try mode: machined cancels the
            # pending rollback (CancelConfigRollbackTimeout) before it applies.
            if self._try_timer is not None:
                self._try_timer.cancel()
                self._try_timer = None
            self.persistent = bytes(data)
            self.config_version["persistent"] += 1
            self.updated["persistent"] = now
        if mode in (NO_REBOOT, TRY):
            previous = self.current
            self.current = bytes(data)
            self.config_version["v1alpha1"] += 1
            self.updated["v1alpha1"] = now
            if self.maintenance:
                # 1.13+: the node leaves maintenance and boots on with the config (no reboot)
                self.persistent = bytes(data)
                self._later(self.timings.address_move, self._leave_maintenance)
            else:
                self._later(self.timings.address_move, self._adopt_and_notify)
            if mode == TRY:
                if self._try_timer is not None:
                    self._try_timer.cancel()
                self._try_timer = self.clock.call_later(try_timeout or 60.0, self._rollback, previous)
        elif mode == REBOOT:
            self.reboot()
        self._changed()
        return mode, details, []

    def _leave_maintenance(self) -> None:
        self.maintenance = False
        self._adopt(self.docs())
        self.stage = BOOTING
        self.ready = False
        self._changed()
        if not vol.prepare(self):
            return
        self._later(self.timings.boot, self._running)

    def _adopt_and_notify(self) -> None:
        self._adopt(self.docs())
        self._changed()

    def _rollback(self, previous: bytes) -> None:
        self._try_timer = None
        self.current = previous
        self.config_version["v1alpha1"] += 1
        self.updated["v1alpha1"] = self.clock.now()
        self._adopt_and_notify()

    # -- services ------------------------------------------------------------------------------
    def services(self) -> list[Service]:
        if self.maintenance:
            return [Service("apid", "Running", True), Service("machined", "Running", None)]
        booting = self.stage == BOOTING
        st = "Preparing" if booting else "Running"
        out = [Service("apid", "Running", True), Service("containerd", "Running", True),
               Service("cri", st, None if booting else True), Service("machined", "Running", None),
               Service("udevd", "Running", True)]
        if self.role == "controlplane":
            out.append(Service("trustd", st, None if booting else True))
            if self.etcd is not None:
                out.append(self.etcd.service_of(self))
        out.append(Service("kubelet", st, None if booting else True))
        return sorted(out, key=lambda s: s.id)


@dataclass
class EtcdMember:
    id: int
    hostname: str
    peer_urls: list[str]
    client_urls: list[str]
    is_learner: bool
    node: TalosMachine = field(repr=False)


class EtcdCluster:
    """The etcd cluster of the control planes: members, quorum, leader and the db bytes."""

    def __init__(self, clock, seed: int = 2379):
        self.clock = clock
        self.nodes: list[TalosMachine] = []
        self.members: dict[int, EtcdMember] = {}
        self.db = b""
        self.gen = 0                 # bumps at every (re-)bootstrap
        self.leader = 0
        self.raft_term = 0
        self.raft_index = 0
        self._rng = random.Random(seed)
        self._timer = None

    def attach(self, node: TalosMachine) -> None:
        self.nodes.append(node)
        if self._timer is None:
            period = node.timings.etcd_tick

            def run():
                self._timer = self.clock.call_later(period, run)
                self.tick()
            self._timer = self.clock.call_later(period, run)

    # -- views ---------------------------------------------------------------------------------
    @staticmethod
    def urls(node: TalosMachine) -> tuple[list[str], list[str]]:
        return [f"https://{node.address}:2380"], [f"https://{node.address}:2379"]

    def member_of(self, node: TalosMachine) -> EtcdMember | None:
        for m in self.members.values():
            if m.node is node:
                return m
        return None

    def _voters(self) -> list[EtcdMember]:
        return [m for m in self.members.values() if not m.is_learner]

    def _healthy_from(self, node: TalosMachine | None) -> list[EtcdMember]:
        if node is not None and node.partitioned:
            return [m for m in self._voters() if m.node is node and node.etcd_running]
        return [m for m in self._voters() if m.node.etcd_running and not m.node.partitioned]

    def has_quorum(self, node: TalosMachine | None = None) -> bool:
        voters = self._voters()
        return bool(voters) and len(self._healthy_from(node)) > len(voters) // 2

    def leader_id(self, node: TalosMachine | None = None) -> int:
        if not self.has_quorum(node):
            return 0
        healthy = self._healthy_from(node)
        if self.leader not in {m.id for m in healthy}:
            self.leader = min(m.id for m in healthy)
            self.raft_term += 1
        return self.leader

    def service_of(self, node: TalosMachine) -> Service:
        if node.stage == BOOTING:
            return Service("etcd", "Preparing", None, "Running pre state")
        if node.etcd_running and self.member_of(node) is not None:
            healthy = self.has_quorum(node)
            return Service("etcd", "Running", healthy, "" if healthy else "no quorum")
        if node.etcd_left:
            return Service("etcd", "Finished", None, "Service finished successfully")
        return Service("etcd", "Preparing", None, "Running pre state")

    # -- changes -------------------------------------------------------------------------------
    def _new_id(self) -> int:
        while True:
            i = self._rng.getrandbits(64)
            if i and i not in self.members:
                return i

    def bootstrap(self, node: TalosMachine, db: bytes = b"") -> EtcdMember:
        """A fresh cluster (generation + 1) with ``node`` as the single member."""
        self.gen += 1
        self.members = {}
        peer, client = self.urls(node)
        m = EtcdMember(self._new_id(), node.hostname, peer, client, False, node)
        self.members[m.id] = m
        self.db = bytes(db)
        self.leader = m.id
        self.raft_term += 1
        self.raft_index += 1
        node.etcd_data = True
        node.etcd_gen = self.gen
        node.etcd_left = False
        node.etcd_upload = None
        node._changed()
        return m

    def remove(self, member_id: int) -> None:
        m = self.members.pop(member_id)
        self.raft_index += 1
        if self.leader == member_id:
            self.leader = 0
        m.node.etcd_data = False
        m.node._changed()

    def address_changed(self, node: TalosMachine) -> None:
        self.tick()

    def tick(self) -> None:
        """Members follow their node's address, waiting nodes join, learners get promoted (with quorum)."""
        if self.gen == 0 or not self.has_quorum():
            return
        changed = False
        for m in list(self.members.values()):
            if m.node.etcd_running and m.is_learner:
                m.is_learner = False
                changed = True
            if m.node.etcd_running and (m.node.address not in m.peer_urls[0]):
                m.peer_urls, m.client_urls = self.urls(m.node)
                m.hostname = m.node.hostname
                changed = True
        for node in self.nodes:
            if (node.powered and node.os_up and node.stage == RUNNING and not node.partitioned
                    and not node.etcd_data and not node.etcd_left and not node.maintenance):
                for stale in [m for m in self.members.values() if m.hostname == node.hostname or m.node is node]:
                    del self.members[stale.id]
                peer, client = self.urls(node)
                m = EtcdMember(self._new_id(), node.hostname, peer, client, True, node)
                self.members[m.id] = m
                node.etcd_data = True
                node.etcd_gen = self.gen
                changed = True
        if changed:
            self.raft_index += 1
            for node in self.nodes:
                node._changed()

    # -- snapshot / recover --------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The db followed by its sha256, as etcd's snapshot does."""
        return self.db + hashlib.sha256(self.db).digest()

    def write(self, data: bytes) -> None:
        """The world writes into the keyspace (the db bytes)."""
        self.db = bytes(data)
        self.raft_index += 1


def check_snapshot(upload: bytes, skip_hash_check: bool) -> bytes:
    if skip_hash_check:
        return upload
    if len(upload) < 32 or hashlib.sha256(upload[:-32]).digest() != upload[-32:]:
        raise TalosApiError(Status.FAILED_PRECONDITION,
                            "failed to recover etcd: snapshot file integrity check failed: sha256 hash mismatch")
    return upload[:-32]
