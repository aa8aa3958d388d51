# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing a Proxmox VM: facts, a pure planner, and an executor that proves the outcome.

The one rule: storage may only be freed once the dead node's VM is CONFIRMED powered off. So
`fenced` is true only when a fresh read of status/current says `stopped` after the action, nothing
failed on the way, and (for an HA-managed VM) the HA manager is not asked to start it again. A
successful stop task, or an HA `hastop` task, proves nothing by itself.

Three stages, so check mode and tests can use the first two alone:

1. gather_facts(client, ...) reads (GET only): /cluster/status, /cluster/resources, status/current and
   config of the VM, and for an HA resource its requested state (/cluster/ha/resources/vm:<vmid>) -> VmFacts.
2. plan_fence(facts, request) is a pure function -> FencePlan (a list of steps), or raises
   ProxmoxError when fencing must be refused: power state unknown (PVE host offline), no quorum,
   identity mismatch (expected SMBIOS UUID), a template.
3. FenceExecutor(client, request).run(plan) carries the steps out and returns (result, error): the result
   with its proof (power state before/after, UPID, exit status, elapsed seconds, SMBIOS UUID, PVE node,
   started_at and timestamp in RFC 3339, k8s/objects.rfc3339). proxmox_fence (run() below) and dr_drill's
   hard stop (drill/run.inject) both run it.

run(client, params, check_mode) is everything proxmox_fence does with a client: identity, validation,
facts, plan, the permission check before any write, then (unless check mode) the executor. In check mode
nothing is written and the proof of a VM that a real run would stop is only predicted (``predicted: true``,
``fenced: false``): csi_force_detach accepts such a proof in check mode only.

Identity: request.expected_system_uuid is compared (case-insensitively, proxmox.identity.same_uuid)
with the smbios1 uuid of the VM before any write. It is the Kubernetes node's
status.nodeInfo.systemUUID, given directly or resolved from the module's `k8s_node` option by an
IdentityResolver (request.identity_source is then 'k8s_node:<name>'); the VM is found by that UUID
across the whole PVE cluster (resolve_by_uuid, proxmox.identity.match_node).
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import rfc3339
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient, parse_smbios_uuid
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import (
    match_node, read_identities, same_uuid,
)

__all__ = ['ACTIONS', 'HA_RECOVERY_STATES', 'FenceExecutor', 'FencePlan', 'FenceRequest', 'IdentityResolver', 'Step',
           'VmFacts', 'expected_identity', 'gather_facts', 'plan_fence', 'run', 'validate_request', 'FenceFailed',
           'k8s_node_uuid', 'IDENTITY_RESOLVERS', 'check_options', 'run_fence_module']

ACTIONS = ('off', 'on', 'reboot', 'status')
HA_RECOVERY_STATES = ('ignored', 'disabled')
RUNNING, STOPPED, UNKNOWN = 'running', 'stopped', 'unknown'


def power_state(status):
    """PVE's status/current `status` as a power state: running, stopped or unknown."""
    return status if status in (RUNNING, STOPPED) else UNKNOWN


class VmFacts(object):
    """What gather_facts read about the VM and its cluster."""

    FIELDS = ('vmid', 'name', 'node', 'status', 'qmpstatus', 'lock', 'ha_managed', 'ha_state', 'ha_requested',
              'smbios_uuid', 'node_online', 'quorate', 'template')

    def __init__(self, vmid, node, name=None, status=UNKNOWN, qmpstatus=None, lock=None, ha_managed=False,
                 ha_state=None, smbios_uuid=None, node_online=True, quorate=True, template=False):
        self.vmid = int(vmid)
        self.node = node
        self.name = name
        self.status = status
        self.qmpstatus = qmpstatus
        self.lock = lock or None
        self.ha_managed = bool(ha_managed)
        self.ha_state = ha_state
        self.smbios_uuid = smbios_uuid
        self.node_online = node_online
        self.quorate = quorate
        self.template = bool(template)
        # The HA resource's REQUESTED state (GET /cluster/ha/resources/{sid}; omitted there = started), or
        # None when the VM is no HA resource. status/current cannot tell it: `ignored` reads {managed: 0}
        # like a VM without HA, `disabled` reads `stopped` like `stopped`.
        self.ha_requested = ha_state if ha_managed else None

    @property
    def power_state(self):
        return power_state(self.status)

    def as_dict(self):
        out = dict((f, getattr(self, f)) for f in self.FIELDS)
        out['power_state'] = self.power_state
        return out


