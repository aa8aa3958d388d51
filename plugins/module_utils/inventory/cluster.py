# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster inventory: every Kubernetes node matched to the Proxmox VM that carries its SMBIOS UUID.

Used by the ``tazlab.resilience.cluster`` inventory plugin; plain Python that tests drive without Ansible.

* ``read_cluster(k8s, pve)`` reads the nodes (one list request) and every QEMU VM (``/cluster/resources``
  once, then each VM's config for its ``smbios1`` uuid). A VM whose config cannot be read (its PVE host
  is offline: the call is proxied there) is listed in ``unreadable_vms``.
* ``build_inventory(cluster, ...)`` is pure: hosts with their variables and the groups. A node is matched
  by UUID across all VMs, never by name, by ``proxmox.identity.match_node`` (the rule the fence and the
  remediation plan apply). It is ``unfenceable`` when no VM or several VMs carry its UUID, or when a VM
  whose UUID could not be read may be its VM (the right one, or a second one, may be among them).
"""

from __future__ import annotations

import re

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import system_uuid_of
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    is_control_plane, name_of, node_internal_ips, node_ready,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import identity

__all__ = ['read_cluster', 'build_inventory', 'group_name', 'normalise_uuid', 'TALOS_DEFAULT_PORT']

TALOS_DEFAULT_PORT = 50000


normalise_uuid = identity.norm_uuid


def group_name(text):
    """An Ansible-safe group name (letters, digits, underscores)."""
    return re.sub(r'[^A-Za-z0-9_]', '_', str(text))


def _ha_managed(hastate):
    """/cluster/resources' hastate: absent = no HA resource; 'ignored' = HA leaves the VM alone (managed 0)."""
    return bool(hastate) and hastate != 'ignored'


def read_cluster(k8s, pve):
    """{'nodes': [node dicts], 'vms': [{vmid, name, node, status, hastate, uuid}], 'unreadable_vms': [...],
    'pve_hosts': {host: online}}.

    k8s: a K8sClient. pve: a ProxmoxClient. The VMs are read by ``proxmox.identity.read_identities``, as
    the fence and the remediation plan read them. Raises their classified errors (K8sError, ProxmoxError).
    """
    nodes = k8s.list_nodes()
    hosts = pve.cluster_status()['nodes']
    vms, unreadable = [], []
    for vm in identity.read_identities(pve, online=hosts):
        entry = {'vmid': vm['vmid'], 'name': vm.get('name'), 'node': vm.get('node'),
                 'status': vm.get('status') or 'unknown', 'hastate': vm.get('hastate')}
        if hosts and not hosts.get(entry['node'], False):
            entry['status'] = 'unknown'
        if not vm['identity_readable']:
            unreadable.append({'vmid': entry['vmid'], 'node': entry['node'], 'name': entry['name'],
                               'error': vm.get('identity_error')})
            continue
        entry['uuid'] = normalise_uuid(vm['smbios_uuid'])
        vms.append(entry)
    vms.sort(key=lambda v: v['vmid'])
    unreadable.sort(key=lambda v: v['vmid'])
    return {'nodes': nodes, 'vms': vms, 'unreadable_vms': unreadable, 'pve_hosts': hosts}


def build_inventory(cluster, talos_port=None, host_group_prefix='pve_'):
    """{'hosts': {node name: vars}, 'groups': {group: [node names]}, 'unfenceable': {node: reason}}.

    Host variables: node_name, node_role (control-plane|worker), node_ready, node_internal_ip,
    ansible_host, system_uuid, proxmox_vmid, proxmox_node, proxmox_vm_name, proxmox_ha_managed
    (the last four None when the node has no single VM), proxmox_vmids (every VM carrying the UUID),
    talos_node (the InternalIP), talos_endpoint (``address:port``), and unfenceable_reason when it is.
    Groups: control_plane, workers, unfenceable, and ``<prefix><PVE host>`` per host carrying a node's VM.
    """
    port = int(talos_port or TALOS_DEFAULT_PORT)
    candidates = [dict(vm, smbios_uuid=vm.get('uuid'), identity_readable=True) for vm in cluster.get('vms') or []]
    candidates += [dict(vm, smbios_uuid=None, identity_readable=False) for vm in cluster.get('unreadable_vms') or []]
    hosts, groups, unfenceable = {}, {'control_plane': [], 'workers': [], 'unfenceable': []}, {}
    for node in sorted(cluster.get('nodes') or [], key=name_of):
        name = name_of(node)
        uuid = normalise_uuid(system_uuid_of(node))
        ips = node_internal_ips(node)
        ip = ips[0] if ips else None
        role = 'control-plane' if is_control_plane(node) else 'worker'
        found = identity.match_node(candidates, uuid, name)
        hv = {
            'node_name': name,
            'node_role': role,
            'node_ready': node_ready(node),
            'node_internal_ip': ip,
            'system_uuid': uuid or None,
            'proxmox_vmids': [vm['vmid'] for vm in found['matches']],
            'proxmox_vmid': None, 'proxmox_node': None, 'proxmox_vm_name': None, 'proxmox_ha_managed': None,
            'talos_node': ip,
            'talos_endpoint': '{0}:{1}'.format(ip, port) if ip else None,
        }
        if ip:
            hv['ansible_host'] = ip
        reason = found['reason']
        if found['identity'] == identity.OK:
            vm = found['vm']
            hv.update(proxmox_vmid=vm['vmid'], proxmox_node=vm['node'], proxmox_vm_name=vm.get('name'),
                      proxmox_ha_managed=_ha_managed(vm.get('hastate')))
            groups.setdefault(group_name(host_group_prefix + str(vm['node'])), []).append(name)
        if reason:
            hv['unfenceable_reason'] = reason
            unfenceable[name] = reason
            groups['unfenceable'].append(name)
        groups['control_plane' if role == 'control-plane' else 'workers'].append(name)
        hosts[name] = hv
    return {'hosts': hosts, 'groups': groups, 'unfenceable': unfenceable}
