#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_node
short_description: Patch and apply a Talos node's machine config, reboot or shut the node down
version_added: 0.1.0
description:
  - Reads the node's current machine config through the Talos resource API, patches it client-side with
    Talos' merge rules (strategic merge or JSON6902) and applies the whole config with C(ApplyConfiguration).
  - Idempotent - nothing is sent when the patched config equals the running one (and the on-disk one).
  - Knows which changes need a reboot (a v1alpha1 change outside C(.debug), C(.cluster) and C(.machine)'s
    network, certSANs, kubelet, time, install, sysctls, sysfs, logging, registries, node labels/annotations/taints
    and C(features.kubePrism)); a change of the node's address is waited for at the new address.
  - Check mode runs the node's own dry run and returns its summary and config diff.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.talos_auth
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: The node's dry run (C(dry_run=true)) is asked for the summary; nothing is applied.
  diff_mode:
    support: full
    details: A unified diff of the machine config (it may show config values next to the changed lines).
options:
  node:
    description:
      - Address of the node to act on, reached through the endpoints (C(node) metadata).
      - When omitted, the first answering endpoint itself.
    type: str
  state:
    description:
      - V(present) applies O(config_patches)/O(config).
      - V(rebooted) reboots the node (always a change) and, with O(wait), waits until it is RUNNING and ready again.
      - V(shutdown) shuts the node down; a node that does not answer is reported unchanged with C(reachable=false).
    type: str
    choices: [present, rebooted, shutdown]
    default: present
  config_patches:
    description:
      - Patches applied in order to the current config (or to O(config)).
      - A mapping or YAML text of one or more documents is a strategic merge patch, merged as C(talosctl patch)
        merges it - null, empty strings and 0 in the patch are skipped, lists append, except C(interfaces) merged
        on C(interface)/C(deviceSelector), C(vlans) on C(vlanId), C(admissionControl) on C(name); pod/service
        subnets and C(auditPolicy) are replaced, C(extraArgs) take each key's value from the patch; typed
        documents match on C(apiVersion)+C(kind)+C(name). C($patch) set to C(delete) removes a key, a list item
        (matched on its first key) or a document; on an inner key of a list item it is rejected, as Talos does.
      - YAML text is read as YAML 1.2 (C(on), C(yes), C(no) stay strings).
      - A list of C(op)/C(path) mappings is a JSON6902 patch (only on a single-document v1alpha1 config).
    type: list
    elements: raw
  config:
    description:
      - A complete machine config (multi-document YAML) to apply instead of the current one (patches still apply).
    type: str
  apply_mode:
    description:
      - V(auto) lets the node reboot only when the change needs it; V(no_reboot) and V(try) refuse a change
        that needs a reboot; V(reboot) always reboots; V(staged) writes the config for the next boot;
        V(staged_if_needing_reboot) stages a change that needs a reboot and applies any other at once.
      - Whether a change needs a reboot is asked of the node (a dry run in mode C(AUTO)); only when it gives no
        answer the module uses Talos' own rule (C(CanApplyImmediate), Talos 1.9 to 1.13; from 1.14 nothing needs
        a reboot).
    type: str
    choices: [auto, no_reboot, reboot, staged, try, staged_if_needing_reboot]
    default: auto
  try_timeout:
    description:
      - With O(apply_mode=try), seconds after which the node rolls the config back.
    type: int
  reboot_mode:
    description:
      - C(RebootRequest) mode for O(state=rebooted).
      - V(force) (skip the cleanup phases) exists only from Talos v1.12; the module reads the node's version
        first and fails on an older node, which would otherwise reboot gracefully without saying so.
    type: str
    choices: [default, powercycle, force]
    default: default
  force:
    description:
      - With O(state=shutdown), skip the graceful parts (C(ShutdownRequest.force)).
    type: bool
    default: false
  wait:
    description:
      - Wait for the node - RUNNING and ready after a reboot (at its new address after an address change),
        not answering after a shutdown.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait.
    type: int
    default: 600
  poll_interval:
    description:
      - Seconds between two status reads while waiting.
    type: float
    default: 2.0
  insecure:
    description:
      - The node is in maintenance mode (no config, e.g. after a reset that wiped C(STATE)) - connect to
        O(node) (or O(endpoints)) without a client certificate and without verifying its self-signed certificate
        (C(talosctl --insecure)), and apply O(config) (patched with O(config_patches)). Always a change.
      - Waiting for the node afterwards uses the normal mutual TLS (O(talosconfig) or O(ca)/O(crt)/O(key)), at the
        address of the applied config; without credentials the module returns after the apply.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Label a worker (applies without a reboot)
  tazlab.resilience.talos_node:
    talosconfig: ~/.talos/config
    node: 10.0.0.21
    config_patches:
      - machine:
          nodeLabels:
            topology.kubernetes.io/zone: rack-7

