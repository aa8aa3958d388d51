# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disaster drill's I/O: the pre-drill snapshot and its refusals, the fault through Proxmox, the
observation loop, and the check that the cluster is back to its pre-drill state.

The judgement lives in pure functions (``preflight_refusals``, ``compare_state``) and in
``observe.Recorder``; the functions taking a client only read, except ``inject`` (the fault) and
``heal_link`` (undoing a partition).
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.drill.observe import (
    Recorder, iso, parse_ts, workload_of,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import Pace, WaitTimeout, wait_until

__all__ = ['DrillError', 'snapshot', 'preflight_refusals', 'compare_state', 'find_vm_by_uuid', 'inject',
           'observe_loop', 'heal_link', 'link_down_config', 'watch_workloads']

LEASE_PREFIX = 'tazlab-remediation-'


class DrillError(Exception):
    """The drill cannot go on (bad input, a refusal, a fault that could not be injected)."""


def _items(client, what, func, **kwargs):
    return client.items(client.call(what, func, **kwargs))


def _role(node):
    labels = (node.get('metadata') or {}).get('labels') or {}
    return 'control-plane' if 'node-role.kubernetes.io/control-plane' in labels else 'worker'


def _ready(node):
    for cond in (node.get('status') or {}).get('conditions') or []:
        if cond.get('type') == 'Ready':
            return cond.get('status') == 'True'
    return False


def _uuid(node):
    return (((node.get('status') or {}).get('nodeInfo') or {}).get('systemUUID') or '').lower()


def watch_workloads(pods, replicasets, deployments, statefulsets, node):
    """The Deployments/StatefulSets with a pod on ``node``: [{namespace, kind, name, selector, ready}]."""
    specs = {}
    for kind, objs in (('Deployment', deployments), ('StatefulSet', statefulsets)):
        for obj in objs or []:
            meta = obj.get('metadata') or {}
            specs[(kind, meta.get('namespace'), meta.get('name'))] = obj
    out = {}
    for pod in pods:
        if (pod.get('spec') or {}).get('nodeName') != node:
            continue
        owner = workload_of(pod, replicasets)
        if not owner or owner[0] not in ('Deployment', 'StatefulSet'):
            continue
        ns = pod['metadata'].get('namespace')
        obj = specs.get((owner[0], ns, owner[1]))
        if obj is None:
            continue
        key = (owner[0], ns, owner[1])
        out[key] = {'namespace': ns, 'kind': owner[0], 'name': owner[1],
                    'selector': ((obj.get('spec') or {}).get('selector') or {}).get('matchLabels') or {},
                    'ready': int((obj.get('status') or {}).get('readyReplicas') or 0)}
    return [out[k] for k in sorted(out)]


def snapshot(client, lease_namespace='kube-system', longhorn_namespace='longhorn-system'):
    """What 'back to the pre-drill state' is compared with: nodes, workloads' ready replicas, volumes."""
    nodes = _items(client, 'list nodes', client.core.list_node)
    deployments = _items(client, 'list deployments', client.apps.list_deployment_for_all_namespaces)
    statefulsets = _items(client, 'list statefulsets', client.apps.list_stateful_set_for_all_namespaces)
    leases = _items(client, 'list leases', client.coordination.list_namespaced_lease, namespace=lease_namespace)
    try:
        volumes = client.list_custom('volumes', namespace=longhorn_namespace)
    except Exception:  # noqa: BLE001 - no Longhorn: nothing to compare
        volumes = []
    now = client.server_time or time.time()
    held = {}
    for lease in leases:
        name = (lease.get('metadata') or {}).get('name') or ''
        if not name.startswith(LEASE_PREFIX):
            continue
        spec = lease.get('spec') or {}
        renewed = parse_ts(spec.get('renewTime') or spec.get('acquireTime'))
        duration = spec.get('leaseDurationSeconds')
        if spec.get('holderIdentity') and (renewed is None or duration is None or renewed + float(duration) > now):
            held[name[len(LEASE_PREFIX):]] = spec.get('holderIdentity')
    workloads = {}
    for kind, objs in (('Deployment', deployments), ('StatefulSet', statefulsets)):
        for obj in objs:
            meta, spec = obj.get('metadata') or {}, obj.get('spec') or {}
            workloads['{0}/{1}/{2}'.format(kind, meta.get('namespace'), meta.get('name'))] = {
                'replicas': int(spec.get('replicas', 1) if spec.get('replicas') is not None else 1),
                'ready': int((obj.get('status') or {}).get('readyReplicas') or 0)}
    return {
        'time': iso(now),
        'nodes': dict(((n.get('metadata') or {}).get('name'), {
            'ready': _ready(n), 'role': _role(n), 'system_uuid': _uuid(n),
            'unschedulable': bool((n.get('spec') or {}).get('unschedulable')),
            'taints': sorted(t.get('key') for t in (n.get('spec') or {}).get('taints') or [])}) for n in nodes),
        'workloads': workloads,
        'volumes': dict(((v.get('metadata') or {}).get('name'), (v.get('status') or {}).get('robustness'))
                        for v in volumes),
        'leases': held,
    }


def choose_targets(state, nodes, all_workers=False):
    """The given nodes, then (all_workers) every worker not already named, by name. Pure."""
    out = list(nodes or [])
    if all_workers:
        out += sorted(n for n, v in state['nodes'].items() if v['role'] == 'worker' and n not in out)
    return out


def preflight_refusals(state, targets, allow_control_plane=False):
    """Why the drill must not start on these targets (empty: it may). Pure."""
    out = []
    nodes = state['nodes']
    for target in targets:
        node = nodes.get(target)
        if node is None:
            out.append('{0}: no such node'.format(target))
            continue
        if node['role'] == 'control-plane' and not allow_control_plane:
            out.append('{0}: a control plane (set the explicit control-plane flag to drill one)'.format(target))
        if not node['ready']:
            out.append('{0}: not Ready before the drill'.format(target))
        if target in state['leases']:
            out.append('{0}: another remediation holds its lease ({1})'.format(target, state['leases'][target]))
    others = [n for n, v in nodes.items() if n not in targets and not v['ready']]
    if others:
        out.append('nodes already NotReady: {0} (drill a healthy cluster only)'.format(', '.join(sorted(others))))
    if state['leases']:
        busy = sorted(n for n in state['leases'] if n not in targets)
        if busy:
            out.append('remediation in progress on {0} (lease held)'.format(', '.join(busy)))
    bad = sorted(v for v, r in state['volumes'].items() if r in ('degraded', 'faulted'))
    if bad:
        out.append('Longhorn volumes not healthy: {0}'.format(', '.join(bad)))
    cps = [n for n, v in nodes.items() if v['role'] == 'control-plane']
    drilled_cps = [t for t in targets if t in cps]
    if drilled_cps and len(cps) - 1 < len(cps) // 2 + 1:
        out.append('losing a control plane of {0} leaves etcd without quorum'.format(len(cps)))
    return out


def compare_state(before, after):
    """What differs from the pre-drill state (empty: back to it). Pure."""
    out = []
    for name, node in before['nodes'].items():
        now = after['nodes'].get(name)
        if now is None:
            out.append('node {0} is gone'.format(name))
            continue
        if node['ready'] and not now['ready']:
            out.append('node {0} is not Ready'.format(name))
        if now['unschedulable'] and not node['unschedulable']:
            out.append('node {0} is still cordoned'.format(name))
        extra = sorted(set(now['taints']) - set(node['taints']))
        if extra:
            out.append('node {0} still has taints {1}'.format(name, extra))
    for key, w in before['workloads'].items():
        now = after['workloads'].get(key)
        if now is None:
            out.append('{0} is gone'.format(key))
        elif now['ready'] < w['ready']:
            out.append('{0}: {1} ready replica(s), {2} before'.format(key, now['ready'], w['ready']))
    for vol, robustness in before['volumes'].items():
        now = after['volumes'].get(vol)
        if robustness == 'healthy' and now != 'healthy':
            out.append('Longhorn volume {0} is {1}'.format(vol, now))
    for node, holder in after['leases'].items():
        if node not in before['leases']:
            out.append('lease of {0} still held by {1}'.format(node, holder))
    return out


# ---------------------------------------------------------------------------------------- Proxmox
def find_vm_by_uuid(px, system_uuid):
    """The one VM whose smbios1 uuid is the node's systemUUID (a DrillError for none or several)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.audit.collect import collect_proxmox

    found = [vm for vm in collect_proxmox(px)['vms'] if (vm.get('smbios_uuid') or '').lower() == system_uuid]
    if len(found) != 1:
        raise DrillError('{0} VM(s) carry the SMBIOS UUID {1}: the fault cannot be aimed (and recovery could not '
                         'fence it)'.format(len(found), system_uuid))
    return found[0]


def link_down_config(net0, down):
    """The net0 config string with link_down=1 (down) or without it."""
    parts = [p for p in str(net0 or '').split(',') if p and not p.startswith('link_down=')]
    if down:
        parts.append('link_down=1')
    return ','.join(parts)


def inject(px, vm, system_uuid, fault, stop_timeout=60):
    """Hard stop through Proxmox (proved stopped), or a partition by taking the NIC's link down."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import fence

    if fault == 'partition':
        config = px.vm_config(vm['node'], vm['vmid'])
        px.put('nodes/{0}/qemu/{1}/config'.format(vm['node'], vm['vmid']), idempotent=True,
               net0=link_down_config(config.get('net0'), True))
        return {'fault': 'partition', 'vmid': vm['vmid'], 'net0_link_down': True}
    req = fence.FenceRequest(action='off', graceful=False, stop_timeout=stop_timeout,
                             expected_system_uuid=system_uuid)
    fence.validate_request(req)
    facts = fence.gather_facts(px, vmid=vm['vmid'])
    plan = fence.plan_fence(facts, req)
    result, error = fence.FenceExecutor(px, req, poll_interval=0.2).run(plan)
    if error is not None:
        raise DrillError('the hard stop of VM {0} failed: {1}'.format(vm['vmid'], error))
    return {'fault': 'power_off', 'vmid': vm['vmid'], 'fenced': bool((result or {}).get('fenced'))}


def heal_link(px, vm):
    config = px.vm_config(vm['node'], vm['vmid'])
    if 'link_down=1' not in str(config.get('net0') or ''):
        return False
    px.put('nodes/{0}/qemu/{1}/config'.format(vm['node'], vm['vmid']), idempotent=True,
           net0=link_down_config(config.get('net0'), False))
    return True


# ------------------------------------------------------------------------------------ observation
def observation(client, node, namespaces):
    obs = {'node': client.get_node(node), 'pods': [], 'events': []}
    for ns in namespaces:
        obs['pods'] += _items(client, 'list pods in ' + ns, client.core.list_namespaced_pod, namespace=ns)
        obs['events'] += _items(client, 'list events in ' + ns, client.core.list_namespaced_event, namespace=ns)
    obs['vas'] = client.list_volume_attachments()
    obs['time'] = client.server_time or time.time()
    return obs


def _write_progress(path, data):
    if not path:
        return
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as fh:
        json.dump(data, fh, sort_keys=True)
    os.replace(tmp, path)


def observe_loop(client, px, target, fault='power_off', timeout=480, poll_interval=0.25, progress_file=None,
                 stop_timeout=60, sleep=time.sleep, wall_limit=3600):
    """Inject the fault on ``target`` and record the reaction until every workload that ran there is back
    or ``timeout`` cluster seconds have passed. Returns (result, injection)."""
    node = client.get_node(target)
    uuid = _uuid(node)
    if not uuid:
        raise DrillError('{0} reports no systemUUID: the fault cannot be aimed'.format(target))
    vm = find_vm_by_uuid(px, uuid)
    pods = _items(client, 'list pods', client.core.list_pod_for_all_namespaces)
    replicasets = _items(client, 'list replicasets', client.apps.list_replica_set_for_all_namespaces)
    deployments = _items(client, 'list deployments', client.apps.list_deployment_for_all_namespaces)
    statefulsets = _items(client, 'list statefulsets', client.apps.list_stateful_set_for_all_namespaces)
    workloads = watch_workloads(pods, replicasets, deployments, statefulsets, target)
    namespaces = sorted(set(w['namespace'] for w in workloads))
    initial = observation(client, target, namespaces)
    t0 = initial['time']
    recorder = Recorder(target, t0, workloads, initial)
    recorder.add('fault', t0, 'Node ' + target, 'hard stop through Proxmox (VM {0})'.format(vm['vmid'])
                 if fault == 'power_off' else 'partition: net0 link_down=1 (VM {0})'.format(vm['vmid']))
    injection = inject(px, vm, uuid, fault, stop_timeout=stop_timeout)
    after = observation(client, target, namespaces)
    if fault == 'power_off':
        recorder.add('vm_stopped', after['time'], 'VM {0}'.format(vm['vmid']), 'Proxmox reads it stopped')
    _write_progress(progress_file, {'injected': True, 'node': target, 'vmid': vm['vmid'], 't0': iso(t0)})
    recorder.observe(after)
    pace = Pace(poll_interval, timeout=wall_limit, sleep=sleep)
    while not recorder.done() and recorder.elapsed() < timeout and not pace.expired():
        pace.sleep()
        recorder.observe(observation(client, target, namespaces))
        _write_progress(progress_file, {'injected': True, 'node': target, 'vmid': vm['vmid'], 't0': iso(t0),
                                        'events': len(recorder.events)})
    result = recorder.result(timeout=timeout)
    result['fault'] = fault
    result['vm'] = {'vmid': vm['vmid'], 'node': vm['node'], 'name': vm.get('name')}
    result['workloads'] = ['{0}/{1}/{2}'.format(w['kind'], w['namespace'], w['name']) for w in workloads]
    _write_progress(progress_file, {'injected': True, 'finished': True, 'node': target, 'outcome': result['outcome']})
    return result, injection


def wait_back(client, before, timeout, poll_interval=1.0, sleep=time.sleep, **kwargs):
    """Poll until compare_state is empty or the timeout (wall seconds) passes; returns (after, differences)."""
    def probe():
        after = snapshot(client, **kwargs)
        return after, compare_state(before, after)
    try:
        return wait_until(probe, lambda read: not read[1], timeout, interval=poll_interval, sleep=sleep,
                          what='the state before the drill')
    except WaitTimeout as exc:
        return exc.last


__all__ += ['wait_back', 'observation', 'choose_targets']
