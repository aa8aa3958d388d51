# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a node that will not come back (talos-provisioning.md section 5).

``prepare`` (before the new VM exists), in this order, refusing before any change:

1. The old VM is proven powered off by its SMBIOS UUID, as proxmox_fence proves it (exactly one VM carries
   the UUID, its PVE host online, the cluster quorate, status/current stopped now, HA not about to start it):
   a VM that may still run would come back next to its replacement.
2. A control plane: its etcd member (by hostname) is removed through a healthy control plane, only while the
   voting members left keep a healthy majority (talos_etcd's quorum rule).
3. The Node object is deleted (a Node whose systemUUID is not the old UUID is not touched: the replacement
   has already joined, and the step is done).

``verify`` (after the new VM joined): the Node is Ready with the new UUID, for a control plane etcd has it
as a voting member and every member healthy, and every Longhorn volume is healthy again (its replicas
rebuilt on the nodes that are left or the new one).
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import norm_uuid, same_uuid
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.etcd import quorum_after_removal

__all__ = ['Refused', 'prepare', 'verify']


class Refused(Exception):
    def __init__(self, reasons):
        super(Refused, self).__init__('; '.join(reasons))
        self.reasons = list(reasons)


def _node(k8s, name):
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import NOT_FOUND, K8sError
    try:
        return k8s.get_node(name)
    except K8sError as exc:
        if exc.kind == NOT_FOUND:
            return None
        raise


def _uuid(node):
    return ((node or {}).get('status') or {}).get('nodeInfo', {}).get('systemUUID')


def _ready(node):
    conds = ((node or {}).get('status') or {}).get('conditions') or []
    return any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in conds)


RETIRED = 'retired: replaced by the VM with SMBIOS UUID'


def retired_description(description, new_uuid):
    return '{0}\n{1} {2}'.format(description or '', RETIRED, new_uuid).strip()


def prepare(params, k8s, power_check, etcd=None, check_mode=False, retire=None):
    """The plan and (unless check_mode) its execution. ``power_check(uuid, name)`` -> (ok, info, reasons);
    ``etcd``: object with sync ``members()``, ``health(members)`` -> {id: status or None}, ``remove(id)``."""
    name, role, old = params['node'], params['role'], params['old_uuid']
    if not norm_uuid(old):
        raise Refused(['old_uuid (the SMBIOS UUID of the dead VM) is required'])
    result = dict(node=name, role=role, old_uuid=old, actions=[], changed=False)
    node = _node(k8s, name)
    if node is not None and _uuid(node) and not same_uuid(_uuid(node), old):
        result.update(replaced=True, msg='node %s already carries systemUUID %s (not the old %s): its replacement '
                                         'has joined' % (name, _uuid(node), old))
        return result
    ok, info, reasons = power_check(old, name)
    info = dict(info or {})
    result['power'] = info
    if not ok:
        raise Refused(['refusing to replace %s while its old VM may still run: %s' % (name, '; '.join(reasons))])
    member = None
    if role == 'controlplane':
        if etcd is None:
            raise Refused(['a control plane needs the Talos connection to remove its etcd member'])
        members = etcd.members()
        member = next((m for m in members if m['hostname'] == name), None)
        result['etcd_members_before'] = sorted(m['hostname'] for m in members)
        if member is not None:
            healthy = etcd.health(members)
            dead = dict(healthy)
            dead[member['id']] = None  # the dead member never counts as healthy
            okq, why = quorum_after_removal(members, dead, member['id'])
            result['quorum_check'] = why
            if not okq:
                raise Refused(['refusing to remove the etcd member of %s: %s (restore etcd from a snapshot '
                               'instead)' % (name, why)])
            result['actions'].append('etcd_remove_member')
    if node is not None:
        result['actions'].append('delete_node')
    if retire is not None and params.get('new_uuid') and not info.get('retired'):
        result['actions'].append('retire_old_vm')
    result['changed'] = bool(result['actions'])
    if check_mode:
        return result
    if member is not None:
        etcd.remove(member['id'])
        result['etcd_removed'] = '%016x' % member['id']
    if node is not None:
        k8s.call('delete node %s' % name, k8s.core.delete_node, write=True, name=name)
    if 'retire_old_vm' in result['actions']:
        # Marked, and no longer started with its host: a rerun of provision with the old UUID refuses to start it.
        retire(info['vmid'], info['pve_node'], params['new_uuid'])
    return result


def verify(params, k8s, etcd=None, sleep=time.sleep, clock=time.monotonic):
    """Wait for the replacement: Node Ready with the new UUID, etcd (control plane), Longhorn volumes healthy."""
    name, new = params['node'], params['new_uuid']
    deadline = clock() + float(params.get('timeout') or 900)
    interval = float(params.get('poll_interval') or 5)
    last = None
    while True:
        state = {}
        node = _node(k8s, name)
        state['node_ready'] = bool(node) and _ready(node)
        state['system_uuid'] = _uuid(node)
        ok = state['node_ready'] and same_uuid(state['system_uuid'], new)
        if ok and params['role'] == 'controlplane' and etcd is not None:
            members = etcd.members()
            state['etcd_members'] = sorted(m['hostname'] for m in members)
            mine = [m for m in members if m['hostname'] == name]
            health = etcd.health(members)
            ok = bool(mine) and not mine[0]['is_learner'] and all(health.get(m['id']) is not None for m in members)
            state['etcd_healthy'] = ok
        if ok and params.get('longhorn', True):
            from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import NOT_FOUND, K8sError
            try:
                volumes = k8s.list_custom('volumes', namespace=params.get('longhorn_namespace') or 'longhorn-system')
            except K8sError as exc:
                if exc.kind != NOT_FOUND:
                    raise
                volumes = []   # no Longhorn in this cluster (the volumes.longhorn.io API is not served)
                state['longhorn'] = 'not installed'
            bad = sorted('%s (%s)' % (v['metadata']['name'], (v.get('status') or {}).get('robustness'))
                         for v in volumes if (v.get('status') or {}).get('state') == 'attached'
                         and (v.get('status') or {}).get('robustness') != 'healthy')
            state['longhorn_not_healthy'] = bad
            ok = not bad
        if ok or params.get('once'):
            state['done'] = bool(ok)
            return state
        last = state
        if clock() >= deadline:
            limit = params.get('timeout') or 900
            raise Refused(['replacement of %s not complete within %ss: %s' % (name, limit, last)])
        sleep(interval)