class FenceRequest(object):
    """What the caller asked for (the module's options, minus the connection).

    action: off, on, reboot or status. graceful: try an ACPI/agent shutdown for shutdown_timeout
    seconds before the hard stop. stop_timeout: seconds for the hard stop to be confirmed.
    start_timeout: seconds for a start to be confirmed. skiplock: pass skiplock=1 (root@pam password
    login only). ha_state: set the HA resource to ignored or disabled while fenced (on sets it back to
    started). expected_system_uuid: refuse unless the VM's SMBIOS UUID matches. require_quorum:
    refuse when the cluster is not quorate. root_password_login: the connection is a root@pam
    password login.
    """

    def __init__(self, action='off', graceful=False, shutdown_timeout=60, stop_timeout=60, start_timeout=120,
                 skiplock=False, ha_state=None, expected_system_uuid=None, require_quorum=True,
                 root_password_login=False, identity_source=None):
        self.action = action
        self.graceful = bool(graceful)
        self.shutdown_timeout = shutdown_timeout
        self.stop_timeout = stop_timeout
        self.start_timeout = start_timeout
        self.skiplock = bool(skiplock)
        self.ha_state = ha_state
        self.expected_system_uuid = expected_system_uuid
        self.require_quorum = bool(require_quorum)
        self.root_password_login = bool(root_password_login)
        self.identity_source = identity_source or ('expected_system_uuid' if expected_system_uuid else None)


def validate_request(req):
    """Reject bad input before any API call (raises ProxmoxError INVALID)."""
    if req.action not in ACTIONS:
        raise E.ProxmoxError(E.INVALID, 'action must be one of {0}, not {1!r}'.format(', '.join(ACTIONS), req.action))
    if req.ha_state is not None and req.ha_state not in HA_RECOVERY_STATES:
        raise E.ProxmoxError(E.INVALID, 'ha_state must be one of {0}'.format(', '.join(HA_RECOVERY_STATES)))
    for name in ('shutdown_timeout', 'stop_timeout', 'start_timeout'):
        value = getattr(req, name)
        if value is None or value <= 0:
            raise E.ProxmoxError(E.INVALID, '{0} must be a positive number of seconds'.format(name))
    if req.skiplock and not req.root_password_login:
        raise E.ProxmoxError(E.INVALID, 'skiplock is only allowed for a password login as root@pam '
                                        '(PVE refuses it for API tokens and other users)')


class Step(object):
    """One thing the executor does: op and its arguments, and why (for the plan shown in check mode)."""

    OPS = ('set_ha_state', 'shutdown', 'stop', 'confirm_stopped', 'start', 'confirm_running')
    WRITES = ('set_ha_state', 'shutdown', 'stop', 'start')

    def __init__(self, op, why, **args):
        if op not in self.OPS:
            raise ValueError('unknown step ' + op)
        self.op = op
        self.why = why
        self.args = args

    @property
    def writes(self):
        return self.op in self.WRITES

    def as_dict(self):
        return {'op': self.op, 'args': dict(self.args), 'why': self.why}

    def __repr__(self):
        return 'Step({0!r}, {1!r})'.format(self.op, self.args)


class FencePlan(object):
    """The steps for one VM, the power state expected afterwards and warnings."""

    def __init__(self, action, facts, steps, expect, warnings=()):
        self.action = action
        self.facts = facts
        self.steps = list(steps)
        self.expect = expect
        self.warnings = list(warnings)

    @property
    def changed(self):
        return any(s.writes for s in self.steps)

    @property
    def ops(self):
        return [s.op for s in self.steps]

    def as_dict(self):
        return {'action': self.action, 'vmid': self.facts.vmid, 'node': self.facts.node, 'name': self.facts.name,
                'power_state_before': self.facts.power_state, 'power_state_expected': self.expect,
                'changed': self.changed, 'steps': [s.as_dict() for s in self.steps], 'warnings': list(self.warnings)}


# ------------------------------------------------------------------------------ planning

