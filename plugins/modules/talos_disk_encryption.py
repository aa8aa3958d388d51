#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_disk_encryption
short_description: Encrypt a running Talos node's STATE and EPHEMERAL with LUKS2, keeping etcd and Longhorn whole
version_added: 0.2.0
description:
  - Encrypts one node. Only an empty partition can be encrypted, so the node's STATE and EPHEMERAL are wiped -
    on a control plane that is its etcd data, on a worker every Longhorn replica under C(/var/lib/longhorn).
  - Refuses, before any change, unless the cluster can lose the node - etcd keeps quorum with the member gone
    (every other member healthy and voting), and every Longhorn volume attached to the node or with a replica
    on it has a healthy replica on another node (none would be left without one).
  - Then cordons and drains the node through the Eviction API (PodDisruptionBudgets honoured), makes a control
    plane leave etcd, applies the config with the encryption staged (a VolumeConfig per volume from Talos 1.11,
    C(machine.systemDiskEncryption) before), resets it (graceful, reboot) wiping each volume by label, applies
    the full config again in maintenance mode when STATE was wiped, waits until the node runs encrypted,
    its etcd member is back and voting, the Kubernetes node is Ready and Longhorn rebuilt, and uncordons it.
  - A node already encrypted is left alone (what an interrupted run left - a cordon, a node waiting in
    maintenance mode with the config saved in O(state_dir) - is finished).
  - Key types have consequences. V(nodeID) is derived from the VM's SMBIOS UUID, which anyone with VM.Audit on
    Proxmox can read, and changing the VM's smbios1 afterwards makes the volumes unopenable. V(static) on
    STATE is kept in clear in META. V(tpm) needs a vTPM and SecureBoot. The module warns about them.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.talos_auth
  - tazlab.resilience.k8s_auth.nested
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: Runs the preflight checks and returns the node's plan and its dry run of the staged config.
  diff_mode:
    support: none
