#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_replace
short_description: Remove a dead Talos node from the cluster before its replacement, and verify the replacement
version_added: 0.2.0
description:
  - O(step=prepare), for a node whose VM will not come back (its disk or host is gone), refusing before any change -
    the old VM must be proven powered off by its SMBIOS UUID O(old_uuid) exactly as M(tazlab.resilience.proxmox_fence)
    proves it (one VM carries the UUID, its PVE host online, the PVE cluster quorate, status/current stopped now, HA
    not about to start it); for a control plane its etcd member (by hostname) is removed through the healthy
    control planes O(talos_endpoints), only while the voting members left keep a healthy majority; then the
    Kubernetes Node object is deleted.
  - A Node that already carries another systemUUID than O(old_uuid) is the replacement - nothing is done (idempotent).
  - O(step=verify), after the new VM (new SMBIOS UUID O(new_uuid)) joined, waits until the Node is Ready with the new
    UUID, for a control plane until etcd has it as a voting member with every member healthy, and until every attached
    Longhorn volume is healthy again (replicas rebuilt).
  - Used by the C(replace_node) entry point of the P(tazlab.resilience.provision#role) role, which creates the new VM
    and joins it between the two steps.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.k8s_auth
  - tazlab.resilience.proxmox_auth.nested
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: O(step=prepare) returns the plan (actions, the power proof, the quorum check); O(step=verify) reads once.
  diff_mode:
    support: none
options:
  step:
    description: V(prepare) (before the new VM) or V(verify) (after it joined).
    type: str
    choices: [prepare, verify]
    default: prepare
  node:
    description: The node's name (Kubernetes Node, Talos hostname, etcd member name).
    type: str
    required: true
  role:
    description: V(controlplane) or V(worker).
    type: str
    required: true
    choices: [controlplane, worker]
  old_uuid:
    description: The SMBIOS UUID of the dead VM. Required with O(step=prepare).
    type: str
  new_uuid:
    description:
      - The SMBIOS UUID of the new VM. Required with O(step=verify).
      - With O(step=prepare) the old VM is marked retired (its description names the new UUID, C(onboot) off), so
        M(tazlab.resilience.proxmox_talos_vms) refuses to start it again from an inventory that still has the old UUID.
    type: str
  talosconfig:
    description: The admin talosconfig (control planes only).
    type: path
  talos_context:
    description: Context of the talosconfig.
    type: str
  talos_endpoints:
    description: The healthy control planes (C(host:port)), never the dead one. Required for a control plane.
    type: list
    elements: str
  proxmox_auth:
    description:
      - The Proxmox VE connection, to prove the old VM powered off (by its SMBIOS UUID) before anything is removed. The options of
        the C(tazlab.resilience.proxmox_auth) doc fragment (O(proxmox_auth.api_host), O(proxmox_auth.api_user),
        O(proxmox_auth.api_token_id), O(proxmox_auth.api_token_secret), ...), with the same E(PROXMOX_*)
        environment fallbacks; in a role, pass the dict given to C(group/tazlab.resilience.proxmox) defaults.
      - Required with O(step=prepare).
      - Nested so that its C(validate_certs) never mixes with the Kubernetes O(validate_certs).
    type: dict
    default: {}
  longhorn:
    description: With O(step=verify), wait for every attached Longhorn volume to be healthy.
    type: bool
    default: true
  longhorn_namespace:
    description: Namespace of Longhorn.
    type: str
    default: longhorn-system
  timeout:
    description: Seconds O(step=verify) waits.
    type: float
    default: 900
  poll_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Remove the dead worker (proof of power off first)
  tazlab.resilience.node_replace:
    node: worker-new-02
    role: worker
    old_uuid: 4c4c4544-0082-4d10-8051-b4c04f4e3832
    kubeconfig: ~/.kube/config
    proxmox_auth: "{{ tazlab_proxmox }}"

- name: Wait for the replacement control plane and etcd
  tazlab.resilience.node_replace:
    step: verify
    node: cp-02
    role: controlplane
    new_uuid: 7e0c51b2-51f6-4e0b-a2d4-54f0f6a3d101
    kubeconfig: ~/.kube/config
    talosconfig: ~/.talos/config
    talos_endpoints: [192.168.1.71, 192.168.1.73]
"""

RETURN = r"""
actions:
  description: What O(step=prepare) did (or would do) - V(etcd_remove_member), V(delete_node), V(retire_old_vm).
  returned: step=prepare
  type: list
  elements: str
power:
  description: The power proof of the old VM (identity, vmid, PVE host, status, quorate).
  returned: step=prepare, unless the replacement has joined
  type: dict
quorum_check:
  description: Why removing the etcd member keeps quorum.
  returned: step=prepare for a control plane with a member
  type: str
etcd_members_before:
  description: The etcd members before the removal.
  returned: step=prepare for a control plane
  type: list
  elements: str
replaced:
  description: The Node already carries another UUID (its replacement joined); nothing was done.
  returned: when true
  type: bool
refused:
  description: Why the module refused.
  returned: failure by refusal
  type: list
  elements: str
state:
  description: What O(step=verify) saw last (node_ready, system_uuid, etcd_members, etcd_healthy, longhorn_not_healthy).
  returned: step=verify
  type: dict
"""


from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import proxmox_auth_suboptions
from ansible_collections.tazlab.resilience.plugins.module_utils.replace_node import libraries, run_node_replace
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    return k8s_argument_spec(
        step=dict(type='str', default='prepare', choices=['prepare', 'verify']),
        node=dict(type='str', required=True),
        role=dict(type='str', required=True, choices=['controlplane', 'worker']),
        old_uuid=dict(type='str'),
        new_uuid=dict(type='str'),
        talosconfig=dict(type='path'),
        talos_context=dict(type='str'),
        talos_endpoints=dict(type='list', elements='str'),
        proxmox_auth=dict(type='dict', default={}, options=proxmox_auth_suboptions()),
        longhorn=dict(type='bool', default=True),
        longhorn_namespace=dict(type='str', default='longhorn-system'),
        timeout=dict(type='float', default=900),
        poll_interval=dict(type='float', default=5),
    )


def main():
    run_module(argument_spec(), run_node_replace, requires=[libraries],
               required_if=[('step', 'prepare', ['old_uuid']), ('step', 'verify', ['new_uuid']),
                            ('role', 'controlplane', ['talos_endpoints'])])


if __name__ == '__main__':
    main()
