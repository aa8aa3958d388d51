# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release the storage of a node that is confirmed powered off (issue 6).

THE ONE RULE: never detach storage from, taint out-of-service, or force-delete the pods of a node that
is not confirmed powered off. Here "confirmed" means: the node is not Ready AND either the registered
result of ``proxmox_fence`` says ``fenced: true`` for a VM whose SMBIOS UUID equals the node's
``status.nodeInfo.systemUUID`` (case-insensitive), or the operator said ``assume_fenced: true`` with no
proof at all (reported loudly). A proof that contradicts (not fenced, another UUID, a failed task)
is a refusal even with ``assume_fenced``.

Layers:

* ``plan_force_detach(observed, params)`` - a pure function from an observed snapshot (dicts as the
  API serves them) to a plan: refusals, the fence verdict, the taint, the pods, VolumeAttachments and
  Longhorn attachment tickets concerned, the volumes and workloads to verify, the ordered actions.
* ``ForceDetach`` - observes through a K8sClient, plans, and (unless check mode) carries the plan out:
  ``out_of_service`` taints the node and lets Kubernetes clean up, falling back to the direct steps
  when progress stalls; ``direct`` force-deletes pods, deletes VolumeAttachments, removes stale
  csi-attacher tickets; finalizers are stripped only from attachments the driver cannot release.
  ``wait`` verifies recovery per volume and per workload with times.
