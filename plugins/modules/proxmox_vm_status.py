#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_vm_status
short_description: Read the power state of every VM of a Proxmox VE cluster in one go
version_added: 0.1.0
description:
  - Lists the QEMU VMs of a Proxmox VE cluster with their power state, PVE node, HA state and lock,
    from C(/cluster/resources) and C(/cluster/status), in two requests whatever the size of the cluster.
  - A VM whose PVE node is offline has the power state V(unknown), never V(stopped).
  - With O(identities) (the default) it also reads each VM's config for its SMBIOS UUID (C(smbios1)), the
    identity that links a VM to a Kubernetes node (C(status.nodeInfo.systemUUID)); names prove nothing.
  - Used by the P(tazlab.resilience.disaster_recovery#role) role to see a powered-off node before
    Kubernetes notices it; it never changes anything.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.proxmox_auth
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
options:
  names:
    description:
      - Only report the VMs with these names (for example the names of the Kubernetes nodes).
      - Each must be a VM name as PVE accepts it (letters, digits, C(-) and C(.)); anything else fails before
        any request.
      - To match VMs to Kubernetes nodes, do not filter by name; the plan needs every VM to see two VMs
        carrying one SMBIOS UUID.
    type: list
    elements: str
  identities:
    description:
      - Read the SMBIOS UUID of every VM (one config read per VM on an online PVE node).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Power state of the cluster's VMs
  tazlab.resilience.proxmox_vm_status:
    api_host: pve1.example.org
    api_token_id: root@pam!recovery
    api_token_secret: "{{ vault_pve_token }}"
  register: pve

- name: Show the stopped ones
  ansible.builtin.debug:
    msg: "{{ pve.vms | selectattr('status', 'equalto', 'stopped') | map(attribute='name') }}"
"""

RETURN = r"""
vms:
  description: The VMs, by VMID.
  returned: success
  type: list
  elements: dict
  contains:
    vmid:
      description: VM ID.
      type: int
    name:
      description: VM name (absent from the listing for a VM on an offline node).
      type: str
    node:
      description: PVE node the VM is on.
      type: str
    status:
      description: V(running), V(stopped), V(paused) or V(unknown) (its PVE node is offline).
      type: str
    hastate:
      description: HA state when the VM is HA-managed.
      type: str
    lock:
      description: Lock held on the VM (backup, migrate...), if any.
      type: str
    smbios_uuid:
      description: The VM's SMBIOS UUID (C(smbios1) C(uuid=)); null when it cannot be read (PVE node offline).
      type: str
      returned: when O(identities) is true
    identity_readable:
      description: Whether the VM's config (and so its SMBIOS UUID) could be read.
      type: bool
      returned: when O(identities) is true
  sample:
    - {vmid: 103, name: worker-new-03, node: pve2, status: stopped, hastate: null, lock: null,
       smbios_uuid: 5b0f7a7e-4a53-4a8e-9a3c-0c1d2e3f4a03, identity_readable: true}
by_uuid:
  description: Lower-case SMBIOS UUID to the VMIDs that carry it (more than one is a duplicate).
  returned: success
  type: dict
  sample: {5b0f7a7e-4a53-4a8e-9a3c-0c1d2e3f4a03: [103]}
by_name:
  description: The same VMs keyed by name.
  returned: success
  type: dict
quorate:
  description: Whether the PVE cluster has quorum.
  returned: success
  type: bool
pve_nodes:
  description: PVE node name to online flag.
  returned: success
  type: dict
  sample: {pve1: true, pve2: true}
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (
    merge_auth_kwargs, proxmox_auth_argument_spec, proxmox_libraries,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.inventory import check_options, run_vm_status
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    spec = proxmox_auth_argument_spec()
    spec.update(names=dict(type='list', elements='str'), identities=dict(type='bool', default=True))
    return spec


def main():
    run_module(argument_spec(), run_vm_status, requires=[proxmox_libraries], check=check_options,
               **merge_auth_kwargs())


if __name__ == '__main__':
    main()