def _refuse(facts, req):
    """The refusals every action shares; raise the first that applies."""
    if facts.power_state == UNKNOWN:
        why = 'its PVE node {0} is offline or unreachable'.format(facts.node) if facts.node_online is False else \
            'PVE reports status {0!r}'.format(facts.status)
        raise E.ProxmoxError(E.HOST_OFFLINE, 'power state of VM {0} is UNKNOWN: {1}; it cannot be stopped or '
                                             'confirmed off through the API'.format(facts.vmid, why))
    if req.require_quorum and facts.quorate is False:
        raise E.ProxmoxError(E.NO_QUORUM, 'the cluster is not quorate (seen from the API endpoint): the view of '
                                          'VM {0} is not authoritative and HA may act on it elsewhere'.format(facts.vmid))
    if req.expected_system_uuid is not None and not same_uuid(req.expected_system_uuid, facts.smbios_uuid):
        raise E.ProxmoxError(E.IDENTITY, 'identity mismatch: VM {0} ({1}) has SMBIOS UUID {2}, expected {3}{4}; '
                                         'nothing was changed'.format(
                                             facts.vmid, facts.name, facts.smbios_uuid or '(none)',
                                             req.expected_system_uuid,
                                             ' (from {0})'.format(req.identity_source) if req.identity_source else ''))
    if facts.template:
        raise E.ProxmoxError(E.INVALID, 'VM {0} is a template; it has no power state to fence'.format(facts.vmid))


def _stop_steps(facts, req, warnings, ha_ignore=True):
    steps = []
    ha_ignore = ha_ignore and facts.ha_managed and req.ha_state == 'ignored' and facts.ha_requested != 'ignored'
    if req.graceful:
        steps.append(Step('shutdown', 'graceful shutdown first, for at most {0}s'.format(req.shutdown_timeout),
                          timeout=req.shutdown_timeout))
    if ha_ignore:
        steps.append(Step('set_ha_state', 'HA ignores the VM, so the stop is direct and HA will not restart it',
                          state='ignored'))
    if facts.lock and not req.skiplock:
        warnings.append('VM {0} is locked ({1}): PVE will refuse the stop unless skiplock is used (root@pam '
                        'password login only)'.format(facts.vmid, facts.lock))
    direct = not facts.ha_managed or facts.ha_state == 'ignored' or ha_ignore
    via = 'a qmstop task' if direct else 'the HA manager (hastop)'
    steps.append(Step('stop', 'hard stop through ' + via, skiplock=req.skiplock))
    steps.append(Step('confirm_stopped', 'poll status/current until it reads stopped', timeout=req.stop_timeout))
    return steps


def plan_fence(facts, req):
    """The FencePlan for facts and request (pure). Raises ProxmoxError for a refusal."""
    validate_request(req)
    _refuse(facts, req)
    warnings = []
    steps = []
    ha_started = facts.ha_managed and facts.ha_state == 'started'
    if req.action == 'status':
        if facts.power_state == STOPPED and ha_started:
            warnings.append('VM {0} is stopped but its HA state is started: HA may start it again'.format(facts.vmid))
        return FencePlan('status', facts, [], facts.power_state, warnings)

    if req.action == 'off':
        if facts.power_state == RUNNING or ha_started:
            # A stopped HA VM whose requested state is still `started` is about to be started again: stop it
            # through HA too, so its requested state becomes `stopped`.
            steps += _stop_steps(facts, req, warnings)
            if facts.power_state == STOPPED:
                steps = [s for s in steps if s.op != 'shutdown']
        elif facts.ha_managed and req.ha_state == 'ignored' and facts.ha_requested != 'ignored':
            steps.append(Step('set_ha_state', 'keep HA away from the fenced VM', state='ignored'))
        if facts.ha_managed and req.ha_state == 'disabled' and facts.ha_requested != 'disabled':
            # After the stop: a stop of an HA VM would set its state back to `stopped`.
            steps.append(Step('set_ha_state', 'keep HA from starting the VM during recovery', state='disabled'))
        if steps and steps[-1].op == 'set_ha_state':
            steps.append(Step('confirm_stopped', 'read status/current again', timeout=req.stop_timeout))
        return FencePlan('off', facts, steps, STOPPED, warnings)

    restore = facts.ha_requested in HA_RECOVERY_STATES
    if req.action == 'on':
        if restore:
            steps.append(Step('set_ha_state', 'give the VM back to the HA manager', state='started'))
        if facts.power_state != RUNNING:
            steps.append(Step('start', 'power on'))
        if steps:
            steps.append(Step('confirm_running', 'poll status/current until it reads running',
                              timeout=req.start_timeout))
        return FencePlan('on', facts, steps, RUNNING, warnings)

    # reboot: stop, confirm stopped, start. Never reset: a reset is not a confirmed power-off.
    if facts.power_state == RUNNING:
        steps += _stop_steps(facts, req, warnings, ha_ignore=False)
    if restore:
        steps.append(Step('set_ha_state', 'give the VM back to the HA manager', state='started'))
    steps.append(Step('start', 'power on'))
    steps.append(Step('confirm_running', 'poll status/current until it reads running', timeout=req.start_timeout))
    return FencePlan('reboot', facts, steps, RUNNING, warnings)


