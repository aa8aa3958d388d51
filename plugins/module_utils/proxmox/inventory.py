# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The power state of every QEMU VM of a PVE cluster, read in two requests.

Detection needs the VM of each Kubernetes node, and a remediation run must not cost one request per
VM: /cluster/resources lists every guest with its status, and /cluster/status says which PVE nodes
are online. A VM on a node that is offline has an unknown power state, never "stopped".
"""

from __future__ import annotations

import re

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import norm_uuid, read_identities

__all__ = ['vm_power_states', 'check_names', 'check_options', 'run_vm_status']

#: PVE's `dns-name` format, which VM names must follow.
_VM_NAME = re.compile(r'^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$')


def check_names(names):
    """Reject malformed `names` before any request (raises ProxmoxError INVALID)."""
    bad = [n for n in names or [] if not isinstance(n, str) or not _VM_NAME.match(n)]
    if bad:
        raise E.ProxmoxError(E.INVALID, 'names must be VM names (letters, digits, "-" and ".", as PVE\'s '
                                        'dns-name format), got {0}'.format(', '.join(repr(b) for b in bad)))


def vm_power_states(client, names=None, identities=True):
    """{'vms': [...], 'by_name': {name: vm}, 'quorate': bool, 'pve_nodes': {node: online}}.

    client: a ProxmoxClient. names: restrict the answer to these VM names (the listing is one
    request either way). Each vm: vmid, name, node, status (running/stopped/paused/unknown), hastate,
    lock, template; with identities also smbios_uuid (None when unreadable: its PVE node is offline) and
    identity_readable (one config read per VM: identity is the SMBIOS UUID, never the name).
    """
    check_names(names)
    cluster = client.cluster_status()
    online = cluster['nodes']
    wanted = set(names) if names else None
    vms = []
    for res in client.get('cluster/resources', type='vm') or []:
        if res.get('type') != 'qemu' or res.get('template') in (1, True, '1'):
            continue
        name = res.get('name')
        if wanted is not None and name not in wanted:
            continue
        status = res.get('status') or 'unknown'
        if online and not online.get(res.get('node'), False):
            status = 'unknown'
        if status == 'running' and res.get('qmpstatus') == 'paused':
            status = 'paused'
        vms.append({
            'vmid': int(res.get('vmid')),
            'name': name,
            'node': res.get('node'),
            'status': status,
            'hastate': res.get('hastate'),
            'lock': res.get('lock'),
        })
    vms.sort(key=lambda v: v['vmid'])
    by_uuid = {}
    if identities:
        read = read_identities(client, vms=[dict(v, type='qemu') for v in vms], online=online)
        for vm, ident in zip(vms, read):
            vm['smbios_uuid'] = ident['smbios_uuid']
            vm['identity_readable'] = ident['identity_readable']
            if ident['smbios_uuid']:
                by_uuid.setdefault(norm_uuid(ident['smbios_uuid']), []).append(vm['vmid'])
    by_name = {}
    for vm in vms:
        if vm['name']:
            by_name.setdefault(vm['name'], vm)
    return {'vms': vms, 'by_name': by_name, 'by_uuid': by_uuid, 'quorate': cluster['quorate'], 'pve_nodes': online}


def check_options(params):
    """proxmox_vm_status's input check: VM names, then the connection options (raises before any request)."""
    check_names(params['names'])
    ConnectionSettings.from_params(params)
    return []


def run_vm_status(run):
    """proxmox_vm_status: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient

    params = run.params
    client = ProxmoxClient(ConnectionSettings.from_params(params))
    with run.stage('cannot read the VMs'):
        result = vm_power_states(client, names=params['names'], identities=params['identities'])
    return dict(result, changed=False)