"""

from __future__ import annotations

import copy
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import (
    K8sError, NOT_FOUND, RefusedError,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    controller_of, is_daemonset_pod, is_mirror_pod, is_terminating, kubelet_back, lease_silent_for, meta, name_of,
    namespace_of,
    node_ready, parse_time, pod_pvc_names, pod_ready, rfc3339,
)

DEFAULT_LONGHORN_NAMESPACE = 'longhorn-system'   # Helm's default; the chart may install Longhorn elsewhere

__all__ = ['OOS_TAINT_KEY', 'OOS_TAINT_VALUE', 'APPLIED_BY', 'APPLIED_AT', 'check_fence', 'plan_force_detach',
           'cleanup_remaining', 'ForceDetach', 'STALE_READY_AFTER', 'proof_predates_lease', 'stale_ready_threshold']

#: The former fixed threshold (two renew intervals of a 40 s lease); kept for callers that name it.
STALE_READY_AFTER = 20.0
#: The kubelet renews its node Lease every leaseDurationSeconds x 0.25 (nodeLeaseRenewIntervalFraction), with
#: up to 4 % jitter (k8s.io/component-helpers/apimachinery/lease); a renewal may be in flight a little longer.
RENEW_FRACTION = 0.25
RENEW_JITTER = 0.04
RENEW_IN_FLIGHT = 2.0
DEFAULT_LEASE_DURATION = 40.0


def stale_ready_threshold(lease, configured=None):
    """Seconds of kubelet lease silence (on the API server's clock) that prove, together with a VERIFIED fence
    proof, that a node still reading Ready is down: ``configured`` when given, else one renew interval of the
    node's own Lease (leaseDurationSeconds x 0.25, plus the kubelet's jitter) plus the time a renewal may be in
    flight. A lease this silent has missed a renewal the kubelet would have made had it been running. (40 s
    lease, the kubelet default: 12.4 s.) This only corroborates the power proof, which stays required."""
    if configured:
        return float(configured)
    try:
        duration = float(((lease or {}).get('spec') or {}).get('leaseDurationSeconds') or DEFAULT_LEASE_DURATION)
    except (TypeError, ValueError):
        duration = DEFAULT_LEASE_DURATION
    if duration <= 0:
        duration = DEFAULT_LEASE_DURATION
    return round(duration * RENEW_FRACTION * (1 + RENEW_JITTER) + RENEW_IN_FLIGHT, 3)


OOS_TAINT_KEY = 'node.kubernetes.io/out-of-service'
OOS_TAINT_VALUE = 'nodeshutdown'
OOS_TAINT_EFFECT = 'NoExecute'
APPLIED_BY = 'node.kubernetes.io/out-of-service-applied-by'
APPLIED_AT = 'resilience.tazlab.io/out-of-service-applied-at'
DEFAULT_ACTOR = 'tazlab.resilience.longhorn_force_detach'
LONGHORN_DRIVER = 'driver.longhorn.io'

STRATEGIES = ('out_of_service', 'direct')


# --------------------------------------------------------------------------------------------------
# Pure planning
# --------------------------------------------------------------------------------------------------

def check_fence(node, fence, assume_fenced):
    """The fence verdict: (ok, info, reasons). Pure.

    info: {verified, assumed, system_uuid, smbios_uuid}. reasons: why it is not ok.
    """
    system_uuid = (((node or {}).get('status') or {}).get('nodeInfo') or {}).get('systemUUID') or ''
    info = {'verified': False, 'assumed': False, 'system_uuid': system_uuid, 'smbios_uuid': None}
    reasons = []
    if fence in (None, {}, ''):
        if assume_fenced:
            info['assumed'] = True
            return True, info, []
        return False, info, ['no fence proof: pass the registered result of tazlab.resilience.proxmox_fence for '
                             'this node as fence (or assume_fenced=true if you have powered it off yourself)']
    if not isinstance(fence, dict):
        return False, info, ['fence must be the registered result (a dict) of proxmox_fence']
    smbios = fence.get('smbios_uuid')
    info['smbios_uuid'] = smbios
    if fence.get('failed'):
        reasons.append('the fence task failed: {0}'.format(fence.get('msg') or 'no message'))
    if fence.get('fenced') is not True:
        reasons.append('the fence proof does not say fenced=true (fenced={0!r})'.format(fence.get('fenced')))
    power = fence.get('power_state_after')
    if power is not None and str(power).lower() != 'stopped':
        reasons.append('the fence proof reports power_state_after={0!r}, not stopped'.format(power))
    if not system_uuid:
        reasons.append('node has no status.nodeInfo.systemUUID: the proof cannot be matched to it')
    elif not smbios:
        reasons.append('the fence proof carries no smbios_uuid')
    elif str(smbios).strip().lower() != str(system_uuid).strip().lower():
        reasons.append('the fence proof is for SMBIOS UUID {0}, but node {1} has systemUUID {2}'.format(
            smbios, name_of(node), system_uuid))
    if reasons:
        return False, info, reasons
    info['verified'] = True
    return True, info, []


def proof_predates_lease(fence, lease, server_now, wall_now):
    """A reason when the fence proof is older than the kubelet lease's last renewal (a stale proof), else None.

    Pure. The proof's `timestamp` is on this controller's clock, the lease's renewTime on the cluster's:
    only durations of our own clock are used (the proof's age, wall_now - timestamp, is carried onto the
    API server's clock server_now), so clock offsets between the two do not matter.
    """
    if not isinstance(fence, dict) or server_now is None:
        return None
    taken = parse_time(fence.get('timestamp'))
    renew = parse_time(((lease or {}).get('spec') or {}).get('renewTime'))
    if taken is None or renew is None:
        return None
    age = max(0.0, wall_now - taken)
    taken_on_server = server_now - age
    if taken_on_server < renew:
        return ('the fence proof was taken {0:.0f}s ago, before the kubelet of the node last renewed its lease '
                '({1}): the node ran after that proof, so it proves nothing now (a stale proof)'.format(
                    age, rfc3339(renew)))
    return None


def _oos_taint(taints):
    for taint in taints or []:
        if taint.get('key') == OOS_TAINT_KEY:
            return taint
    return None


def _pv_index(pvs):
    """pv name -> {pv, pvc (ns/name), namespace, claim, handle, driver}."""
    index = {}
    for pv in pvs or []:
        spec = pv.get('spec') or {}
        claim = spec.get('claimRef') or {}
        csi = spec.get('csi') or {}
        index[name_of(pv)] = {
            'pv': name_of(pv),
            'pvc': '{0}/{1}'.format(claim.get('namespace'), claim.get('name')) if claim.get('name') else None,
            'namespace': claim.get('namespace'),
            'claim': claim.get('name'),
            'handle': csi.get('volumeHandle'),
            'driver': csi.get('driver'),
        }
    return index


def _scope(pv_index, pvcs, volumes):
    """Set of PV names in scope, or None for 'everything on the node'. Unknown selectors are reported."""
    if not pvcs and not volumes:
        return None, []
    scope, unknown = set(), []
    for want in pvcs or []:
        hits = [i['pv'] for i in pv_index.values() if i['pvc'] and (i['pvc'] == want or i['claim'] == want)]
        if not hits:
            unknown.append('PVC {0}'.format(want))
        scope.update(hits)
    for want in volumes or []:
        hits = [i['pv'] for i in pv_index.values() if want in (i['pv'], i['handle'])]
        if not hits:
            unknown.append('volume {0}'.format(want))
        scope.update(hits)
    return scope, unknown


def _pod_entry(pod, pvc_to_pv):
    owner = controller_of(pod)
    ns = namespace_of(pod)
    return {
        'namespace': ns,
        'name': name_of(pod),
        'uid': meta(pod).get('uid'),
        'phase': (pod.get('status') or {}).get('phase'),
        'terminating': is_terminating(pod),
        'owner': {'kind': owner[0], 'name': owner[1]} if owner else None,
        'pvcs': ['{0}/{1}'.format(ns, c) for c in pod_pvc_names(pod)],
        'pvs': [pvc_to_pv[(ns, c)] for c in pod_pvc_names(pod) if (ns, c) in pvc_to_pv],
    }


def _workload_of(pod_entry, replicasets):
    """(kind, namespace, name) of the workload a pod belongs to (ReplicaSet resolved to its Deployment)."""
    owner = pod_entry.get('owner')
    if not owner:
        return None
    ns = pod_entry['namespace']
    if owner['kind'] == 'ReplicaSet':
        rs = (replicasets or {}).get('{0}/{1}'.format(ns, owner['name']))
        parent = controller_of(rs) if rs else None
        if parent and parent[0] == 'Deployment':
            return ('Deployment', ns, parent[1])
        return ('ReplicaSet', ns, owner['name'])
    if owner['kind'] in ('StatefulSet', 'Deployment', 'ReplicaSet'):
        return (owner['kind'], ns, owner['name'])
    return None


def plan_force_detach(observed, params):
    """The plan, a pure function of the observed state and the parameters.

    observed: {node, pods (on the node), volume_attachments (all), pvs (all), longhorn (bool),
    longhorn_attachments, longhorn_volumes, replicasets ({ns/name: rs})}.
    params: {node, state, strategy, fence, assume_fenced, pvcs, volumes, actor, now}.
    """
    node_name = params['node']
    state = params.get('state') or 'present'
    strategy = params.get('strategy') or 'out_of_service'
    node = observed.get('node')
    plan = {
        'node': node_name, 'state': state, 'strategy': strategy, 'refused': [], 'warnings': [],
        'node_ready': None, 'fence': None, 'taint': None, 'taint_action': 'none', 'annotations': {},
        'pods': [], 'volume_attachments': [], 'longhorn_tickets': [], 'volumes': [], 'workloads': [],
        'volumes_in_use': [],
        'unmanaged_pods': [], 'longhorn': bool(observed.get('longhorn')), 'actions': [], 'changed': False,
    }
    if node is None:
        plan['refused'].append('node {0} does not exist'.format(node_name))
        return plan
    ready = node_ready(node)
    plan['node_ready'] = ready
    spec = node.get('spec') or {}
    current_taint = _oos_taint(spec.get('taints'))

    pv_index = _pv_index(observed.get('pvs'))
    pvc_to_pv = dict(((i['namespace'], i['claim']), i['pv']) for i in pv_index.values() if i['claim'])
    scope, unknown = _scope(pv_index, params.get('pvcs'), params.get('volumes'))
    for what in unknown:
        plan['warnings'].append('{0} matches no PersistentVolume'.format(what))

    def in_scope(pv):
        return scope is None or pv in scope

    # Pods on the node (for the direct steps and for verification).
    all_pods = [_pod_entry(p, pvc_to_pv) for p in observed.get('pods') or []
                if ((p.get('spec') or {}).get('nodeName') == node_name)]
    raw = dict(((namespace_of(p), name_of(p)), p) for p in observed.get('pods') or [])
    for entry in all_pods:
        pod = raw[(entry['namespace'], entry['name'])]
        if is_mirror_pod(pod):
            continue
        if is_daemonset_pod(pod) and not entry['terminating']:
            # A live DaemonSet pod would only be recreated on the same node; a terminating one still
            # has to go (nothing but a grace-0 delete removes it from a dead node).
            continue
        if scope is not None and not any(pv in scope for pv in entry['pvs']):
            continue
        plan['pods'].append(entry)
    plan['pods'].sort(key=lambda e: (e['namespace'], e['name']))

    # status.volumesInUse: what the (dead) kubelet last reported mounted. The attach/detach controller
    # keeps such a volume attached for maxWaitForUnmountDuration (6 min) on an unhealthy node; a powered-off
    # node mounts nothing, so the direct strategy clears these entries (in scope) and the controller
    # detaches at once instead of waiting for its timeout or its 1-minute resync after a VA deletion.
    handles_in_scope = None
    if scope is not None:
        handles_in_scope = set(pv_index[p]['handle'] or p for p in scope if p in pv_index) | set(scope)
    for entry in (node.get('status') or {}).get('volumesInUse') or []:
        handle = entry.rsplit('^', 1)[-1]
        if handles_in_scope is None or handle in handles_in_scope:
            plan['volumes_in_use'].append(entry)

    # VolumeAttachments naming the node (filtered client-side: no field selector exists for this).
    for va in observed.get('volume_attachments') or []:
        va_spec = va.get('spec') or {}
        if va_spec.get('nodeName') != node_name:
            continue
        pv = (va_spec.get('source') or {}).get('persistentVolumeName')
        if not in_scope(pv):
            continue
        plan['volume_attachments'].append({
            'name': name_of(va), 'pv': pv, 'attacher': va_spec.get('attacher'),
            'attached': bool((va.get('status') or {}).get('attached')), 'deleting': is_terminating(va),
            'finalizers': list(meta(va).get('finalizers') or []),
        })
    plan['volume_attachments'].sort(key=lambda e: e['name'])

    # Longhorn csi-attacher tickets that name the node.
    handle_to_pv = dict((i['handle'], i['pv']) for i in pv_index.values() if i['handle'])
    # A csi-attacher ticket's id is the name of the VolumeAttachment it serves: while that VA exists the
    # driver removes the ticket itself when the VA is released (ControllerUnpublishVolume); a ticket whose
    # VA is gone is stale and only a direct removal frees the volume.
    va_names = set(name_of(va) for va in observed.get('volume_attachments') or [])
    if plan['longhorn']:
        for lhva in observed.get('longhorn_attachments') or []:
            volume = (lhva.get('spec') or {}).get('volume') or name_of(lhva)
            pv = handle_to_pv.get(volume, volume)
            if scope is not None and pv not in scope:
                continue
            tickets = (lhva.get('spec') or {}).get('attachmentTickets') or {}
            for ticket_id in sorted(tickets):
                ticket = tickets[ticket_id] or {}
                if ticket.get('nodeID') == node_name and ticket.get('type') == 'csi-attacher':
                    plan['longhorn_tickets'].append({'attachment': name_of(lhva), 'volume': volume,
                                                     'ticket': ticket_id, 'type': ticket.get('type'),
                                                     'node': node_name, 'stale': ticket_id not in va_names})

    plan['longhorn_tickets'].sort(key=lambda t: (t['volume'], t['ticket']))

    # Volumes and workloads to verify.
    affected_pvs = set(va['pv'] for va in plan['volume_attachments'] if va['pv'])
    for entry in plan['pods']:
        affected_pvs.update(entry['pvs'])
    for ticket in plan['longhorn_tickets']:
        affected_pvs.add(handle_to_pv.get(ticket['volume'], ticket['volume']))
    for pv in sorted(p for p in affected_pvs if in_scope(p)):
        info = pv_index.get(pv, {'pv': pv, 'pvc': None, 'handle': None, 'driver': None})
        plan['volumes'].append({'pv': pv, 'pvc': info.get('pvc'), 'handle': info.get('handle'),
                                'driver': info.get('driver'),
                                'longhorn_volume': info.get('handle') if (plan['longhorn'] and info.get('driver') ==
                                                                          LONGHORN_DRIVER) else None})
    workloads = {}
    for entry in plan['pods']:
        workload = _workload_of(entry, observed.get('replicasets'))
        if workload is None:
            plan['unmanaged_pods'].append('{0}/{1}'.format(entry['namespace'], entry['name']))
            continue
        workloads[workload] = True
    plan['workloads'] = [{'kind': k, 'namespace': ns, 'name': n} for (k, ns, n) in sorted(workloads)]
    for pod in plan['unmanaged_pods']:
        plan['warnings'].append('pod {0} has no controller: once deleted nothing recreates it'.format(pod))

    # Absent: remove the taint (node back, or cleanup complete).
    if state == 'absent':
        if current_taint is None:
            return plan
        terminating = [p for p in all_pods if p['terminating']]
        pending = []
        if ready != 'True':
            if terminating:
                pending.append('{0} terminating pod(s) still on the node: {1}'.format(
                    len(terminating), ', '.join('{0}/{1}'.format(p['namespace'], p['name']) for p in terminating)))
            if plan['volume_attachments']:
                pending.append('VolumeAttachments still name the node: {0}'.format(
                    ', '.join(v['name'] for v in plan['volume_attachments'])))
        if pending:
            plan['refused'].append('cleanup is not complete and node {0} is not Ready; the out-of-service taint '
                                   'stays: {1}'.format(node_name, '; '.join(pending)))
            return plan
        plan['taint'] = dict(current_taint)
        plan['taint_action'] = 'remove'
        plan['actions'].append({'action': 'remove_taint', 'node': node_name, 'taint': dict(current_taint)})
        plan['changed'] = True
        return plan

    # Present: the ONE RULE first.
    if strategy not in STRATEGIES:
        plan['refused'].append('unknown strategy {0!r}'.format(strategy))
    fence_ok, fence_info, fence_reasons = check_fence(node, params.get('fence'), params.get('assume_fenced'))
    if ready == 'True':
        # Right after a power loss the node still reads Ready until the node lifecycle controller notices
        # (its grace period). A VERIFIED fence proof plus a kubelet lease that has stopped renewing (judged
        # on the API server's clock) proves that Ready is stale. Anything less keeps the node refused.
        silent = lease_silent_for(observed.get('lease'), observed.get('now'))
        stale_after = stale_ready_threshold(observed.get('lease'), params.get('stale_ready_after'))
        if fence_ok and fence_info['verified'] and silent is not None and silent >= stale_after:
            plan['ready_stale'] = {'lease_silent_seconds': round(silent, 1), 'threshold_seconds': stale_after}
            plan['warnings'].append(
                'node {0} still reads Ready, but its kubelet has not renewed its lease for {1:.0f}s and the fence '
                'proves its VM is off: the Ready condition is stale'.format(node_name, silent))
            plan['strategy_requested'] = strategy
            strategy = plan['strategy'] = 'direct'
            plan['warnings'].append('the node is tainted out-of-service (so nothing new is scheduled on it) and its '
                                    'storage is freed with the direct steps: pod GC waits for NotReady')
        else:
            detail = '' if silent is None else ' (its kubelet renewed its lease {0:.0f}s ago)'.format(silent)
            plan['refused'].append('node {0} is Ready{1}: it is running, so its storage stays where it is (a '
                                   'partitioned but running node is never force-detached)'.format(node_name, detail))
    else:
        alive, renew, since = kubelet_back(node, observed.get('lease'))
        if alive:
            plan['refused'].append('the kubelet of node {0} renewed its lease ({1}) after the node went {2} '
                                   '({3}): it is running again, whatever the fence proof says'.format(
                                       node_name, rfc3339(renew), 'NotReady' if ready == 'False' else
                                       'Unknown', rfc3339(since)))
    if fence_reasons and params.get('check_mode') and params.get('assume_fenced'):
        # Check mode writes nothing: with assume_fenced it shows the plan as if the fence had been confirmed
        # (a runbook's fence only planned in check mode too), and says why the proof would not do for real.
        fence_info['assumed'] = True
        plan['warnings'].extend('check mode: {0} (a real run refuses this proof)'.format(r) for r in fence_reasons)
        fence_reasons = []
    plan['fence'] = fence_info
    plan['refused'].extend(fence_reasons)
    if fence_info['assumed'] and not plan['refused']:
        # Only for a node this run would free: a refused node keeps its storage, nothing is assumed of it.
        plan['warnings'].append('ASSUMED FENCED: node {0} was not proven powered off (assume_fenced=true); '
                                'if it is still running its volumes may get two writers'.format(node_name))
    if plan['refused']:
        plan['actions'] = []
        return plan

    wanted = {'key': OOS_TAINT_KEY, 'value': OOS_TAINT_VALUE, 'effect': OOS_TAINT_EFFECT}
    plan['taint'] = wanted
    if plan.get('ready_stale'):
        # The node still reads Ready, so it is still schedulable: replacements would be placed on the dead
        # node. The out-of-service taint (true: the fence proved it is shut down) keeps them away; the direct
        # steps then free the storage at once, since pod GC waits for NotReady.
        if current_taint is None:
            plan['taint_action'] = 'add'
            plan['annotations'] = {APPLIED_BY: params.get('actor') or DEFAULT_ACTOR,
                                   APPLIED_AT: params.get('now') or rfc3339()}
            plan['actions'].append({'action': 'taint_node', 'node': node_name, 'taint': dict(wanted),
                                    'annotations': dict(plan['annotations'])})
        else:
            plan['taint_action'] = 'keep'
        plan['actions'].extend(direct_actions(plan))
    elif strategy == 'out_of_service':
        if current_taint is None:
            plan['taint_action'] = 'add'
            plan['annotations'] = {APPLIED_BY: params.get('actor') or DEFAULT_ACTOR,
                                   APPLIED_AT: params.get('now') or rfc3339()}
            plan['actions'].append({'action': 'taint_node', 'node': node_name, 'taint': dict(wanted),
                                    'annotations': dict(plan['annotations'])})
        else:
            plan['taint_action'] = 'keep'
    else:
        plan['actions'].extend(direct_actions(plan))
    plan['changed'] = bool(plan['actions'])
    return plan


def direct_actions(plan):
    """The direct steps in Longhorn's order (longhorn-manager ``handlePodDeletionIfNodeDown``): the
    VolumeAttachments first, stale Longhorn tickets and the node's volumesInUse, and only once those
    VolumeAttachments are gone (the executor waits) the pods. A pod force-deleted first gets its
    replacement created at once, which hits Multi-Attach and the kubelet's growing retry back-off."""
    actions = []
    for va in plan['volume_attachments']:
        if not va['deleting']:
            actions.append({'action': 'delete_volume_attachment', 'name': va['name'], 'pv': va['pv']})
    for ticket in plan['longhorn_tickets']:
        if ticket['stale']:
            actions.append({'action': 'remove_longhorn_ticket', 'attachment': ticket['attachment'],
                            'volume': ticket['volume'], 'ticket': ticket['ticket']})
    if plan.get('volumes_in_use'):
        actions.append({'action': 'clear_volumes_in_use', 'node': plan['node'], 'remove': list(plan['volumes_in_use'])})
    for pod in plan['pods']:
        actions.append({'action': 'force_delete_pod', 'namespace': pod['namespace'], 'name': pod['name'],
                        'uid': pod['uid']})
    return actions


def cleanup_remaining(observed, plan):
    """What still ties the node: terminating pods on it, planned pods, VAs and tickets naming it. Pure."""
    fresh = plan_like(observed, plan)
    return {
        'pods': sorted('{0}/{1}'.format(p['namespace'], p['name']) for p in fresh['pods']),
        'terminating_pods': sorted('{0}/{1}'.format(p['namespace'], p['name']) for p in fresh['pods']
                                   if p['terminating']),
        'volume_attachments': sorted(v['name'] for v in fresh['volume_attachments']),
        'longhorn_tickets': sorted('{0}:{1}'.format(t['volume'], t['ticket']) for t in fresh['longhorn_tickets']),
    }


def plan_like(observed, plan):
    """Re-plan the object sets (not the rules) for the same node and scope on a new observation."""
    params = dict(plan.get('_params') or {})
    params.update({'node': plan['node'], 'state': 'present', 'assume_fenced': True, 'fence': None,
                   'strategy': 'direct'})
    node = copy.deepcopy(observed.get('node')) or {'metadata': {'name': plan['node']}}
    # Readiness is judged by the caller; here only the object sets matter.
    node.setdefault('status', {})['conditions'] = [{'type': 'Ready', 'status': 'Unknown'}]
    obs = dict(observed)
    obs['node'] = node
    return plan_force_detach(obs, params)


# --------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------

class ForceDetach(object):
    """Observe, plan and carry out a force-detach through a K8sClient.

    options: node, state, strategy, fence, assume_fenced, pvcs, volumes, actor, wait, wait_timeout,
    poll_interval, stall_timeout, finalizer_timeout, strip_finalizers.
    """

    def __init__(self, client, options, clock=time.monotonic, sleep=time.sleep, now=None, power_check=None,
                 wall=time.time):
        self.client = client
        self.options = dict(options)
        # power_check(system_uuid, node_name) -> (ok, info, reasons): Proxmox read NOW (see
        # proxmox/identity.confirm_powered_off); None when the module has no Proxmox access.
        self.power_check = power_check
        self.wall = wall
        self.power = None
        self.clock = clock
        self.sleep = sleep
        self.now = now or rfc3339
        self.start = clock()
        self.events = []
        self.finalizers_stripped = []
        self.written = []
        self._deleting_since = {}
        self._stale_renew = None  # the kubelet lease renewTime that proved a stale Ready, if one did
        # Read once per run: PersistentVolumes (the planned volumes do not change while we free them) and the
        # ReplicaSets of the node's pods (a ReplicaSet's Deployment does not change), one list per namespace.
        self._pvs = None
        self._replicasets = {}
        self._rs_namespaces = set()

    def elapsed(self):
        return round(self.clock() - self.start, 3)

    def _event(self, what, **details):
        entry = {'t': self.elapsed(), 'event': what}
        entry.update(details)
        self.events.append(entry)

    # -- observation ------------------------------------------------------------------------------
    def observe(self):
        """The observed state (with the API server's time, to judge the kubelet lease's silence)."""
        node_name = self.options['node']
        try:
            node = self.client.get_node(node_name)
        except K8sError as exc:
            if exc.kind != NOT_FOUND:
                raise
            node = None
        observed = {'node': node, 'pods': [], 'volume_attachments': [], 'pvs': [], 'longhorn': False,
                    'longhorn_attachments': [], 'longhorn_volumes': [], 'replicasets': {}, 'lease': None}
        if node is None:
            return observed
        observed['lease'] = self.client.get_node_lease(node_name)
        observed['now'] = getattr(self.client, 'server_time', None)
        observed['pods'] = self.client.pods_on_node(node_name)
        observed['volume_attachments'] = self.client.list_volume_attachments()
        if self._pvs is None:
            self._pvs = self.client.list_pvs()
        observed['pvs'] = self._pvs
        observed['longhorn'] = self.client.has_api('longhorn.io', 'v1beta2')
        if observed['longhorn']:
            observed['longhorn_attachments'] = self._list_longhorn('volumeattachments')
            observed['longhorn_volumes'] = self._list_longhorn('volumes')
        for pod in observed['pods']:
            owner = controller_of(pod)
            if owner and owner[0] == 'ReplicaSet':
                ns = namespace_of(pod)
                key = '{0}/{1}'.format(ns, owner[1])
                if key not in self._replicasets and ns not in self._rs_namespaces:
                    # One list per namespace instead of one GET per ReplicaSet (a dense node has hundreds).
                    self._rs_namespaces.add(ns)
                    for rs in self.client.list_workloads('ReplicaSet', ns):
                        self._replicasets['{0}/{1}'.format(ns, name_of(rs))] = rs
                if key in self._replicasets:
                    observed['replicasets'][key] = self._replicasets[key]
        return observed

    def _longhorn_namespace(self):
        return self.options.get('longhorn_namespace') or DEFAULT_LONGHORN_NAMESPACE

    def _list_longhorn(self, plural):
        try:
            return self.client.list_custom(plural, namespace=self._longhorn_namespace())
        except K8sError as exc:
            if exc.kind == NOT_FOUND:   # the group exists but not this resource (Longhorn < 1.5)
                return []
            raise

    def plan(self, observed=None, strategy=None, check_mode=False):
        observed = observed if observed is not None else self.observe()
        params = dict(self.options)
        params['now'] = self.now()
        params['check_mode'] = check_mode
        if strategy:
            params['strategy'] = strategy
        plan = plan_force_detach(observed, params)
        plan['_params'] = {'pvcs': self.options.get('pvcs'), 'volumes': self.options.get('volumes'),
                           'actor': self.options.get('actor')}
        return plan

    # -- run --------------------------------------------------------------------------------------
    def run(self, check_mode=False):
        """Returns the result dict (without Ansible specifics). Raises RefusedError on a refusal."""
        observed = self.observe()
        if not check_mode:
            observed = self._await_stale_ready(observed)
        plan = self.plan(observed, check_mode=check_mode)
        if plan.get('ready_stale'):
            self._stale_renew = ((observed.get('lease') or {}).get('spec') or {}).get('renewTime')
        result = {'changed': False, 'plan': public_plan(plan), 'warnings': list(plan['warnings']),
                  'strategy': plan['strategy'], 'volumes': list(plan['volumes']), 'workloads': list(plan['workloads']),
                  'fence': plan['fence'], 'assumed_fenced': bool(plan['fence'] and plan['fence']['assumed']),
                  'fallback': {'used': False}, 'finalizers_stripped': [], 'verification': None, 'events': []}
        if plan['refused']:
            raise RefusedError('refusing to force-detach node {0}: {1}'.format(plan['node'],
                                                                               '; '.join(plan['refused'])),
                               plan['refused'])
        if plan['state'] == 'present' and plan['actions']:
            self._verify_power_now(observed, plan, result, check_mode)
        if check_mode:
            result['changed'] = plan['changed']
            return result

        if plan['state'] == 'absent':
            if plan['taint_action'] == 'remove':
                self._remove_taint()
                result['changed'] = True
            result['events'] = self.events
            return result

        if plan['strategy'] == 'out_of_service':
            if plan['taint_action'] == 'add':
                self._add_taint(plan['annotations'])
            if self.options.get('wait', True):
                self._await_cleanup(plan, result)
        else:
            if plan['taint_action'] == 'add':  # a node that still reads Ready (stale): keep new pods away first
                self._add_taint(plan['annotations'])
            self._direct(plan)
            if self.options.get('wait', True):
                self._await_attachments_released(plan)

        if self.options.get('wait', True):
            result['verification'] = self.verify(plan)
            result['volumes'] = result['verification']['volumes']
            result['workloads'] = result['verification']['workloads']
        result['changed'] = bool(self.written)
        result['actions_done'] = self.written
        result['finalizers_stripped'] = self.finalizers_stripped
        result['events'] = self.events
        return result

    def _verify_power_now(self, observed, plan, result, check_mode):
        """Right before the first write: the proof must postdate the kubelet's last lease renewal, and Proxmox,
        read now, must show exactly one VM carrying the node's SMBIOS UUID, stopped. Without Proxmox access
        only assume_fenced lets the run go on (loudly). Raises RefusedError; in check mode, warns instead
        when assume_fenced (the runbook's fence only planned)."""
        node = observed.get('node') or {}
        uuid = ((node.get('status') or {}).get('nodeInfo') or {}).get('systemUUID')
        reasons = []
        fence = self.options.get('fence')
        if fence and plan['fence'] and plan['fence'].get('verified'):
            stale = proof_predates_lease(fence, observed.get('lease'), observed.get('now'), self.wall())
            if stale:
                reasons.append(stale)
        if self.power_check is None:
            if check_mode and not self.options.get('assume_fenced'):
                result['warnings'].append('check mode: no proxmox_auth, so the power state is not read; a real run '
                                          'without it refuses unless assume_fenced=true')
            elif not self.options.get('assume_fenced'):
                reasons.append('no Proxmox access to confirm, right before freeing, that the VM carrying SMBIOS UUID '
                               '{0} is powered off now: give proxmox_auth (a fence proof alone is a claim, not a '
                               'power reading), or assume_fenced=true if you have powered it off '
                               'yourself'.format(uuid))
            else:
                result['warnings'].append('ASSUMED FENCED: the power state of node {0} was not read from Proxmox '
                                          'before freeing (no proxmox_auth, assume_fenced=true)'.format(plan['node']))
            self.power = {'checked': False}
        else:
            try:
                ok, info, why = self.power_check(uuid, plan['node'])
            except Exception as exc:  # a Proxmox error: power cannot be confirmed
                ok, info, why = False, {}, ['cannot read Proxmox to confirm node {0} is powered off: {1}'.format(
                    plan['node'], getattr(exc, 'message', None) or exc)]
            self.power = dict(info, checked=True, confirmed_off=ok)
            reasons.extend(why)
        result['power_check'] = self.power
        self._event('power checked', **self.power)
        if reasons and check_mode and self.options.get('assume_fenced'):
            result['warnings'].extend('check mode: {0} (a real run refuses)'.format(r) for r in reasons)
            return
        if reasons:
            raise RefusedError('refusing to force-detach node {0}: {1}'.format(plan['node'], '; '.join(reasons)),
                               reasons)

    def _await_stale_ready(self, observed):
        """A node just powered off still reads Ready. With a verified fence proof, wait (bounded by
        stale_wait) until its kubelet lease has been silent long enough to prove the Ready condition stale,
        or the node goes NotReady; stop at once if the lease is renewed (the node is alive)."""
        node = observed.get('node')
        if node is None or node_ready(node) != 'True' or self.options.get('state', 'present') != 'present':
            return observed
        fence_ok, info, _reasons = check_fence(node, self.options.get('fence'), self.options.get('assume_fenced'))
        if not (fence_ok and info['verified']):
            return observed
        threshold = stale_ready_threshold(observed.get('lease'), self.options.get('stale_ready_after'))
        first_renew = ((observed.get('lease') or {}).get('spec') or {}).get('renewTime')
        deadline = self.clock() + float(self.options.get('stale_wait') or 0)
        while self.clock() < deadline:
            node = self.client.get_node(self.options['node'])
            lease = self.client.get_node_lease(self.options['node'])
            renew = ((lease or {}).get('spec') or {}).get('renewTime')
            silent = lease_silent_for(lease, getattr(self.client, 'server_time', None))
            if node_ready(node) != 'True' or renew != first_renew or (silent is not None and silent >= threshold):
                break
            # Sleep until the silence is due (the API server's Date has whole seconds, so it can read up to 1s
            # short: the next round then comes 0.2s later), never longer than a poll interval: a renewal
            # (the node is alive) is still seen within one.
            interval = float(self.options.get('poll_interval') or 2)
            due = interval if silent is None else threshold - silent
            self.sleep(max(0.2, min(interval, due, deadline - self.clock())))
        self.events.append({'event': 'waited for the stale Ready condition', 'at': rfc3339()})
        return self.observe()

    # -- guarded writes ---------------------------------------------------------------------------
    def _guard(self, node, lease='read'):
        """Re-check the ONE RULE on a fresh node object (and its kubelet's Lease) right before a destructive
        write: not Ready, and no lease renewal since it went NotReady. lease: the Lease if just observed."""
        if node is None:
            raise RefusedError('node {0} disappeared'.format(self.options['node']))
        if lease == 'read':
            lease = self.client.get_node_lease(self.options['node'])
        if node_ready(node) == 'True':
            renew = ((lease or {}).get('spec') or {}).get('renewTime')
            if self._stale_renew is None or renew != self._stale_renew:
                raise RefusedError('node {0} became Ready and its kubelet renews its lease: it is running, stopping '
                                   'before any further detach'.format(self.options['node']))
            return
        if kubelet_back(node, lease)[0]:
            raise RefusedError('the kubelet of node {0} renews its lease again: it is running, stopping '
                               'before any further detach'.format(self.options['node']))

    def _add_taint(self, annotations):
        name = self.options['node']

        def modify(node):
            self._guard(node)
            taints = list((node.get('spec') or {}).get('taints') or [])
            if _oos_taint(taints) is not None:
                return None
            taints.append({'key': OOS_TAINT_KEY, 'value': OOS_TAINT_VALUE, 'effect': OOS_TAINT_EFFECT,
                           'timeAdded': self.now()})
            return {'metadata': {'resourceVersion': meta(node).get('resourceVersion'),
                                 'annotations': dict(annotations)},
                    'spec': {'taints': taints}}

        written = self.client.read_modify_write('taint node {0}'.format(name), lambda: self.client.get_node(name),
                                                modify, lambda body: self.client.patch_node(name, body))[0]
        if written:
            self.written.append({'action': 'taint_node', 'node': name, 't': self.elapsed()})
            self._event('tainted', node=name)

    def _remove_taint(self):
        name = self.options['node']

        def modify(node):
            taints = list((node.get('spec') or {}).get('taints') or [])
            keep = [t for t in taints if t.get('key') != OOS_TAINT_KEY]
            if len(keep) == len(taints):
                return None
            annotations = meta(node).get('annotations') or {}
            patch = {'metadata': {'resourceVersion': meta(node).get('resourceVersion')}, 'spec': {'taints': keep}}
            drop = dict((k, None) for k in (APPLIED_BY, APPLIED_AT) if k in annotations)
            if drop:
                patch['metadata']['annotations'] = drop
            return patch

        written = self.client.read_modify_write('untaint node {0}'.format(name), lambda: self.client.get_node(name),
                                                modify, lambda body: self.client.patch_node(name, body))[0]
        if written:
            self.written.append({'action': 'remove_taint', 'node': name, 't': self.elapsed()})
            self._event('untainted', node=name)

    def _direct(self, plan):
        # Fresh guard: the node must still be not Ready right now.
        self._guard(self._get_node_or_none())
        vas_first = [a['name'] for a in plan['actions'] if a['action'] == 'delete_volume_attachment']
        vas_first += [v['name'] for v in plan.get('volume_attachments') or [] if v.get('deleting')]
        waited = False
        for action in plan['actions']:
            kind = action['action']
            if kind == 'force_delete_pod' and vas_first and not waited:
                waited = True
                self._await_vas_gone(plan, vas_first)   # Longhorn's order: the VAs are gone before any pod
                self._guard(self._get_node_or_none())
            try:
                if kind == 'force_delete_pod':
                    self.client.delete_pod(action['namespace'], action['name'], grace_period_seconds=0)
                elif kind == 'clear_volumes_in_use':
                    self._clear_volumes_in_use(action['remove'])
                elif kind == 'delete_volume_attachment':
                    self.client.delete_volume_attachment(action['name'])
                elif kind == 'remove_longhorn_ticket':
                    self.client.patch_custom('volumeattachments', action['attachment'],
                                             {'spec': {'attachmentTickets': {action['ticket']: None}}},
                                             namespace=self._longhorn_namespace())
                else:
                    continue
            except K8sError as exc:
                if exc.kind == NOT_FOUND:
                    self._event('already_gone', action=kind, target=_target(action))
                    continue
                raise
            done = dict(action)
            done['t'] = self.elapsed()
            self.written.append(done)
            self._event(kind, target=_target(action))

    def _await_vas_gone(self, plan, names):
        """Wait until the VolumeAttachments just deleted have disappeared (the driver detached them)."""
        names = set(names)
        since = self.clock()
        poll = self._poller()
        limit = float(self.options.get('finalizer_timeout') or 60)
        while True:
            # One list per round (VolumeAttachments have no field selector for the node).
            left = sorted(v['metadata']['name'] for v in self.client.list_volume_attachments()
                          if v['metadata']['name'] in names)
            if not left:
                self._event('volume_attachments_gone', waited_s=round(self.clock() - since, 3))
                return
            if self.clock() >= self._deadline():
                raise K8sError('timeout', 'VolumeAttachments {0} of node {1} not gone within wait_timeout; the pods '
                               'were not force-deleted'.format(', '.join(left), plan['node']))
            for name in left:
                self._deleting_since.setdefault(name, since)
            if self.options.get('strip_finalizers', True) and \
                    any(self.clock() - self._deleting_since[name] >= limit for name in left):
                self._maybe_strip_finalizers(self.observe(), plan)
            poll()

    def _clear_volumes_in_use(self, remove):
        name = self.options['node']

        def modify(node):
            self._guard(node)
            in_use = list((node.get('status') or {}).get('volumesInUse') or [])
            keep = [v for v in in_use if v not in remove]
            if len(keep) == len(in_use):
                return None
            # JSON merge patch: the list is replaced; the resourceVersion makes a concurrent write a 409.
            return {'metadata': {'resourceVersion': meta(node).get('resourceVersion')},
                    'status': {'volumesInUse': keep}}

        self.client.read_modify_write('clear volumesInUse of node {0}'.format(name),
                                      lambda: self.client.get_node(name), modify,
                                      lambda body: self.client.patch_node_status(name, body))

    def _get_node_or_none(self):
        try:
            return self.client.get_node(self.options['node'])
        except K8sError as exc:
            if exc.kind == NOT_FOUND:
                return None
            raise

    # -- waiting ----------------------------------------------------------------------------------
    def _deadline(self):
        return self.start + float(self.options.get('wait_timeout') or 300)

    def _poll(self):
        self.sleep(float(self.options.get('poll_interval') or 2))

    def _poller(self, first=0.25, factor=1.5):
        """A sleep for waits the cluster usually ends in a second or two: 0.25s, then growing by half up to
        poll_interval (bounded requests, a quick answer seen quickly)."""
        state = {'next': min(first, float(self.options.get('poll_interval') or 2))}

        def poll():
            interval = float(self.options.get('poll_interval') or 2)
            self.sleep(min(state['next'], interval))
            state['next'] = min(interval, state['next'] * factor)
        return poll

    def _await_cleanup(self, plan, result):
        """out_of_service: wait for Kubernetes to clean up; fall back to the direct steps on a stall."""
        stall = float(self.options.get('stall_timeout') or 60)
        last_progress = self.clock()
        last_count = None
        poll = self._poller()
        while True:
            observed = self.observe()
            self._guard(observed['node'], observed.get('lease'))
            remaining = cleanup_remaining(observed, plan)
            count = len(remaining['pods']) + len(remaining['volume_attachments']) + len(remaining['longhorn_tickets'])
            if count == 0:
                self._event('cleanup_complete', by='kubernetes' if not result['fallback']['used'] else 'fallback')
                return
            if last_count is None or count < last_count:
                last_progress = self.clock()
                last_count = count
            now = self.clock()
            if now >= self._deadline():
                raise K8sError('timeout', 'cleanup of node {0} not complete within wait_timeout: {1}'.format(
                    plan['node'], remaining))
            if not result['fallback']['used'] and now - last_progress >= stall:
                fresh = self.plan(observed, strategy='direct')
                if fresh['refused']:
                    raise RefusedError('fallback refused: {0}'.format('; '.join(fresh['refused'])), fresh['refused'])
                result['fallback'] = {'used': True, 'after_s': round(now - last_progress, 3), 'at': self.elapsed(),
                                      'remaining': remaining, 'actions': list(fresh['actions'])}
                self._event('fallback_direct', remaining=remaining)
                self._direct(fresh)
                last_progress = self.clock()
                continue
            self._maybe_strip_finalizers(observed, plan)
            poll()

    def _await_attachments_released(self, plan):
        """direct: wait until no VA or ticket names the node (stripping finalizers as a last resort)."""
        poll = self._poller()
        while True:
            observed = self.observe()
            remaining = cleanup_remaining(observed, plan)
            if not remaining['volume_attachments'] and not remaining['longhorn_tickets'] and not remaining['pods']:
                return
            if self.clock() >= self._deadline():
                raise K8sError('timeout', 'attachments of node {0} not released within wait_timeout: {1}'.format(
                    plan['node'], remaining))
            self._guard(observed['node'], observed.get('lease'))
            fresh = self.plan(observed, strategy='direct')
            # Objects that appeared or were left behind (e.g. a pod deleted by grace before) get the steps again.
            leftovers = [a for a in fresh['actions'] if a['action'] != 'delete_volume_attachment' or
                         not any(w.get('name') == a.get('name') for w in self.written)]
            if leftovers and not fresh['refused']:
                fresh = dict(fresh)
                fresh['actions'] = leftovers
                self._direct(fresh)
            self._maybe_strip_finalizers(observed, plan)
            poll()

    def _maybe_strip_finalizers(self, observed, plan):
        """Strip finalizers from VAs naming the node that stayed deleting past finalizer_timeout."""
        if not self.options.get('strip_finalizers', True):
            return
        limit = float(self.options.get('finalizer_timeout') or 60)
        since = self._deleting_since
        fresh = plan_like(observed, plan)
        for va in fresh['volume_attachments']:
            if not va['deleting'] or not va['finalizers']:
                continue
            first = since.setdefault(va['name'], self.clock())
            if self.clock() - first < limit:
                continue
            self._guard(self._get_node_or_none())
            try:
                self.client.patch_volume_attachment(va['name'], {'metadata': {'finalizers': None}})
            except K8sError as exc:
                if exc.kind == NOT_FOUND:
                    continue
                raise
            entry = {'volume_attachment': va['name'], 'pv': va['pv'], 'finalizers': va['finalizers'],
                     'waited_s': round(self.clock() - first, 3), 't': self.elapsed(),
                     'reason': 'still deleting after {0:g}s: the driver did not release it'.format(limit)}
            self.finalizers_stripped.append(entry)
            self.written.append({'action': 'strip_finalizers', 'name': va['name'], 't': self.elapsed()})
            self._event('finalizers_stripped', target=va['name'], finalizers=va['finalizers'])

    # -- verification -----------------------------------------------------------------------------
    def verify(self, plan):
        """Poll until every check holds or wait_timeout; per-volume and per-workload report with times."""
        node_name = plan['node']
        volumes = dict((v['pv'], {'pv': v['pv'], 'pvc': v['pvc'], 'longhorn_volume': v['longhorn_volume'],
                                  'ok': False, 'node': None, 'state': None, 'robustness': None, 'ok_at': None})
                       for v in plan['volumes'])
        workloads = dict(('{kind}/{namespace}/{name}'.format(**w), dict(w, ok=False, ready=0, desired=None,
                                                                        ok_at=None)) for w in plan['workloads'])
        checks = {'no_terminating_pods': None, 'no_volume_attachments': None, 'no_longhorn_tickets': None}
        poll = self._poller(first=0.5)
        while True:
            observed = self.observe()
            # One list of pods per namespace concerned and one list per workload kind and namespace, per round
            # (not a GET per workload and a list per volume): requests grow with namespaces, not with objects.
            self._round = {'pods': {}, 'workloads': {}}
            remaining = cleanup_remaining(observed, plan)
            checks_now = {'no_terminating_pods': not remaining['terminating_pods'],
                          'no_volume_attachments': not remaining['volume_attachments'],
                          'no_longhorn_tickets': not self._tickets_naming(observed, plan)}
            for key, value in checks_now.items():
                if value and checks[key] is None:
                    checks[key] = self.elapsed()
                elif not value:
                    checks[key] = None
            self._check_volumes(observed, plan, volumes)
            self._check_workloads(plan, workloads)
            done = all(v is not None for v in checks.values()) and all(v['ok'] for v in volumes.values()) and \
                all(w['ok'] for w in workloads.values())
            if done or self.clock() >= self._deadline():
                report = {
                    'ok': done, 'elapsed_s': self.elapsed(),
                    'checks': dict((k, {'ok': v is not None, 'at': v}) for k, v in checks.items()),
                    'volumes': [volumes[k] for k in sorted(volumes)],
                    'workloads': [workloads[k] for k in sorted(workloads)],
                }
                if not done:
                    raise VerificationFailed('recovery of node {0} not verified within wait_timeout'.format(node_name),
                                             report)
                return report
            poll()

    def _tickets_naming(self, observed, plan):
        if not observed.get('longhorn'):
            return []
        wanted = set(v['longhorn_volume'] for v in plan['volumes'] if v['longhorn_volume'])
        out = []
        for lhva in observed.get('longhorn_attachments') or []:
            volume = (lhva.get('spec') or {}).get('volume') or name_of(lhva)
            if wanted and volume not in wanted:
                continue
            for tid, ticket in ((lhva.get('spec') or {}).get('attachmentTickets') or {}).items():
                if (ticket or {}).get('nodeID') == plan['node']:
                    out.append('{0}:{1}'.format(volume, tid))
        return out

    def _consumers(self, pvc):
        """Nodes of live (not terminating, scheduled) pods that mount the PVC 'ns/name'."""
        if not pvc:
            return []
        ns, claim = pvc.split('/', 1)
        nodes = []
        for pod in self._pods_in(ns):
            if is_terminating(pod) or claim not in pod_pvc_names(pod):
                continue
            if (pod.get('status') or {}).get('phase') in ('Succeeded', 'Failed'):
                continue
            node = (pod.get('spec') or {}).get('nodeName')
            if node:
                nodes.append(node)
        return nodes

    def _check_volumes(self, observed, plan, volumes):
        old = plan['node']
        lh_volumes = dict((name_of(v), v) for v in observed.get('longhorn_volumes') or [])
        for pv, entry in volumes.items():
            consumers = self._consumers(entry['pvc'])
            if entry['longhorn_volume'] and entry['longhorn_volume'] in lh_volumes:
                status = lh_volumes[entry['longhorn_volume']].get('status') or {}
                entry['state'] = status.get('state')
                entry['robustness'] = status.get('robustness')
                attached_to = status.get('currentNodeID') if status.get('state') == 'attached' else None
                faulted = status.get('robustness') == 'faulted'
            else:
                attached_to = None
                for va in observed.get('volume_attachments') or []:
                    spec = va.get('spec') or {}
                    if (spec.get('source') or {}).get('persistentVolumeName') == pv and \
                            (va.get('status') or {}).get('attached') and not is_terminating(va):
                        attached_to = spec.get('nodeName')
                entry['state'] = 'attached' if attached_to else 'detached'
                faulted = False
            entry['node'] = attached_to
            entry['consumers'] = sorted(set(consumers))
            if consumers:
                ok = attached_to is not None and attached_to != old and attached_to in consumers and not faulted
            else:
                ok = attached_to != old and not faulted
            if ok and not entry['ok']:
                entry['ok_at'] = self.elapsed()
            if not ok:
                entry['ok_at'] = None
            entry['ok'] = ok

    def _round_cache(self):
        cache = getattr(self, '_round', None)
        if cache is None:
            cache = self._round = {'pods': {}, 'workloads': {}}
        return cache

    def _pods_in(self, namespace):
        """The pods of a namespace, listed once per verification round."""
        cache = self._round_cache()['pods']
        if namespace not in cache:
            cache[namespace] = self.client.list_pods(namespace=namespace)
        return cache[namespace]

    def _workload(self, kind, namespace, name):
        """A workload from one list per kind and namespace per verification round (None when it is gone)."""
        cache = self._round_cache()['workloads']
        if (kind, namespace) not in cache:
            cache[(kind, namespace)] = dict((name_of(o), o) for o in self.client.list_workloads(kind, namespace))
        return cache[(kind, namespace)].get(name)

    def _check_workloads(self, plan, workloads):
        for key, entry in workloads.items():
            obj = self._workload(entry['kind'], entry['namespace'], entry['name'])
            if obj is None:
                entry.update(ok=True, desired=0, ready=0, note='workload is gone')
                continue
            spec = obj.get('spec') or {}
            desired = spec.get('replicas')
            desired = 1 if desired is None else int(desired)
            match = (spec.get('selector') or {}).get('matchLabels') or {}
            # The label selector applied to the namespace's pods (the same matchLabels a labelSelector sends).
            pods = [p for p in self._pods_in(entry['namespace'])
                    if all((meta(p).get('labels') or {}).get(k) == v for k, v in match.items())]
            running = [p for p in pods if pod_ready(p) and (p.get('spec') or {}).get('nodeName') != plan['node']]
            entry['desired'] = desired
            entry['ready'] = len(running)
            entry['pods'] = sorted('{0}@{1}'.format(name_of(p), (p.get('spec') or {}).get('nodeName'))
                                   for p in running)
            ok = len(running) >= desired
            if ok and not entry['ok']:
                entry['ok_at'] = self.elapsed()
            if not ok:
                entry['ok_at'] = None
            entry['ok'] = ok


class VerificationFailed(K8sError):
    def __init__(self, message, report):
        super(VerificationFailed, self).__init__('timeout', message)
        self.report = report


def _target(action):
    if 'namespace' in action:
        return '{0}/{1}'.format(action['namespace'], action['name'])
    if 'ticket' in action:
        return '{0}:{1}'.format(action['volume'], action['ticket'])
    return action.get('name')


def public_plan(plan):
    return dict((k, v) for k, v in plan.items() if not k.startswith('_'))