# ------------------------------------------------------------------------------- reading

def gather_facts(client, vmid=None, name=None, node=None):
    """VmFacts for one VM, with GET requests only. A PVE node that is offline gives status unknown."""
    cluster = client.cluster_status()
    res = client.find_vm(vmid=vmid, name=name, node=node)
    vm_node = res.get('node')
    online = cluster['nodes'].get(vm_node, True)
    facts = VmFacts(res.get('vmid'), vm_node, name=res.get('name'), status=res.get('status', UNKNOWN),
                    lock=res.get('lock'), ha_managed=bool(res.get('hastate')), ha_state=res.get('hastate'),
                    node_online=online, quorate=cluster['quorate'], template=bool(res.get('template')))
    if not online or facts.status == UNKNOWN:
        facts.status = UNKNOWN
        facts.node_online = False if not online else facts.node_online
        return facts
    try:
        cur = client.vm_status(vm_node, facts.vmid)
        config = client.vm_config(vm_node, facts.vmid)
    except E.ProxmoxError as exc:
        if exc.kind != E.HOST_OFFLINE:
            raise
        facts.status = UNKNOWN
        facts.node_online = False
        return facts
    facts.status = cur.get('status', UNKNOWN)
    facts.qmpstatus = cur.get('qmpstatus')
    facts.lock = cur.get('lock') or config.get('lock') or None
    ha = cur.get('ha') or {}
    facts.ha_managed = bool(int(ha.get('managed', 0) or 0))
    facts.ha_state = ha.get('state') if facts.ha_managed else None
    facts.ha_requested = None
    if facts.ha_managed or res.get('hastate'):
        facts.ha_requested = read_ha_requested(client, facts.vmid)
        if facts.ha_requested is not None and facts.ha_requested != 'ignored' and not facts.ha_managed:
            facts.ha_managed = True  # status/current not yet updated by the CRM
    facts.smbios_uuid = parse_smbios_uuid(config.get('smbios1'))
    facts.name = facts.name or config.get('name')
    facts.template = facts.template or bool(int(cur.get('template', 0) or config.get('template', 0) or 0))
    return facts


def read_ha_requested(client, vmid):
    """The requested HA state of vm:<vmid> from GET /cluster/ha/resources/{sid} (`state` omitted = started);
    None when the VM is no HA resource."""
    try:
        res = client.get('cluster/ha/resources/vm:{0}'.format(vmid)) or {}
    except E.ProxmoxError as exc:
        if exc.kind in (E.NOT_FOUND, E.API):  # "no such resource"
            return None
        raise
    state = res.get('state') or 'started'
    return 'started' if state == 'enabled' else state


# ----------------------------------------------------------------------------- execution

# Errors of a graceful shutdown that do not stop the fence: the hard stop comes next anyway.
SHUTDOWN_TOLERATED = (E.TIMEOUT, E.TASK_FAILED, E.API, E.LOCKED)


