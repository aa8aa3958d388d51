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
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.etcd import quorum_after_removal

__all__ = ['Refused', 'NodeReplaceError', 'Etcd', 'prepare', 'verify', 'libraries', 'run_node_replace']


class Refused(Exception):
    kind = 'refused'

    def __init__(self, reasons):
        super(Refused, self).__init__('; '.join(reasons))
        self.reasons = list(reasons)

    def result_fields(self):
        return dict(refused=self.reasons)


class NodeReplaceError(Exception):
    """node_replace failed before anything changed: a message, its kind and the result's fields."""

    def __init__(self, message, kind, **fields):
        super(NodeReplaceError, self).__init__(message)
        self.kind = kind
        self.fields = fields

    def result_fields(self):
        return dict(self.fields)


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
    timeout = float(params.get('timeout') or 900)
    interval = float(params.get('poll_interval') or 5)

    def probe():
        """(ok, state) of one round."""
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
        return ok, state

    try:
        ok, state = wait_until(probe, lambda read: read[0] or params.get('once'), timeout, interval=interval,
                               sleep=sleep, clock=clock, what='replacement of %s' % name)
    except WaitTimeout as exc:
        limit = params.get('timeout') or 900
        raise Refused(['replacement of %s not complete within %ss: %s' % (name, limit, exc.last[1])]) from None
    state['done'] = bool(ok)
    return state


# -- the module's call ---------------------------------------------------------------------------------------

class Etcd(object):
    """Synchronous etcd reads and the removal through the healthy control planes (each call its own client)."""

    def __init__(self, params):
        from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import resolve_auth
        self.endpoints = list(params['talos_endpoints'])
        self.auth = resolve_auth(talosconfig=params.get('talosconfig'), context=params.get('talos_context'),
                                 endpoints=self.endpoints)

    def _run(self, fn):
        from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import run
        return run(self.auth, fn, timeout=20.0, connect_timeout=5.0, retries=1)

    def members(self):
        return self._run(lambda c: c.etcd_member_list())

    def health(self, members):
        from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError

        async def read(client):
            out = dict((m['id'], None) for m in members)
            for ep in self.endpoints:
                try:
                    st = await client.etcd_status(endpoint=ep, retries=0)
                except TalosError:
                    continue
                if st['member_id'] in out and not st['errors']:
                    out[st['member_id']] = st
            return out
        return self._run(read)

    def remove(self, member_id):
        return self._run(lambda c: c.etcd_remove_member(member_id))


def _proxmox_auth(params):
    return dict(params.get('proxmox_auth') or {})


def libraries(params):
    """kubernetes always; proxmoxer for the prepare step when the Proxmox connection is given."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_libraries

    out = k8s_libraries(params)
    if params.get('step') == 'prepare' and _proxmox_auth(params).get('api_host'):
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import proxmox_libraries
        out.extend(proxmox_libraries(params))
    return out


def _proxmox_steps(auth):
    """(power_check, retire) for prepare, through the Proxmox API."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import confirm_powered_off

    pve = ProxmoxClient(ConnectionSettings.from_params(auth))

    def power_check(uuid, name):
        ok, info, reasons = confirm_powered_off(pve, uuid, name)
        if ok:
            cfg = pve.vm_config(info['pve_node'], info['vmid'])
            info['retired'] = RETIRED in (cfg.get('description') or '')
            info['description'] = cfg.get('description') or ''
        return ok, info, reasons

    def retire(vmid, host, new_uuid):
        cfg = pve.vm_config(host, vmid)
        pve.put('nodes/{0}/qemu/{1}/config'.format(host, vmid), onboot=0,
                description=retired_description(cfg.get('description'), new_uuid))
    return power_check, retire


def run_node_replace(run):
    """node_replace: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
    from ansible_collections.tazlab.resilience.plugins.module_utils.runner import INVALID, is_collection_error

    p = run.params
    try:
        k8s = client_from_params(p)
        etcd = Etcd(p) if p['role'] == 'controlplane' else None
        if p['step'] == 'prepare':
            auth = _proxmox_auth(p)
            if not auth.get('api_host'):
                raise NodeReplaceError('proxmox_auth.api_host is required: the old VM must be proven powered off',
                                       'refused', refused=['no Proxmox access'])
            power_check, retire = _proxmox_steps(auth)
            return prepare(p, k8s, power_check, etcd=etcd, check_mode=run.check_mode, retire=retire)
        if run.check_mode:
            p = dict(p, once=True)  # one read, no wait
        return dict(changed=False, state=verify(p, k8s, etcd=etcd))
    except ValueError as exc:
        if is_collection_error(exc):
            raise
        raise NodeReplaceError(str(exc), INVALID) from exc
