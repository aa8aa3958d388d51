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

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tazlab.resilience.plugins.module_utils.drill import report, run
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import (
    HAS_K8S, K8S_IMPORT_ERROR, client_from_params,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (
    ConnectionSettings, proxmox_auth_argument_spec,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
    HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR, ProxmoxClient,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError


def _proxmox(module):
    if not HAS_PROXMOXER:
        module.fail_json(msg=missing_required_lib('proxmoxer'), exception=PROXMOXER_IMPORT_ERROR)
    if not module.params['proxmox']:
        module.fail_json(msg='proxmox is required for action={0}'.format(module.params['action']))
    try:
        return ProxmoxClient(ConnectionSettings.from_params(module.params['proxmox']))
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def _write_reports(results, dest, check_mode):
    files = {os.path.join(dest, 'drill.json'): report.render_json({'drills': results}),
             os.path.join(dest, 'drill.md'): report.render_markdown(results)}
    for r in results:
        files[os.path.join(dest, 'drill-{0}-{1}.svg'.format(r['node'], r.get('mode')))] = report.render_svg(r)
    changed = False
    for path, content in sorted(files.items()):
        try:
            with open(path, encoding='utf-8') as fh:
                same = fh.read() == content
        except OSError:
            same = False
        if same:
            continue
        changed = True
        if not check_mode:
            os.makedirs(dest, exist_ok=True)
            with open(path, 'w', encoding='utf-8') as fh:
                fh.write(content)
    return changed, sorted(files)


def main():
    spec = k8s_argument_spec(
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
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_if=[
        ('action', 'run', ['node', 'proxmox']),
        ('action', 'heal', ['node', 'proxmox']), ('action', 'verify', ['snapshot']),
        ('action', 'report', ['results', 'dest'])])
    p = module.params
    if p['timeout'] <= 0 or p['poll_interval'] <= 0 or p['wait_timeout'] < 0:
        module.fail_json(msg='timeout and poll_interval must be positive, wait_timeout >= 0')
    if p['action'] == 'report':
        if not report.HAS_MATPLOTLIB:
            module.fail_json(msg=missing_required_lib('matplotlib'), exception=report.MATPLOTLIB_IMPORT_ERROR)
        changed, files = _write_reports(p['results'], p['dest'], module.check_mode)
        module.exit_json(changed=changed, files=files)
    if not HAS_K8S:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=K8S_IMPORT_ERROR)
    kw = dict(lease_namespace=p['lease_namespace'], longhorn_namespace=p['longhorn_namespace'])
    try:
        client = client_from_params(p)
        if p['action'] == 'preflight':
            state = run.snapshot(client, **kw)
            targets = run.choose_targets(state, p['nodes'], p['all_workers'])
            refusals = run.preflight_refusals(state, targets, p['allow_control_plane'])
            if not targets:
                refusals.append('no node to drill (give nodes or all_workers)')
            if refusals:
                module.fail_json(msg='the drill must not start: ' + '; '.join(refusals), refusals=refusals,
                                 snapshot=state, targets=targets)
            module.exit_json(changed=False, snapshot=state, refusals=[], targets=targets)
        if p['action'] == 'verify':
            after, diff = run.wait_back(client, p['snapshot'], p['wait_timeout'], poll_interval=max(p['poll_interval'], 0.5),
                                        **kw)
            if diff:
                module.fail_json(msg='not back to the pre-drill state: ' + '; '.join(diff), differences=diff,
                                 snapshot=after)
            module.exit_json(changed=False, snapshot=after, differences=[])
        px = _proxmox(module)
        if p['action'] == 'heal':
            node = client.get_node(p['node'])
            vm = run.find_vm_by_uuid(px, run._uuid(node))
            changed = False
            if not module.check_mode:
                changed = run.heal_link(px, vm)
            module.exit_json(changed=changed, vm=vm)
        if module.check_mode:
            node = client.get_node(p['node'])
            vm = run.find_vm_by_uuid(px, run._uuid(node))
            module.exit_json(changed=True, result={'node': p['node'], 'fault': p['fault'], 'mode': p['mode'],
                                                   'vm': vm, 'planned': True})
        result, injection = run.observe_loop(client, px, p['node'], fault=p['fault'], timeout=p['timeout'],
                                             poll_interval=p['poll_interval'], progress_file=p['progress_file'])
        result['mode'] = p['mode']
        module.exit_json(changed=True, result=result, injection=injection)
    except run.DrillError as exc:
        module.fail_json(msg=str(exc))
    except (K8sError, ProxmoxError) as exc:
        module.fail_json(msg='{0}'.format(exc))


if __name__ == '__main__':
    main()
