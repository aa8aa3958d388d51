# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster inventory: every Kubernetes node matched to the Proxmox VM that carries its SMBIOS UUID.

Used by the ``tazlab.resilience.cluster`` inventory plugin; plain Python that tests drive without Ansible.

* ``read_cluster(k8s, pve)`` reads the nodes (one list request) and every QEMU VM (``/cluster/resources``
  once, then each VM's config for its ``smbios1`` uuid). A VM whose config cannot be read (its PVE host
  is offline: the call is proxied there) is listed in ``unreadable_vms``.
* ``build_inventory(cluster, ...)`` is pure: hosts with their variables and the groups. A node is matched
  by UUID across all VMs, never by name. It is ``unfenceable`` when no VM or several VMs carry its
  UUID, or when no VM matched but some VMs could not be read (the right one may be among them).
"""

from __future__ import annotations

import re

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import system_uuid_of
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    is_control_plane, name_of, node_internal_ips, node_ready,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import parse_smbios_uuid
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError

__all__ = ['read_cluster', 'build_inventory', 'group_name', 'normalise_uuid', 'TALOS_DEFAULT_PORT']

TALOS_DEFAULT_PORT = 50000


def normalise_uuid(value):
    """Lower case without braces; SMBIOS UUIDs are compared case-insensitively (as the Proxmox CCM does)."""
    return str(value or '').strip().strip('{}').lower()


def group_name(text):
    """An Ansible-safe group name (letters, digits, underscores)."""
    return re.sub(r'[^A-Za-z0-9_]', '_', str(text))


def _ha_managed(hastate):
    """/cluster/resources' hastate: absent = no HA resource; 'ignored' = HA leaves the VM alone (managed 0)."""
    return bool(hastate) and hastate != 'ignored'


def read_cluster(k8s, pve):
    """{'nodes': [node dicts], 'vms': [{vmid, name, node, status, hastate, uuid}], 'unreadable_vms': [...],
    'pve_hosts': {host: online}}.

    k8s: a K8sClient. pve: a ProxmoxClient. Raises their classified errors (K8sError, ProxmoxError).
    """
    nodes = k8s.list_nodes()
    hosts = pve.cluster_status()['nodes']
    vms, unreadable = [], []
    for res in pve.get('cluster/resources', type='vm') or []:
        if res.get('type') != 'qemu' or res.get('template') in (1, True, '1'):
            continue
        vm = {'vmid': int(res.get('vmid')), 'name': res.get('name'), 'node': res.get('node'),
              'status': res.get('status') or 'unknown', 'hastate': res.get('hastate')}
        if hosts and not hosts.get(vm['node'], False):
            vm['status'] = 'unknown'
        try:
            config = pve.vm_config(vm['node'], vm['vmid'])
        except ProxmoxError as exc:
            unreadable.append({'vmid': vm['vmid'], 'node': vm['node'], 'error': str(exc)})
            continue
        vm['uuid'] = normalise_uuid(parse_smbios_uuid(config.get('smbios1')))
        vms.append(vm)
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
    by_uuid = {}
    for vm in cluster.get('vms') or []:
        uuid = normalise_uuid(vm.get('uuid'))
        if uuid:
            by_uuid.setdefault(uuid, []).append(vm)
    unreadable = cluster.get('unreadable_vms') or []
    hosts, groups, unfenceable = {}, {'control_plane': [], 'workers': [], 'unfenceable': []}, {}
    for node in sorted(cluster.get('nodes') or [], key=name_of):
        name = name_of(node)
        uuid = normalise_uuid(system_uuid_of(node))
        ips = node_internal_ips(node)
        ip = ips[0] if ips else None
        role = 'control-plane' if is_control_plane(node) else 'worker'
        matches = by_uuid.get(uuid, []) if uuid else []
        hv = {
            'node_name': name,
            'node_role': role,
            'node_ready': node_ready(node),
            'node_internal_ip': ip,
            'system_uuid': uuid or None,
            'proxmox_vmids': [vm['vmid'] for vm in matches],
            'proxmox_vmid': None, 'proxmox_node': None, 'proxmox_vm_name': None, 'proxmox_ha_managed': None,
            'talos_node': ip,
            'talos_endpoint': '{0}:{1}'.format(ip, port) if ip else None,
        }
        if ip:
            hv['ansible_host'] = ip
        reason = None
        if not uuid:
            reason = 'the node reports no systemUUID (status.nodeInfo.systemUUID)'
        elif len(matches) > 1:
            reason = 'several VMs carry its SMBIOS UUID {0}: vmids {1}'.format(
                uuid, ', '.join(str(vm['vmid']) for vm in matches))
        elif not matches and unreadable:
            reason = 'no readable VM carries its SMBIOS UUID {0}; the config of VMs {1} could not be read'.format(
                uuid, ', '.join(str(v['vmid']) for v in unreadable))
        elif not matches:
            reason = 'no VM carries its SMBIOS UUID {0}'.format(uuid)
        else:
            vm = matches[0]
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
