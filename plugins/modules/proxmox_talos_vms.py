#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_talos_vms
short_description: Create or clone the Talos VMs of a cluster on Proxmox VE, spread over the hosts
version_added: 0.2.0
description:
  - Makes sure every VM of O(vms) exists on the Proxmox VE cluster, is running and (for control planes by default)
    is a Proxmox HA resource, and returns each VM's address read from the QEMU guest agent.
  - A VM is created from the Talos ISO (O(vms[].iso)) with a blank disk booted first, or cloned from a template
    (O(vms[].template)), with the QEMU guest agent on, ballooning off, VirtIO SCSI (not single) and a fixed SMBIOS
    UUID (O(vms[].uuid)) in C(smbios1). The kubelet reports that UUID as the node's C(systemUUID); it is the
    identity M(tazlab.resilience.proxmox_fence) matches, so it must be recorded and never reused.
  - Idempotent - a VM is found by its SMBIOS UUID. A VM bearing the name without the UUID is taken over only when
    it carries this module's marker in its description and is stopped (a clone or create that was interrupted
    before its C(smbios1) was set); any other clash is a refusal, so a VM is never duplicated.
  - Placement - control planes go to distinct PVE hosts (refused, before any change, when fewer hosts are online
    than there are control planes, unless O(allow_colocation)); workers go to the hosts with the fewest workers
    of the list; VMs that exist stay on their host.
  - Check mode returns the plan (host, vmid, actions per VM) and reads nothing but GETs.
  - Sizing differences of an existing VM are reported in C(drift), not changed (that needs a reboot of the node).
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
    details: Returns the plan; only GET requests are sent.
  diff_mode:
    support: full
    details: Existence, host, vmid and power state of each VM before and after.
options:
  vms:
    description:
      - The VMs of the cluster.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: VM name (a DNS label; the Talos hostname by convention).
        type: str
        required: true
      role:
        description: V(controlplane) or V(worker).
        type: str
        required: true
        choices: [controlplane, worker]
      uuid:
        description:
          - The fixed SMBIOS UUID of the VM (C(smbios1 uuid=)). A replacement VM gets a new one.
        type: str
        required: true
      vmid:
        description: VMID to use; by default the next free one (C(GET /cluster/nextid)).
        type: int
      host:
        description: PVE host to put the VM on; by default the placement rule chooses.
        type: str
      iso:
        description: Volume of the Talos ISO (C(local:iso/metal-amd64.iso)); the VM is created with it.
        type: str
      template:
        description:
          - VMID or name of a template to clone. When several templates bear the name, the one on the target
            host is used (a template per host with local storage); otherwise the clone uses C(target), which
            needs shared storage.
        type: str
      cores:
        description: CPU cores (default from O(defaults), else 2).
        type: int
      sockets:
        description: CPU sockets (default 1).
        type: int
      memory:
        description: Memory in MiB (default 4096; Talos needs at least 2048).
        type: int
      cpu:
        description: CPU type (default V(host); Talos needs x86-64-v2).
        type: str
      machine:
        description: Machine type (default V(q35)).
        type: str
      bios:
        description: V(seabios) (default) or V(ovmf).
        type: str
      scsihw:
        description: SCSI controller (default V(virtio-scsi-pci)).
        type: str
      disk_size:
        description: Size of the new disk in GiB when created from the ISO (default 20).
        type: int
      storage:
        description: Storage of the new disk (default V(local-lvm)).
        type: str
      bridge:
        description: Bridge of net0 (default V(vmbr0)).
        type: str
      vlan:
        description: VLAN tag of net0.
        type: int
      mac:
        description: MAC address of net0 (a DHCP reservation); random by default.
        type: str
      ha:
        description: Add the VM to Proxmox HA (state started); default true for control planes.
        type: bool
      tags:
        description: Proxmox tags.
        type: list
        elements: str
      onboot:
        description: Start the VM when its host boots (default true).
        type: bool
      full_clone:
        description: Full clone (default true) or linked clone of the template.
        type: bool
      address:
        description:
          - The VM's address, when it is known in advance (a static plan); the guest agent is not asked.
        type: str
      replaces:
        description:
          - The SMBIOS UUID of the dead VM this one replaces (M(tazlab.resilience.node_replace) proved it powered
            off); that VM may keep the name and is left alone.
        type: str
  defaults:
    description:
      - Values for the suboptions of O(vms) a VM does not set (e.g. C(iso), C(memory), C(storage)).
    type: dict
  allow_colocation:
    description:
      - Allow control planes on the same PVE host (one host failure can then cost etcd its quorum).
    type: bool
    default: false
  read_addresses:
    description:
      - Poll the guest agent (C(GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces)) of every running VM
        without O(vms[].address) for the IPv4 of net0.
    type: bool
    default: true
  exclude_addresses:
    description:
      - Addresses never taken as a VM's own (the control-plane VIP, which the VIP holder also lists).
    type: list
    elements: str
  timeout:
    description:
      - Seconds to wait for each task (create, clone, start) and for a VM to run.
    type: int
    default: 300
  address_timeout:
    description:
      - Seconds to wait for the guest agent to report an address.
    type: int
    default: 300
