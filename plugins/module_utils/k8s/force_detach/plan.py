# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The force-detach plan: pure functions from an observed snapshot (dicts as the API serves them) to a plan.

THE ONE RULE: never detach storage from, taint out-of-service, or force-delete the pods of a node that
is not confirmed powered off. Here "confirmed" means: the node is not Ready AND either the registered
result of ``proxmox_fence`` says ``fenced: true`` for a VM whose SMBIOS UUID equals the node's
``status.nodeInfo.systemUUID`` (case-insensitive), or the operator said ``assume_fenced: true`` with no
proof at all (reported loudly). A proof that contradicts (not fenced, another UUID, a failed task)
is a refusal even with ``assume_fenced``.

A ``proxmox_fence`` run in check mode stops nothing: for a VM a real run would stop it returns a PREDICTED
proof (``predicted: true``, ``fenced: false``). Check mode plans with it (what a real run would refuse becomes
a check-mode warning); a real run refuses it (PREDICTED_NOT_A_PROOF), whatever else it says.

``plan_force_detach(observed, params)`` gives the refusals, the fence verdict, the taint, the pods,
VolumeAttachments and Longhorn attachment tickets concerned, the volumes and workloads to verify, and the
ordered actions. Any CSI driver's VolumeAttachments are freed; Longhorn's tickets are handled when the
Longhorn API group is there.
"""

from __future__ import annotations

import copy

from ansible_collections.tazlab.resilience.plugins.module_utils import names
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    controller_of, is_daemonset_pod, is_mirror_pod, is_terminating, kubelet_back, lease_silent_for, meta, name_of,
    namespace_of, node_ready, parse_time, pod_pvc_names, rfc3339,
)

__all__ = ['OOS_TAINT_KEY', 'OOS_TAINT_VALUE', 'OOS_TAINT_EFFECT', 'APPLIED_BY', 'APPLIED_AT', 'LEGACY_APPLIED_AT',
           'DEFAULT_ACTOR', 'DEFAULT_LONGHORN_NAMESPACE', 'LONGHORN_DRIVER', 'STRATEGIES', 'STALE_READY_AFTER',
           'PREDICTED_NOT_A_PROOF', 'check_fence', 'is_predicted', 'proof_predates_lease', 'stale_ready_threshold', 'plan_force_detach', 'direct_actions',
           'cleanup_remaining', 'plan_like', 'public_plan', 'oos_taint']

DEFAULT_LONGHORN_NAMESPACE = 'longhorn-system'   # Helm's default; the chart may install Longhorn elsewhere

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


OOS_TAINT_KEY = names.OUT_OF_SERVICE_TAINT
OOS_TAINT_VALUE = names.OUT_OF_SERVICE_VALUE
OOS_TAINT_EFFECT = names.OUT_OF_SERVICE_EFFECT
APPLIED_BY = names.OUT_OF_SERVICE_APPLIED_BY
APPLIED_AT = names.OUT_OF_SERVICE_APPLIED_AT
LEGACY_APPLIED_AT = names.LEGACY_OUT_OF_SERVICE_APPLIED_AT
DEFAULT_ACTOR = 'tazlab.resilience.longhorn_force_detach'
LONGHORN_DRIVER = 'driver.longhorn.io'

STRATEGIES = ('out_of_service', 'direct')

#: Why a real run refuses the result of a proxmox_fence run in check mode.
PREDICTED_NOT_A_PROOF = ('a predicted proof from a check-mode fence is not a proof: proxmox_fence ran in check mode '
                         '(predicted=true) and stopped nothing; fence the node for real first')


def is_predicted(fence):
    """Is this the predicted proof of a proxmox_fence run in check mode (``predicted: true``)?"""
    return isinstance(fence, dict) and fence.get('predicted') is True


def check_fence(node, fence, assume_fenced, check_mode=False):
    """The fence verdict: (ok, info, reasons). Pure.

    info: {verified, assumed, predicted, system_uuid, smbios_uuid}. reasons: why it is not ok. A predicted
    proof (proxmox_fence in check mode) is refused outside check mode; in check mode it stands for the proof a
    real fence would give: its ``fenced: false`` is not held against it, the rest of it is checked.
    """
    system_uuid = (((node or {}).get('status') or {}).get('nodeInfo') or {}).get('systemUUID') or ''
    info = {'verified': False, 'assumed': False, 'predicted': False, 'system_uuid': system_uuid, 'smbios_uuid': None}
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
    predicted = is_predicted(fence)
    info['predicted'] = predicted
    if predicted and not check_mode:
        reasons.append(PREDICTED_NOT_A_PROOF)
    if fence.get('failed'):
        reasons.append('the fence task failed: {0}'.format(fence.get('msg') or 'no message'))
    if fence.get('fenced') is not True and not (predicted and check_mode):
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
    info['verified'] = not predicted
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


def oos_taint(taints):
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
    longhorn_attachments, longhorn_volumes, replicasets ({ns/name: rs}), lease, now}.
    params: {node, state, strategy, fence, assume_fenced, pvcs, volumes, actor, now, check_mode,
    stale_ready_after}.
    """
    node_name = params['node']
    node = observed.get('node')
    plan = {
        'node': node_name, 'state': params.get('state') or 'present',
        'strategy': params.get('strategy') or 'out_of_service', 'refused': [], 'warnings': [],
        'node_ready': None, 'fence': None, 'taint': None, 'taint_action': 'none', 'annotations': {},
        'pods': [], 'volume_attachments': [], 'longhorn_tickets': [], 'volumes': [], 'workloads': [],
        'volumes_in_use': [],
        'unmanaged_pods': [], 'longhorn': bool(observed.get('longhorn')), 'actions': [], 'changed': False,
    }
    if node is None:
        plan['refused'].append('node {0} does not exist'.format(node_name))
        return plan
    plan['node_ready'] = node_ready(node)
    current_taint = oos_taint((node.get('spec') or {}).get('taints'))
    all_pods = _plan_objects(plan, observed, params)
    if plan['state'] == 'absent':
        return _plan_absent(plan, all_pods, current_taint)
    _apply_the_rule(plan, observed, params)
    if plan['refused']:
        plan['actions'] = []
        return plan
    _plan_actions(plan, params, current_taint)
    return plan