- name: Move a control plane to a new address, wait for it there
  tazlab.resilience.talos_node:
    node: 10.0.0.12
    config_patches:
      - machine:
          network:
            interfaces:
              - interface: eth0
                $patch: delete
      - machine:
          network:
            interfaces:
              - interface: eth0
                addresses: [10.0.1.12/24]
                routes: [{network: 0.0.0.0/0, gateway: 10.0.1.1}]
          certSANs: [10.0.1.12]

- name: Stage a kernel module for the next reboot
  tazlab.resilience.talos_node:
    node: 10.0.0.21
    apply_mode: staged_if_needing_reboot
    config_patches:
      - machine:
          kernel:
            modules: [{name: drbd}]

- name: Reboot and wait until ready
  tazlab.resilience.talos_node:
    node: 10.0.0.21
    state: rebooted

- name: Give a wiped node (maintenance mode) its config back
  tazlab.resilience.talos_node:
    node: 10.0.0.21
    insecure: true
    config: "{{ lookup('ansible.builtin.file', 'worker-01.yaml') }}"
"""

RETURN = r"""
node:
  description: The node acted on (as given).
  returned: always
  type: str
mode:
  description: The apply mode planned (V(staged_if_needing_reboot) resolved to V(staged) or V(no_reboot)).
  returned: state=present
  type: str
applied_mode:
  description: The mode the node reports it used (V(auto) resolves to V(reboot) or V(no_reboot)).
  returned: state=present and changed, not in check mode
  type: str
mode_details:
  description: The node's words, e.g. C(Applied configuration without a reboot).
  returned: state=present and changed, not in check mode
  type: str
dry_run_summary:
  description: The node's dry-run summary (C(Dry run summary:) ... C(Config diff:) or C(No changes.)).
  returned: check mode with a change
  type: str
reboot_required:
  description: Whether the change needs a reboot to take effect.
  returned: state=present
  type: bool
reboot_judged_by:
  description:
    - Who decided RV(reboot_required) - V(node) (its dry run in mode C(AUTO)), V(rule) (the client-side copy of
      Talos' C(CanApplyImmediate) rule for the node's version, when the dry run gives no answer) or
      V(unchanged) (no change).
  returned: state=present
  type: str
talos_version:
  description: The node's Talos version, read before a O(reboot_mode=force) reboot.
  returned: state=rebooted with reboot_mode=force
  type: str
rebooting:
  description: Whether the apply rebooted the node.
  returned: state=present and changed, not in check mode
  type: bool
address_before:
  description: The node's first static address in the current config.
  returned: state=present
  type: str
address_after:
  description: The node's first static address once the config is live.
  returned: state=present
  type: str
status:
  description: The node's MachineStatus after waiting.
  returned: when waited for a reboot or an address change
  type: dict
  sample: {stage: running, ready: true, unmet_conditions: []}
reachable:
  description: Whether the node answered (O(state=shutdown)).
  returned: state=shutdown
  type: bool
actor_id:
  description: The actor id of the reboot or shutdown.
  returned: state=rebooted or shutdown, not in check mode
  type: str
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import (
    merge_auth_kwargs, talos_auth_argument_spec, talos_libraries)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.node import (
    APPLY_MODES, STATES, check_node_options, run_node_module)


def argument_spec():
    spec = talos_auth_argument_spec()
    spec.update(
        node=dict(type='str'),
        state=dict(type='str', default='present', choices=list(STATES)),
        config_patches=dict(type='list', elements='raw'),
        config=dict(type='str'),
        apply_mode=dict(type='str', default='auto', choices=list(APPLY_MODES)),
        try_timeout=dict(type='int'),
        reboot_mode=dict(type='str', default='default', choices=['default', 'powercycle', 'force']),
        force=dict(type='bool', default=False),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=600),
        poll_interval=dict(type='float', default=2.0),
        insecure=dict(type='bool', default=False),
    )
    return spec


def main():
    run_module(argument_spec(), run_node_module, requires=[talos_libraries], check=check_node_options,
               **merge_auth_kwargs())


if __name__ == '__main__':
    main()