class FenceExecutor(object):
    """Carries out a FencePlan and proves the outcome with a final read of status/current."""

    def __init__(self, client, req, poll_interval=1.0, clock=time.monotonic):
        self.client = client
        self.req = req
        self.poll_interval = poll_interval
        self.clock = clock

    def run(self, plan):
        """Execute; returns (result dict, error or None). Never raises ProxmoxError."""
        req = self.req
        facts = plan.facts
        start = self.clock()
        started_at = rfc3339()
        trace = {'upid': None, 'exitstatus': None, 'tasks': [], 'ha_state': facts.ha_state, 'warnings': []}
        error = None
        try:
            for step in plan.steps:
                getattr(self, '_' + step.op)(facts, step, trace)
        except E.ProxmoxError as exc:
            error = exc
            if exc.upid and not trace['upid']:
                trace['upid'] = exc.upid
            if exc.exitstatus:
                trace['exitstatus'] = exc.exitstatus
        after, ha_after = self._final_read(facts, trace)
        fenced = (error is None and plan.action in ('off', 'status') and after == STOPPED
                  and not (facts.ha_managed and ha_after == 'started'))
        if error is None and plan.action != 'status' and after != plan.expect:
            error = E.ProxmoxError(E.TIMEOUT if after != UNKNOWN else E.HOST_OFFLINE,
                                   'VM {0} reads {1} after the action, expected {2}'.format(facts.vmid, after,
                                                                                            plan.expect))
        result = {
            'vmid': facts.vmid, 'name': facts.name, 'node': facts.node, 'action': plan.action,
            'power_state_before': facts.power_state, 'power_state_after': after,
            'ha_state_before': facts.ha_state, 'ha_state_after': ha_after,
            'fenced': fenced, 'upid': trace['upid'], 'exitstatus': trace['exitstatus'], 'tasks': trace['tasks'],
            'smbios_uuid': facts.smbios_uuid, 'identity_verified': req.expected_system_uuid is not None,
            'elapsed': round(self.clock() - start, 3), 'started_at': started_at, 'timestamp': rfc3339(),
            'warnings': plan.warnings + trace['warnings'],
        }
        if error is not None:
            result['error'] = error.as_dict()
        return result, error

    # ----------------------------------------------------------------- steps

    def _task(self, trace, upid, timeout, what):
        trace['upid'] = upid
        entry = {'step': what, 'upid': upid, 'exitstatus': None}
        trace['tasks'].append(entry)
        try:
            status = self.client.wait_task(upid, timeout, interval=self.poll_interval)
        except E.ProxmoxError as exc:
            entry['exitstatus'] = exc.exitstatus
            entry['error'] = exc.kind
            raise
        entry['exitstatus'] = trace['exitstatus'] = status.get('exitstatus')
        return status

    def _set_ha_state(self, facts, step, trace):
        self.client.set_ha_state(facts.vmid, step.args['state'])
        trace['ha_state'] = step.args['state']

    def _shutdown(self, facts, step, trace):
        timeout = step.args['timeout']
        begin = self.clock()
        try:
            upid = self.client.shutdown(facts.node, facts.vmid, timeout)
            trace['tasks'].append({'step': 'shutdown', 'upid': upid, 'exitstatus': None})
            self.client.wait_power(facts.node, facts.vmid, STOPPED, timeout, interval=self.poll_interval)
        except E.ProxmoxError as exc:
            if exc.kind not in SHUTDOWN_TOLERATED:
                raise
            trace['warnings'].append('graceful shutdown did not finish in {0}s ({1}); hard stop follows'.format(
                round(self.clock() - begin, 1), exc.message))

    def _stop(self, facts, step, trace):
        begin = self.clock()
        upid = self.client.stop(facts.node, facts.vmid, skiplock=step.args.get('skiplock'))
        # The stop task (qmstop: ends when QEMU is gone; hastop: ends at once) must end OK; its failure
        # (locked VM, ...) comes back with the task's last log lines.
        self._task(trace, upid, self._budget(facts, begin), 'stop')
        trace['stop_began'] = begin

    def _budget(self, facts, begin):
        return max(self.poll_interval, self.req.stop_timeout - (self.clock() - begin))

    def _confirm_stopped(self, facts, step, trace):
        begin = trace.get('stop_began', self.clock())
        timeout = max(self.poll_interval, step.args['timeout'] - (self.clock() - begin))
        self.client.wait_power(facts.node, facts.vmid, STOPPED, timeout, interval=self.poll_interval)

    def _start(self, facts, step, trace):
        upid = self.client.start(facts.node, facts.vmid)
        trace['start_began'] = self.clock()
        self._task(trace, upid, self.req.start_timeout, 'start')

    def _confirm_running(self, facts, step, trace):
        begin = trace.get('start_began', self.clock())
        timeout = max(self.poll_interval, step.args['timeout'] - (self.clock() - begin))
        self.client.wait_power(facts.node, facts.vmid, RUNNING, timeout, interval=self.poll_interval)

    def _final_read(self, facts, trace):
        """(power state, HA state) from a fresh status/current; unknown if it cannot be read."""
        try:
            cur = self.client.vm_status(facts.node, facts.vmid)
        except E.ProxmoxError as exc:
            trace['warnings'].append('final status read failed: {0}'.format(exc.message))
            return UNKNOWN, trace['ha_state']
        ha = cur.get('ha') or {}
        ha_state = ha.get('state') if int(ha.get('managed', 0) or 0) else None
        return power_state(cur.get('status')), ha_state