def _plan_objects(plan, observed, params):
    """The objects that tie the node (pods, volumesInUse, VolumeAttachments, Longhorn tickets) and the volumes
    and workloads to verify, in scope; returns every pod entry on the node (for the absent check)."""
    node_name = plan['node']
    node = observed['node']
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
    return all_pods


def _plan_absent(plan, all_pods, current_taint):
    """state=absent: remove the taint (node back, or cleanup complete)."""
    node_name = plan['node']
    ready = plan['node_ready']
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


def _apply_the_rule(plan, observed, params):
    """THE ONE RULE, for state=present: the refusals, the fence verdict, and a stale Ready condition (which turns
    the strategy into ``direct``)."""
    node_name = plan['node']
    node = observed['node']
    ready = plan['node_ready']
    strategy = plan['strategy']
    if strategy not in STRATEGIES:
        plan['refused'].append('unknown strategy {0!r}'.format(strategy))
    fence_ok, fence_info, fence_reasons = check_fence(node, params.get('fence'), params.get('assume_fenced'),
                                                      check_mode=params.get('check_mode'))
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
            plan['strategy'] = 'direct'
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
    if fence_reasons and params.get('check_mode') and (params.get('assume_fenced') or fence_info['predicted']):
        # Check mode writes nothing: with a predicted proof (the runbook's fence only planned, in check mode
        # too) or assume_fenced it shows the plan as if the fence had been confirmed, and says why the proof
        # would not do for real.
        fence_info['assumed'] = not fence_info['predicted']
        plan['warnings'].extend('check mode: {0} (a real run refuses this proof)'.format(r) for r in fence_reasons)
        fence_reasons = []
    plan['fence'] = fence_info
    plan['refused'].extend(fence_reasons)
    if fence_info['predicted'] and not plan['refused']:
        plan['warnings'].append('check mode: the fence proof of node {0} is predicted (proxmox_fence ran in check '
                                'mode and stopped nothing): a real run frees its storage only with a real '
                                'proof'.format(node_name))
    if fence_info['assumed'] and not plan['refused']:
        # Only for a node this run would free: a refused node keeps its storage, nothing is assumed of it.
        plan['warnings'].append('ASSUMED FENCED: node {0} was not proven powered off (assume_fenced=true); '
                                'if it is still running its volumes may get two writers'.format(node_name))


def _plan_actions(plan, params, current_taint):
    """The ordered actions of a node the rule lets go. The out-of-service taint for ``out_of_service``, and for a
    node that still reads Ready (stale): it is still schedulable, so replacements would be placed on the dead
    node; the taint (true: the fence proved it is shut down) keeps them away, and the direct steps then free the
    storage at once, since pod GC waits for NotReady. The direct steps for ``direct`` (a stale Ready included)."""
    wanted = {'key': OOS_TAINT_KEY, 'value': OOS_TAINT_VALUE, 'effect': OOS_TAINT_EFFECT}
    plan['taint'] = wanted
    if plan.get('ready_stale') or plan['strategy'] == 'out_of_service':
        if current_taint is None:
            plan['taint_action'] = 'add'
            plan['annotations'] = {APPLIED_BY: params.get('actor') or DEFAULT_ACTOR,
                                   APPLIED_AT: params.get('now') or rfc3339()}
            plan['actions'].append({'action': 'taint_node', 'node': plan['node'], 'taint': dict(wanted),
                                    'annotations': dict(plan['annotations'])})
        else:
            plan['taint_action'] = 'keep'
    if plan['strategy'] == 'direct':
        plan['actions'].extend(direct_actions(plan))
    plan['changed'] = bool(plan['actions'])


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


def public_plan(plan):
    return dict((k, v) for k, v in plan.items() if not k.startswith('_'))
