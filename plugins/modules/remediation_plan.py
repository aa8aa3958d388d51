#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: remediation_plan
short_description: Decide which unhealthy Kubernetes nodes may be fenced and freed now
version_added: 0.1.0
description:
  - Reads the nodes (one request) and the remediation leases (one request), joins them with the power
    state of their VMs (from M(tazlab.resilience.proxmox_vm_status)), and applies the guards of a safe
    recovery. It never changes anything.
  - A node is a candidate when its VM is seen stopped (already powered off, no need to wait for NotReady)
    or when it has not been Ready for O(unhealthy_seconds), measured with the cluster's clock.
  - Each node's VM is the one VM of the whole PVE cluster that carries the node's SMBIOS UUID
    (C(status.nodeInfo.systemUUID)), never the VM with the node's name. No such VM, or several, is a refusal
    naming the VMIDs and PVE hosts.
  - A node that is not Ready while its VM runs (hung, or cut off by a network partition) is fenced
    (STONITH) when its kubelet lease is silent; the runbook hard-stops it through Proxmox and proves it off
    before anything is freed. See O(fence_running).
  - A candidate is refused, with its reason, when it carries an exclude label; when no VM or several VMs
    carry its SMBIOS UUID; when its VM's power state is unknown (its PVE host is offline); when it is not
    Ready, its VM runs and O(fence_running) is off or its kubelet still renews its lease; when another
    actor holds its lease; when
    more nodes are unhealthy than O(max_unhealthy) or fewer healthy than O(min_healthy); and for a control
    plane, when another control plane is being remediated or when fencing it would break etcd quorum.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.k8s_auth
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
options:
  vms:
    description:
      - The VMs as M(tazlab.resilience.proxmox_vm_status) returns them (its RV(tazlab.resilience.proxmox_vm_status#module:vms)
        list, with C(smbios_uuid)), matched to nodes by SMBIOS UUID. Without it, detection relies on the Ready
        condition alone and
        a NotReady node's power state is not known to the plan (the fencing step still confirms it).
    type: list
    elements: dict
  unhealthy_seconds:
    description: How long a node must have been not Ready before it is a candidate (medik8s's default is 300).
    type: int
    default: 300
  max_unhealthy:
    description:
      - Refuse to remediate anything when more nodes than this are unhealthy; a count (V(2)) or a
        percentage of all nodes (V(40%)).
    type: str
  min_healthy:
    description:
      - Refuse to remediate anything when fewer nodes than this are healthy; a count or a percentage.
    type: str
  fence_running:
    description:
      - Plan nodes that are not Ready past O(unhealthy_seconds) while their VM runs and their kubelet lease
        is silent (hung or partitioned); the fence hard-stops them through Proxmox and proves them off before
        their storage is freed, as STONITH systems do.
      - V(false) leaves such nodes alone (refused) for a human to act.
    type: bool
    default: true
    aliases: [allow_running]
  proxmox_quorate:
    description:
      - Whether the Proxmox cluster is quorate (RV(tazlab.resilience.proxmox_vm_status#module:quorate)). V(false)
        refuses every candidate, since without quorum no power state can be confirmed.
    type: bool
  node_lease_namespace:
    description: Namespace of the kubelets' node leases.
    type: str
    default: kube-node-lease
  nodes:
    description: Only consider these nodes (the guards still count the whole cluster).
    type: list
    elements: str
  actor:
    description: The remediating actor; a lease held by another actor makes its node refused.
    type: str
  run_id:
    description:
      - This run's identity (see M(tazlab.resilience.k8s_remediation)); a lease held by another run of
        O(actor) that may still be going makes its node refused, naming that run.
    type: str
  take_over_run:
    description: A run of O(actor) known to be gone, whose unexpired lease does not block this run.
    type: str
  etcd:
    description:
      - What etcd says about its members, for the etcd guard - the result of
        M(tazlab.resilience.talos_etcd) with O(tazlab.resilience.talos_etcd#module:action=health) (its
        C(members)), or C({error - why etcd could not be asked}) when Talos is configured but did not answer
        (then no control plane is fenced).
      - A control plane's member is the one whose hostname is the node's name or whose client URL host is
        the node's InternalIP; healthy or unreachable members count as up (a partitioned member may still
        serve its peers) unless the node's VM is seen stopped.
      - Without it the guard counts control planes whose VM runs, and RV(etcd) says so
        (C(source=counted_vm_power)).
      - C({deferred - true}) plans before etcd is asked (Talos configured, the question saved for when it
        matters) - a control plane only the etcd guard could still let through is refused (C(etcd not asked
        yet)) and named in RV(etcd_needed_for); with RV(etcd_needed) true, ask etcd and plan again with its
        answer. Workers never depend on etcd - with RV(etcd_needed) false the plan is the one etcd's answer
        would give (RV(etcd) says C(source=not_asked)). C(deferred) with C(members) or C(error) is rejected.
    type: dict
  lease_namespace:
    description: Namespace of the remediation leases (see M(tazlab.resilience.k8s_remediation)).
    type: str
    default: kube-system
  exclude_labels:
    description: Node labels that exclude a node from remediation.
    type: list
    elements: str
    default: [remediation.tazlab.io/exclude, remediation.medik8s.io/exclude-from-remediation]
  restore:
    description:
      - Also choose the nodes a restore brings back (RV(restore), RV(restore_held), RV(restore_skipped)) - every
        node in remediation (RV(in_remediation)), or those in O(restore_nodes).
      - A node held by another actor, or by another run of O(actor) that may still be going, is never in
        RV(restore); it is in RV(restore_held).
      - Implied when O(restore_nodes) is not empty.
    type: bool
    default: false
  restore_nodes:
    description:
      - Only restore these nodes (with O(restore); empty means every node in remediation).
      - A name that is not a node of the cluster, or a node in no remediation, fails nothing (a rerun after a
        restore finds nothing to do); it is listed in RV(restore_skipped), and an unknown name is also warned about.
      - Unlike O(nodes), it does not change which nodes are planned for remediation.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Power states
  tazlab.resilience.proxmox_vm_status:
  register: pve

- name: Plan
  tazlab.resilience.remediation_plan:
    vms: "{{ pve.vms }}"
    unhealthy_seconds: 120
    max_unhealthy: "40%"
    actor: awx-dr_recover
  register: plan

- name: Fence and free each planned node
  ansible.builtin.debug:
    msg: "{{ item.name }} ({{ item.reason }})"
  loop: "{{ plan.remediate }}"

- name: Choose the nodes to bring back (another actor's or another live run's nodes are left alone)
  tazlab.resilience.remediation_plan:
    vms: "{{ pve.vms }}"
    actor: awx-dr_recover
    restore_nodes: [worker-new-03]
  register: restore

- name: Bring each one back
  ansible.builtin.debug:
    msg: "{{ item.name }} (held: {{ restore.restore_held }}, not restored: {{ restore.restore_skipped }})"
  loop: "{{ restore.restore }}"

- name: Plan before asking etcd (Talos configured); etcd is asked only when a control plane needs it
  tazlab.resilience.remediation_plan:
    vms: "{{ pve.vms }}"
    etcd: {deferred: true}
  register: first

- name: Ask etcd
  tazlab.resilience.talos_etcd:
    action: health
  register: etcd
  when: first.etcd_needed

- name: Plan again with etcd's answer
  tazlab.resilience.remediation_plan:
    vms: "{{ pve.vms }}"
    etcd:
      members: "{{ etcd.members }}"
  register: second
  when: first.etcd_needed

- name: Remediate what the plan made with etcd's answer (when asked) allows
  ansible.builtin.debug:
    msg: "{{ item.name }} ({{ item.reason }})"
  loop: "{{ (second if first.etcd_needed else first).remediate }}"
"""

RETURN = r"""
remediate:
  description: The nodes to remediate now, in order, with what the plan knows of them.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
    reason:
      description: V(powered_off) (its VM is stopped) or V(not_ready) (not Ready for long enough).
      type: str
    system_uuid:
      description: The node's systemUUID, to check against the VM's SMBIOS UUID before fencing.
      type: str
    control_plane:
      description: Whether the node is a control plane.
      type: bool
    vm:
      description: Its VM (the one carrying its SMBIOS UUID) as Proxmox reported it, if known.
      type: dict
    vm_identity:
      description: V(ok), V(missing), V(duplicate), V(unreadable) or V(no_system_uuid); null without O(vms).
      type: str
    lease_silent_seconds:
      description: Seconds since the node's kubelet last renewed its lease (cluster clock).
      type: float
in_remediation:
  description:
    - The nodes that carry the out-of-service or the remediation taint (remediated earlier, or being
      remediated), with the same facts as RV(remediate); what a restore brings back.
    - Each also has C(held_by) - why O(actor) (and O(run_id)) must not touch it now (another actor, or
      another run of the actor that may still be going), or null.
  returned: success
  type: list
  elements: dict
refused:
  description: Candidates left alone, each with the reason.
  returned: success
  type: list
  elements: dict
  sample: [{node: worker-new-02, reason: "not Ready but its VM is running: a network partition..."}]
pending:
  description: Nodes not Ready for less than O(unhealthy_seconds).
  returned: success
  type: list
  elements: dict
healthy:
  description: Number of healthy nodes.
  returned: success
  type: int
unhealthy:
  description: Number of unhealthy nodes (candidates and pending).
  returned: success
  type: int
total:
  description: Number of nodes.
  returned: success
  type: int
etcd:
  description:
    - The etcd guard's view - C(source) (V(talos) when etcd was asked, V(counted_vm_power) when control
      planes whose VM runs were counted instead, V(unknown) when Talos did not answer, V(not_asked) with
      O(etcd) C(deferred)), C(members), C(up), C(quorum), and with Talos C(healthy) and C(control_planes)
      (each control plane's member state).
    - Not asked, also C(needed) (RV(etcd_needed)) and C(note), saying why etcd is or is not needed.
  returned: success
  type: dict
etcd_needed:
  description:
    - With O(etcd) C(deferred) - whether a control plane is refused only because etcd was not asked (then ask
      etcd, M(tazlab.resilience.talos_etcd) O(tazlab.resilience.talos_etcd#module:action=health), and plan
      again with its answer). Always V(false) otherwise.
  returned: success
  type: bool
etcd_needed_for:
  description: The control planes RV(etcd_needed) is for (refused until etcd is asked).
  returned: success
  type: list
  elements: str
  sample: [cp-02]
restore:
  description:
    - The nodes to restore now, in the order of RV(in_remediation) (by name), with the same facts - the nodes in
      remediation asked for (all of them without O(restore_nodes)) that no other actor or live run holds.
  returned: when O(restore) is true or O(restore_nodes) is not empty
  type: list
  elements: dict
restore_held:
  description:
    - The nodes asked for that are in remediation but held by another actor or another run of O(actor) that may
      still be going, each with the holder (its C(held_by)); a restore leaves them alone.
  returned: when O(restore) is true or O(restore_nodes) is not empty
  type: dict
  sample: {worker-new-03: "another actor holds its remediation lease: awx-other"}
restore_skipped:
  description:
    - The names in O(restore_nodes) that are not restored for another reason, each once with C(node) and
      C(reason) - V(not_found) (no node of that name in the cluster) or V(not_in_remediation) (it carries
      neither the out-of-service nor the remediation taint).
  returned: when O(restore) is true or O(restore_nodes) is not empty
  type: list
  elements: dict
  sample: [{node: worker-nwe-03, reason: not_found}]
cluster_time:
  description: The cluster's time the plan was made at (RFC 3339, from the API server's Date header).
  returned: success
  type: str
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec, k8s_libraries
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import (
    check_plan_options, run_remediation_plan,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import DEFAULT_EXCLUDE_LABELS
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    return k8s_argument_spec(
        vms=dict(type='list', elements='dict'),
        unhealthy_seconds=dict(type='int', default=300),
        max_unhealthy=dict(type='str'),
        min_healthy=dict(type='str'),
        fence_running=dict(type='bool', default=True, aliases=['allow_running']),
        node_lease_namespace=dict(type='str', default='kube-node-lease'),
        proxmox_quorate=dict(type='bool'),
        nodes=dict(type='list', elements='str'),
        actor=dict(type='str'),
        run_id=dict(type='str'),
        take_over_run=dict(type='str'),
        lease_namespace=dict(type='str', default='kube-system'),
        exclude_labels=dict(type='list', elements='str', default=list(DEFAULT_EXCLUDE_LABELS)),
        etcd=dict(type='dict'),
        restore=dict(type='bool', default=False),
        restore_nodes=dict(type='list', elements='str', default=[]),
    )


def main():
    run_module(argument_spec(), run_remediation_plan, requires=[k8s_libraries], check=check_plan_options)


if __name__ == '__main__':
    main()
