#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dr_drill
short_description: The steps of a disaster drill - snapshot and refusals, fault and observation, verification, report
version_added: 0.1.0
description:
  - Used by the C(tazlab.resilience.dr_drill) role; each O(action) is one step.
  - V(preflight) reads the pre-drill state (nodes, workloads' ready replicas, Longhorn volumes, remediation
    leases) and fails when the drill must not start (target not Ready or a control plane without
    O(allow_control_plane), another node NotReady, a remediation lease held, volumes degraded, etcd quorum).
  - V(run) injects the fault through Proxmox on the VM that carries the node's SMBIOS UUID (a hard stop proved
    stopped, or a partition by setting C(link_down=1) on C(net0)) and records the cluster's reaction on the API
    server's clock until every workload that ran on the node is Running again, or O(timeout) cluster seconds.
    In check mode it only reads and returns what it would drill.
  - V(heal) takes the NIC link back up after a partition drill.
  - V(verify) waits until the cluster is back to O(snapshot) (nodes Ready, no new taints or cordon, as many ready
    replicas, volumes healthy, no lease left) and fails if it is not within O(wait_timeout).
  - V(report) writes C(drill.json), C(drill.md) and one C(drill-<node>-<mode>.svg) timeline (next to the seed
    story's) per result into O(dest).
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.k8s_auth
  - tazlab.resilience.proxmox_connection
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: V(run) injects nothing in check mode; V(report) writes nothing.
  diff_mode:
    support: none
options:
  action:
    description: The step.
    type: str
    required: true
    choices: [preflight, run, heal, verify, report]
  nodes:
    description: The nodes to drill (V(preflight)); with O(all_workers) the workers are added.
    type: list
    elements: str
    default: []
  all_workers:
    description: Drill every worker in turn (V(preflight) returns them as RV(targets), in name order).
    type: bool
    default: false
  node:
    description: The node (V(run), V(heal)).
    type: str
  allow_control_plane:
    description: Allow drilling a control plane (V(preflight)).
    type: bool
    default: false
  fault:
    description: V(power_off) (hard stop) or V(partition) (NIC link down; the VM keeps running).
    type: str
    default: power_off
    choices: [power_off, partition]
  mode:
    description: A label for the report (V(recovery) when the collection's recovery runs, V(kubernetes) when not).
    type: str
    default: kubernetes
  timeout:
    description: Cluster seconds to observe at most (V(run)).
    type: float
    default: 480
  poll_interval:
    description: Real seconds between two observations (V(run)), or two checks (V(verify)).
    type: float
    default: 0.25
  progress_file:
    description: A file V(run) writes once the fault is injected (it then holds C(injected) true) and while it observes.
    type: path
  lease_namespace:
    description: Where remediation leases live.
    type: str
    default: kube-system
  longhorn_namespace:
    description: Longhorn's namespace.
    type: str
    default: longhorn-system
  snapshot:
    description: The pre-drill state V(preflight) returned (V(verify)).
    type: dict
  wait_timeout:
    description: Real seconds V(verify) waits for the pre-drill state.
    type: float
    default: 600
  results:
    description: Drill results (V(report)).
    type: list
    elements: dict
  dest:
    description: Directory for the report files (V(report)).
    type: path
"""

EXAMPLES = r"""
- name: Snapshot and refusals
  tazlab.resilience.dr_drill:
    action: preflight
    nodes: [worker-new-03]
  register: pre

- name: Pull the plug through Proxmox and watch
  tazlab.resilience.dr_drill:
    action: run
    node: worker-new-03
    proxmox: "{{ tazlab_proxmox }}"
    timeout: 480
  register: drill
"""

RETURN = r"""
snapshot:
  description: The cluster state (V(preflight), V(verify)).
  returned: preflight, verify
  type: dict
targets:
  description: The nodes to drill, in order (V(preflight)).
  returned: preflight
  type: list
  elements: str
refusals:
  description: Why the drill must not start (V(preflight)).
  returned: preflight
  type: list
  elements: str
result:
  description:
    - The drill (V(run)) with C(node), C(t0), C(outcome) (V(recovered) or V(blocked)), C(events) (C(t) seconds after
      the fault, C(time), C(kind), C(object), C(detail)), C(mttr) per workload (seconds, null when not back),
      C(blocked), C(workloads), C(vm), C(fault), C(mode).
  returned: run
  type: dict
differences:
  description: What still differs from the pre-drill state (V(verify)).
  returned: verify
  type: list
  elements: str
files:
  description: The report files (V(report)).
  returned: report
  type: list
  elements: str
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.drill.module import (
    check_options, libraries, run_drill_module)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import K8S_BOUNDS, k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import proxmox_auth_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    return k8s_argument_spec(
        action=dict(type='str', required=True, choices=['preflight', 'run', 'heal', 'verify', 'report']),
        nodes=dict(type='list', elements='str', default=[]),
        all_workers=dict(type='bool', default=False),
        node=dict(type='str'),
        allow_control_plane=dict(type='bool', default=False),
        proxmox=dict(type='dict', options=proxmox_auth_argument_spec(),
                     required_together=[('api_token_id', 'api_token_secret')]),
        fault=dict(type='str', default='power_off', choices=['power_off', 'partition']),
        mode=dict(type='str', default='kubernetes'),
        timeout=dict(type='float', default=480),
        poll_interval=dict(type='float', default=0.25),
        progress_file=dict(type='path'),
        lease_namespace=dict(type='str', default='kube-system'),
        longhorn_namespace=dict(type='str', default='longhorn-system'),
        snapshot=dict(type='dict'),
        wait_timeout=dict(type='float', default=600),
        results=dict(type='list', elements='dict'),
        dest=dict(type='path'),
    )


def main():
    run_module(argument_spec(), run_drill_module, requires=[libraries], check=check_options, bounds=K8S_BOUNDS,
               required_if=[('action', 'run', ['node', 'proxmox']), ('action', 'heal', ['node', 'proxmox']),
                            ('action', 'verify', ['snapshot']), ('action', 'report', ['results', 'dest'])])


if __name__ == '__main__':
    main()