# ------------------------------------------------------------------------------ entry

class IdentityResolver(object):
    """Extension point: where the expected SMBIOS UUID comes from, besides `expected_system_uuid`.

    A resolver names the module option it reads (`option`) and turns its value into the UUID. The
    `k8s_node` option of proxmox_fence is one: it reads the node's status.nodeInfo.systemUUID through the
    collection's Kubernetes module_utils (the nested `k8s_auth` connection options), in spirit

        IdentityResolver('k8s_node', lambda name, params: client_from_params(params['k8s_auth'])
                         .node_system_uuid(name))

    The module passes its resolvers to request_from_params(); the planner and executor are unchanged.
    """

    def __init__(self, option, resolve):
        self.option = option
        self.resolve = resolve


def expected_identity(params, resolvers=()):
    """(expected SMBIOS UUID or None, source) from expected_system_uuid and any resolver whose option is set.

    Runs before any Proxmox request. Two sources that disagree are refused (INVALID).
    """
    found = []
    if params.get('expected_system_uuid'):
        found.append((params['expected_system_uuid'], 'expected_system_uuid'))
    for resolver in resolvers:
        value = params.get(resolver.option)
        if value:
            uuid = resolver.resolve(value, params)
            if not uuid:
                raise E.ProxmoxError(E.IDENTITY, '{0}={1!r} gives no system UUID; refusing to fence '
                                                 'an unidentified VM'.format(resolver.option, value))
            found.append((uuid, '{0}:{1}'.format(resolver.option, value)))
    if not found:
        return None, None
    for uuid, source in found[1:]:
        if not same_uuid(uuid, found[0][0]):
            raise E.ProxmoxError(E.INVALID, 'identity sources disagree: {0} says {1}, {2} says {3}'.format(
                found[0][1], found[0][0], source, uuid))
    return found[-1]


def request_from_params(params, settings, resolvers=()):
    """A FenceRequest from the module's options (identity resolved first, see IdentityResolver)."""
    uuid, source = expected_identity(params, resolvers)
    return FenceRequest(
        action=params.get('action') or 'off', graceful=params.get('graceful'),
        shutdown_timeout=params.get('shutdown_timeout'), stop_timeout=params.get('stop_timeout'),
        start_timeout=params.get('start_timeout'), skiplock=params.get('skiplock'), ha_state=params.get('ha_state'),
        expected_system_uuid=uuid, identity_source=source, require_quorum=params.get('require_quorum', True),
        root_password_login=settings.is_root_password_login)


#: The privilege each write step needs, and on which ACL path (pve-access-control / qemu-server).
STEP_PRIVILEGES = {'stop': ('VM.PowerMgmt', '/vms/{vmid}'), 'shutdown': ('VM.PowerMgmt', '/vms/{vmid}'),
                   'start': ('VM.PowerMgmt', '/vms/{vmid}'), 'set_ha_state': ('Sys.Console', '/')}