options:
  node:
    description: The node's Talos address.
    type: str
    required: true
  node_name:
    description: The Kubernetes node name (and Longhorn node name).
    type: str
    required: true
  hostname:
    description: The node's hostname as etcd knows it, when it differs from O(node_name).
    type: str
  role:
    description: The node's machine type.
    type: str
    choices: [controlplane, worker]
    required: true
  control_planes:
    description: Talos addresses of the control planes (etcd is read from one that is not O(node)).
    type: list
    elements: str
    required: true
  encryption_key:
    description: The LUKS2 key of both volumes (not the Talos client O(key)).
    type: dict
    suboptions:
      type:
        description: Key type.
        type: str
        choices: [nodeID, static, tpm, kms]
        default: nodeID
      slot:
        description: Key slot.
        type: int
        default: 0
      passphrase:
        description: The passphrase of a V(static) key (from a vault).
        type: str
      endpoint:
        description: The KMS endpoint of a V(kms) key.
        type: str
      pcrs:
        description: TPM PCRs of a V(tpm) key (Talos defaults to PCR 7).
        type: list
        elements: int
      lock_to_state:
        description: Lock the EPHEMERAL key to STATE (a salt kept in STATE; recommended for EPHEMERAL).
        type: bool
        default: false
  volumes:
    description: The volumes to encrypt (each wiped by label; never empty, which would wipe the whole disk).
    type: list
    elements: str
    default: [STATE, EPHEMERAL]
  state:
    description:
      - V(encrypted) encrypts the node (or finishes an interrupted run).
      - V(status) only reports where the node is (stage, volumes, maintenance mode).
    type: str
    choices: [encrypted, status]
    default: encrypted
  state_dir:
    description:
      - Directory on the controller where the node's full config is saved (mode 0600, it holds secrets)
        before the reset, so a rerun can apply it in maintenance mode after a failure.
    type: path
    required: true
  maintenance_endpoint:
    description: Where the node's maintenance service answers (C(address:port)); default O(node).
    type: str
  longhorn:
    description: Check and wait for Longhorn (volumes.longhorn.io, replicas.longhorn.io).
    type: bool
    default: true
  min_healthy_elsewhere:
    description: Healthy replicas each volume needs outside the node.
    type: int
    default: 1
  k8s_auth:
    description:
      - Kubernetes connection options, with the names, aliases, defaults and C(K8S_AUTH_*) environment fallbacks
        of the C(tazlab.resilience.k8s_auth) doc fragment (and of kubernetes.core). Options the dict does not
        give are taken from their environment variables (AWX's Kubernetes credentials inject those), so V({})
        means the environment.
      - Without it no drain, no Longhorn checks and no Ready wait happen.
      - Nested so that its options never mix with the Talos connection options.
      - The old name C(kubernetes) is an alias.
    type: dict
    aliases: [ kubernetes ]
  drain_timeout:
    description: Seconds for the drain.
    type: float
    default: 300
  wait_timeout:
    description: Seconds for each wait after the reset.
    type: float
    default: 900
  poll_interval:
    description: Seconds between checks.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Encrypt worker-new-01 (nodeID key)
  tazlab.resilience.talos_disk_encryption:
    talosconfig: /secure/talosconfig
    node: 10.0.0.21
    node_name: worker-new-01
    role: worker
    control_planes: [10.0.0.11, 10.0.0.12, 10.0.0.13]
    encryption_key: {type: nodeID}
    state_dir: /secure/hardening
    k8s_auth:
      kubeconfig: /secure/kubeconfig
"""

RETURN = r"""
plan:
  description: The steps for the node.
  returned: changed
  type: list
  elements: str
dry_run_summary:
  description: The node's dry run of the staged config.
  returned: check mode, when the node is not encrypted yet
  type: str
steps:
  description: The steps done, each with the seconds since the start.
  returned: always
  type: list
  elements: dict
volumes:
  description: VolumeStatus of each volume at the end (phase, provider, keys, mount_location, ...).
  returned: not in check mode
  type: dict
preflight:
  description: What the gates saw (etcd members and health, Longhorn volumes and replicas).
  returned: when the node was not encrypted yet
  type: dict
warnings:
  description:
    - The consequences of the key type, each also shown as an Ansible warning. The collection's one key for
      warnings, kept by C(register).
  returned: when there is one
  type: list
  elements: str
seconds:
  description: Seconds the node took.
  returned: not in check mode
  type: float
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.module import (
    run_disk_encryption_module)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_auth_suboptions
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import (
    merge_auth_kwargs, talos_auth_argument_spec, talos_libraries)


def argument_spec():
    spec = talos_auth_argument_spec()
    spec.update(
        node=dict(type='str', required=True),
        node_name=dict(type='str', required=True),
        hostname=dict(type='str'),
        role=dict(type='str', required=True, choices=['controlplane', 'worker']),
        control_planes=dict(type='list', elements='str', required=True),
        encryption_key=dict(type='dict', no_log=False, options=dict(
            type=dict(type='str', default='nodeID', choices=['nodeID', 'static', 'tpm', 'kms']),
            slot=dict(type='int', default=0),
            passphrase=dict(type='str', no_log=True),
            endpoint=dict(type='str'),
            pcrs=dict(type='list', elements='int'),
            lock_to_state=dict(type='bool', default=False),
        )),
        volumes=dict(type='list', elements='str', default=['STATE', 'EPHEMERAL']),
        state=dict(type='str', default='encrypted', choices=['encrypted', 'status']),
        state_dir=dict(type='path', required=True),
        maintenance_endpoint=dict(type='str'),
        longhorn=dict(type='bool', default=True),
        min_healthy_elsewhere=dict(type='int', default=1),
        k8s_auth=dict(type='dict', aliases=['kubernetes'], options=k8s_auth_suboptions()),
        drain_timeout=dict(type='float', default=300.0),
        wait_timeout=dict(type='float', default=900.0),
        poll_interval=dict(type='float', default=2.0),
    )
    return spec


def main():
    run_module(argument_spec(), run_disk_encryption_module, requires=[talos_libraries], **merge_auth_kwargs())


if __name__ == '__main__':
    main()
