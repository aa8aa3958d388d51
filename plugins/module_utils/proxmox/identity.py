# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identity is the SMBIOS UUID: find the one VM that carries a Kubernetes node's systemUUID.

qemu-server passes `smbios1.uuid` to the guest, the kubelet reports it as
`status.nodeInfo.systemUUID`. A VM name proves nothing (a clone, a restored backup or a test VM can
carry the same name and the same UUID). So a node is matched to a VM only when exactly one VM of the
whole PVE cluster carries its UUID; no VM, several VMs, or a VM whose UUID cannot be read (its PVE node
is offline) is a refusal with the VMIDs and hosts named.

* `read_identities(client)` reads /cluster/status, /cluster/resources and the config of every QEMU VM on
  an online PVE node (GETs only) and returns the VM list with `smbios_uuid` (None when unreadable).
* `match_node(vms, system_uuid, node_name)` is pure: the match, or why there is none.
* `confirm_powered_off(client, system_uuid, node_name)` re-reads everything now and says whether the
  node's one VM reads stopped in status/current at this moment (the check right before freeing).
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import parse_smbios_uuid

__all__ = ['norm_uuid', 'same_uuid', 'read_identities', 'match_node', 'confirm_powered_off', 'describe']

OK, MISSING, DUPLICATE, UNREADABLE, NO_UUID = 'ok', 'missing', 'duplicate', 'unreadable', 'no_system_uuid'


def norm_uuid(value):
    return str(value or '').strip().strip('{}').lower()


def same_uuid(a, b):
    """Case-insensitive, as the Proxmox cloud controller compares them."""
    return bool(norm_uuid(a)) and norm_uuid(a) == norm_uuid(b)


def describe(vms):
    """'106 on pve2 (worker-new-03, running), 100 on pve1 (...)' for a reason text."""
    return ', '.join('{0} on {1} ({2}, {3})'.format(v.get('vmid'), v.get('node'), v.get('name') or 'no name',
                                                    v.get('status') or 'unknown') for v in vms)


def read_identities(client, vms=None, online=None):
    """The QEMU VMs (not templates) with their smbios_uuid; `vms` (the /cluster/resources entries) and
    `online` ({pve node: online}) may be passed when already read. A VM on an offline PVE node, or whose
    config read fails with 595, has smbios_uuid None, identity_readable False and identity_error (why)."""
    if online is None:
        online = client.cluster_status()['nodes']
    if vms is None:
        vms = [r for r in (client.get('cluster/resources', type='vm') or [])
               if r.get('type') == 'qemu' and r.get('template') not in (1, True, '1')]
    out = []
    for res in vms:
        vm = dict(res)
        vm['vmid'] = int(res.get('vmid'))
        vm['smbios_uuid'] = None
        vm['identity_readable'] = False
        if online and not online.get(res.get('node'), False):
            vm['identity_error'] = 'PVE node {0} is offline'.format(res.get('node'))
            out.append(vm)
            continue
        try:
            config = client.vm_config(res.get('node'), vm['vmid'])
        except E.ProxmoxError as exc:
            if exc.kind not in (E.HOST_OFFLINE, E.NOT_FOUND, E.API, E.PERMISSION):
                raise
            vm['identity_error'] = str(exc)
            out.append(vm)
            continue
        vm['smbios_uuid'] = parse_smbios_uuid(config.get('smbios1'))
        vm['identity_readable'] = True
        out.append(vm)
    return out


def match_node(vms, system_uuid, node_name=None):
    """{'identity': ok|missing|duplicate|unreadable|no_system_uuid, 'vm', 'matches', 'unreadable', 'reason'}.

    Pure. `vms` as read_identities returns them (smbios_uuid, identity_readable). A VM whose UUID cannot be
    read counts against the match when it bears the node's name (it may be the node's real VM, or a second
    one: either way exactly-one cannot be shown); otherwise it is reported but does not block.
    """
    result = {'identity': OK, 'vm': None, 'matches': [], 'unreadable': [], 'reason': None}
    if not norm_uuid(system_uuid):
        result.update(identity=NO_UUID, reason='node {0} reports no status.nodeInfo.systemUUID: no VM can be '
                                               'matched to it'.format(node_name))
        return result
    matches = [v for v in vms if v.get('identity_readable', True) and same_uuid(v.get('smbios_uuid'), system_uuid)]
    unreadable = [v for v in vms if not v.get('identity_readable', True)]
    named = [v for v in unreadable if node_name and v.get('name') in (None, node_name)]
    result['matches'] = [_brief(v) for v in matches]
    result['unreadable'] = [_brief(v) for v in unreadable]
    if len(matches) > 1:
        result.update(identity=DUPLICATE, reason='{0} VMs carry the SMBIOS UUID {1} of node {2}: {3}; which one is '
                                                 'the node cannot be told, so none is fenced'.format(
                                                     len(matches), system_uuid, node_name, describe(matches)))
    elif named:
        result.update(identity=UNREADABLE, reason='the SMBIOS UUID of {0} cannot be read (its PVE node is offline '
                                                  'or unreachable): it may be node {1}\'s VM or a second one, so '
                                                  'the VM of {1} (UUID {2}) is not identified and its power state '
                                                  'is unknown'.format(describe(named), node_name, system_uuid))
    elif not matches:
        extra = ''
        if unreadable:
            extra = ' (the UUIDs of {0} could not be read: their PVE node is offline)'.format(describe(unreadable))
        result.update(identity=MISSING, reason='no VM carries the SMBIOS UUID {0} of node {1}{2}'.format(
            system_uuid, node_name, extra))
    else:
        result['vm'] = matches[0]
    return result


def _brief(vm):
    return dict((k, vm.get(k)) for k in ('vmid', 'node', 'name', 'status', 'smbios_uuid'))


def confirm_powered_off(client, system_uuid, node_name=None):
    """(ok, info, reasons): read Proxmox now; ok only when exactly one VM carries the UUID, its PVE node is
    online, the cluster is quorate, and a fresh status/current of that VM reads stopped."""
    cluster = client.cluster_status()
    vms = read_identities(client, online=cluster['nodes'])
    found = match_node(vms, system_uuid, node_name)
    info = {'identity': found['identity'], 'matches': found['matches'], 'vmid': None, 'pve_node': None,
            'status': 'unknown', 'quorate': cluster['quorate']}
    if found['identity'] != OK:
        return False, info, [found['reason']]
    vm = found['vm']
    info.update(vmid=vm['vmid'], pve_node=vm.get('node'), name=vm.get('name'))
    if cluster['quorate'] is False:
        return False, info, ['the PVE cluster is not quorate: the power state of VM {0} is not authoritative'.format(
            vm['vmid'])]
    try:
        cur = client.vm_status(vm.get('node'), vm['vmid'])
    except E.ProxmoxError as exc:
        return False, info, ['cannot read the power state of VM {0} on {1} now: {2}'.format(
            vm['vmid'], vm.get('node'), exc.message)]
    status = cur.get('status') or 'unknown'
    info['status'] = status
    ha = cur.get('ha') or {}
    info['ha'] = ha
    if status != 'stopped':
        return False, info, ['Proxmox reads VM {0} on {1} (SMBIOS UUID {2}, node {3}) as {4} now: it is not powered '
                             'off'.format(vm['vmid'], vm.get('node'), system_uuid, node_name, status)]
    if int(ha.get('managed', 0) or 0) and ha.get('state') in ('started', 'request_start', 'request_start_balance'):
        return False, info, ['VM {0} is stopped but the HA manager is about to start it (HA state {1})'.format(
            vm['vmid'], ha.get('state'))]
    return True, info, []