def check_permissions(client, plan):
    """Before any write: the privileges the plan's steps need, checked with GET /access/permissions (the
    caller's own, token privilege separation included). Raises ProxmoxError PERMISSION naming what is
    missing; returns the list of (privilege, path) checked."""
    needed = []
    for step in plan.steps:
        if step.op in STEP_PRIVILEGES:
            priv, path = STEP_PRIVILEGES[step.op]
            item = (priv, path.format(vmid=plan.facts.vmid))
            if item not in needed:
                needed.append(item)
    missing = []
    for priv, path in needed:
        held = client.permissions(path)
        privs = set()
        for entry_path, entry in held.items():
            if entry_path == path or entry_path == '/' or path.startswith(entry_path.rstrip('/') + '/'):
                privs.update(k for k, v in (entry or {}).items() if v)
        if priv not in privs:
            missing.append('{0} on {1}'.format(priv, path))
    if missing:
        who = client.settings.token_id or client.settings.user
        raise E.ProxmoxError(E.PERMISSION, '{0} lacks {1} (needed for: {2}); nothing was changed'.format(
            who, ', '.join(missing), ', '.join(s.op for s in plan.steps if s.writes)))
    return needed


def resolve_by_uuid(client, req, vmid=None, node_name=None):
    """The VMID of the one VM of the cluster carrying req.expected_system_uuid (GETs only).

    Identity is the SMBIOS UUID: no VM, several VMs, or a VM with the node's name whose UUID cannot be read
    (its PVE node offline) is refused (IDENTITY) with the VMIDs and hosts named; a `vmid` that is not that
    VM is refused too. A renamed VM is found by its UUID.
    """
    found = match_node(read_identities(client), req.expected_system_uuid, node_name)
    if found['identity'] == 'unreadable' and not found['matches']:
        # Its VM is on an offline PVE node: gather_facts reads it as power UNKNOWN and the planner refuses
        # with that (true) reason.
        named = [m for m in found['unreadable'] if m.get('name') in (None, node_name)]
        if len(named) == 1 and (vmid is None or int(vmid) == named[0]['vmid']):
            return named[0]['vmid']
    if found['identity'] != 'ok':
        raise E.ProxmoxError(E.IDENTITY, '{0}{1}; nothing was changed'.format(
            found['reason'], ' (from {0})'.format(req.identity_source) if req.identity_source else ''))
    if vmid is not None and int(vmid) != found['vm']['vmid']:
        raise E.ProxmoxError(E.IDENTITY, 'identity mismatch: the SMBIOS UUID {0} is carried by VM {1} on {2}, not by '
                                         'VM {3}; nothing was changed'.format(req.expected_system_uuid,
                                                                              found['vm']['vmid'],
                                                                              found['vm'].get('node'), vmid))
    return found['vm']['vmid']


def _diff(before, after, ha_before, ha_after):
    return {'before': {'power_state': before, 'ha_state': ha_before},
            'after': {'power_state': after, 'ha_state': ha_after}}