"""

EXAMPLES = r"""
- name: Three control planes and four workers from the Talos ISO
  tazlab.resilience.proxmox_talos_vms:
    api_host: pve1.example.org
    api_token_id: provision@pve!ansible
    api_token_secret: "{{ vault_pve_token }}"
    exclude_addresses: [192.168.1.250]
    defaults:
      iso: local:iso/talos-v1.13.9-metal-amd64.iso
      storage: local-lvm
      memory: 8192
      cores: 4
    vms:
      - {name: cp-01, role: controlplane, uuid: 4c4c4544-0071-4d10-8051-b4c04f4e3731}
      - {name: cp-02, role: controlplane, uuid: 4c4c4544-0072-4d10-8051-b4c04f4e3732}
      - {name: cp-03, role: controlplane, uuid: 4c4c4544-0073-4d10-8051-b4c04f4e3733}
      - {name: worker-01, role: worker, uuid: 4c4c4544-0081-4d10-8051-b4c04f4e3831}
  register: talos_vms

- name: The plan only
  tazlab.resilience.proxmox_talos_vms:
    api_host: pve1.example.org
    api_password: "{{ vault_pve_password }}"
    vms: "{{ provision_vms }}"
  check_mode: true
"""

RETURN = r"""
vms:
  description: One entry per VM of O(vms), in order.
  returned: always
  type: list
  elements: dict
  sample:
    - name: cp-01
      role: controlplane
      uuid: 4c4c4544-0071-4d10-8051-b4c04f4e3731
      host: pve1
      vmid: 101
      status: running
      ha: true
      exists: true
      actions: []
      drift: {}
      address: 192.168.1.71
      address_source: guest_agent
by_name:
  description: The same entries keyed by VM name.
  returned: always
  type: dict
plan:
  description: The VMs with something to do, with their host and actions (V(create), V(clone), V(configure), V(start), V(ha_add)).
  returned: always
  type: list
  elements: dict
hosts:
  description: The online PVE hosts.
  returned: always
  type: list
  elements: str
requests:
  description: Number of Proxmox API requests sent.
  returned: always
  type: int
writes:
  description: The write requests sent (method, path).
  returned: always
  type: list
  elements: list
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (
    check_connection, merge_auth_kwargs, proxmox_auth_argument_spec, proxmox_libraries,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.provision import run_provision_vms
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module

VM_OPTIONS = dict(
    name=dict(type='str', required=True),
    role=dict(type='str', required=True, choices=['controlplane', 'worker']),
    uuid=dict(type='str', required=True),
    vmid=dict(type='int'),
    host=dict(type='str'),
    iso=dict(type='str'),
    template=dict(type='str'),
    cores=dict(type='int'),
    sockets=dict(type='int'),
    memory=dict(type='int'),
    cpu=dict(type='str'),
    machine=dict(type='str'),
    bios=dict(type='str'),
    scsihw=dict(type='str'),
    disk_size=dict(type='int'),
    storage=dict(type='str'),
    bridge=dict(type='str'),
    vlan=dict(type='int'),
    mac=dict(type='str'),
    ha=dict(type='bool'),
    tags=dict(type='list', elements='str'),
    onboot=dict(type='bool'),
    full_clone=dict(type='bool'),
    address=dict(type='str'),
    replaces=dict(type='str'),
)


def argument_spec():
    spec = proxmox_auth_argument_spec()
    spec.update(
        vms=dict(type='list', elements='dict', required=True, options=VM_OPTIONS),
        defaults=dict(type='dict'),
        allow_colocation=dict(type='bool', default=False),
        read_addresses=dict(type='bool', default=True),
        exclude_addresses=dict(type='list', elements='str'),
        timeout=dict(type='int', default=300),
        address_timeout=dict(type='int', default=300),
    )
    return spec


def main():
    run_module(argument_spec(), run_provision_vms, requires=[proxmox_libraries], check=check_connection,
               **merge_auth_kwargs())


if __name__ == '__main__':
    main()