def run(client, params, check_mode=False, clock=time.monotonic, resolvers=()):
    """Everything proxmox_fence does, given a client: returns (result, error or None).

    The request is validated before any API call; the facts are read with GETs only; in check mode the
    plan is returned, nothing is written, and ``predicted`` tells a proof that only a real run would give
    (``would_fence`` for a VM not read stopped yet). resolvers: IdentityResolver extension points.
    """
    result = {'changed': False, 'fenced': False, 'action': params.get('action'), 'power_state_before': UNKNOWN,
              'power_state_after': UNKNOWN, 'vmid': params.get('vmid'), 'node': params.get('node'),
              'name': params.get('name'), 'upid': None, 'exitstatus': None, 'smbios_uuid': None}
    begin = clock()
    try:
        req = request_from_params(params, client.settings, resolvers)
        result['action'] = req.action
        validate_request(req)
        vmid, name = params.get('vmid'), params.get('name')
        if req.expected_system_uuid:
            vmid = resolve_by_uuid(client, req, vmid, params.get('k8s_node') or name)
            name = None
        facts = gather_facts(client, vmid=vmid, name=name, node=params.get('node'))
        result.update(vmid=facts.vmid, node=facts.node, name=facts.name, smbios_uuid=facts.smbios_uuid,
                      power_state_before=facts.power_state, power_state_after=facts.power_state,
                      ha_state_before=facts.ha_state, facts=facts.as_dict())
        plan = plan_fence(facts, req)
        if plan.changed and params.get('check_permissions', True):
            result['permissions_checked'] = ['{0} on {1}'.format(*n) for n in check_permissions(client, plan)]
    except E.ProxmoxError as exc:
        result.update(error=exc.as_dict(), elapsed=round(clock() - begin, 3), timestamp=rfc3339(),
                      changed=bool(client.writes), api_retries=client.retries)
        return result, exc
    result['plan'] = plan.as_dict()
    if check_mode:
        after = plan.expect if plan.changed else facts.power_state
        ha_after = facts.ha_state
        for step in plan.steps:
            if step.op == 'set_ha_state':
                ha_after = step.args['state']
        # A VM read stopped now is proven off by that read: the run would report it fenced, so check mode
        # does too. A running VM is not fenced until a real run stops it; would_fence says it would be, and
        # the result is then a PREDICTED proof (predicted: true, power_state_after the expected state):
        # csi_force_detach plans with it in check mode and refuses it in a real run. A real run never sets it.
        stopping = (req.action in ('off', 'status') and after == STOPPED
                    and not (facts.ha_managed and ha_after == 'started'))
        fenced = stopping and facts.power_state == STOPPED
        result.update(changed=plan.changed, power_state_after=after, ha_state_after=ha_after,
                      fenced=fenced, would_fence=stopping, predicted=stopping and not fenced,
                      warnings=plan.warnings, elapsed=round(clock() - begin, 3), timestamp=rfc3339(),
                      diff=_diff(facts.power_state, after, facts.ha_state, ha_after))
        return result, None
    outcome, error = FenceExecutor(client, req, poll_interval=params.get('poll_interval') or 1.0,
                                   clock=clock).run(plan)
    result.update(outcome)
    result['changed'] = bool(client.writes)
    result['elapsed'] = round(clock() - begin, 3)
    result['api_retries'] = client.retries
    result['diff'] = _diff(facts.power_state, outcome['power_state_after'], facts.ha_state, outcome['ha_state_after'])
    return result, error


# ------------------------------------------------------------------------------ the module's call

class FenceFailed(Exception):
    """proxmox_fence failed: the ProxmoxError that ended the run, with the run's result (its proof so far).

    The module runner reports it as ``fail_json(msg=error.message, **result)`` with ``fenced`` false.
    """

    def __init__(self, error, result):
        super(FenceFailed, self).__init__(error.message)
        self.error = error
        self.result = result
        self.changed = bool(result.get('changed'))

    def as_dict(self):
        return dict(self.result.get('error') or self.error.as_dict())

    def result_fields(self):
        return dict((k, v) for k, v in self.result.items() if k not in ('changed', 'msg'))


def k8s_node_uuid(name, params):
    """The node's systemUUID, read with the collection's Kubernetes client and the `k8s_auth` settings."""
    from ansible.module_utils.basic import missing_required_lib
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import HAS_K8S, client_from_params
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError

    if not HAS_K8S:
        raise E.ProxmoxError(E.IDENTITY, missing_required_lib('kubernetes') + ' (for k8s_node)')
    try:
        return client_from_params(dict(params.get('k8s_auth') or {})).node_system_uuid(name)
    except K8sError as exc:
        raise E.ProxmoxError(E.IDENTITY, 'cannot read the systemUUID of Kubernetes node {0}: {1}'.format(name, exc))


# "Fence by Kubernetes node name": the k8s_node option resolves the expected SMBIOS UUID from the node's
# status.nodeInfo.systemUUID before any Proxmox request (IdentityResolver).
IDENTITY_RESOLVERS = (IdentityResolver('k8s_node', k8s_node_uuid),)


def check_options(params):
    """proxmox_fence's input check of the connection options (raises ValueError), before any request."""
    ConnectionSettings.from_params(params)
    return []


def run_fence_module(module_run):
    """proxmox_fence: the module runner's one call."""
    params = module_run.params
    # This module speaks of the fence agent's "action"; the option is `state` (alias `action`).
    params['action'] = params['state']
    if params['k8s_node'] and params['vmid'] is None and not params['name']:
        params['name'] = params['k8s_node']
    result, error = run(ProxmoxClient(ConnectionSettings.from_params(params)), params, check_mode=module_run.check_mode,
                        resolvers=IDENTITY_RESOLVERS)
    if not module_run.diff:
        result.pop('diff', None)
    if error is not None:
        result['fenced'] = False
        raise FenceFailed(error, result)
    return result
