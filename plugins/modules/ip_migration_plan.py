#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ip_migration_plan
short_description: Plan moving Talos control planes to new addresses and the cluster to a VIP, and check the result
version_added: 0.1.0
description:
  - Reads, never changes. Finds every control plane through the etcd member list (its hostname, and its current
    address from its peer URL, so a rerun finds a moved node where it is now), reads each one's machine config and
    etcd health through the Talos API, and, with O(k8s_auth), the Kubernetes nodes, the C(default/kubernetes)
    Endpoints and EndpointSlice and the CoreDNS and kube-proxy pods.
  - "Preflight: etcd has quorum and every member is healthy, no learner; every control plane is C(Ready); each new
    address is a host of its subnet, not in use (not any node's current address, not planned twice, not the VIP
    unless the VIP moves away from it in the same run), its gateway and routes inside the new subnet; the VIP is
    configured on the control planes or planned with O(vip), inside every control plane's subnet. Any failed check
    is listed in RV(refused)."
  - "The steps, one per control plane: Talos strategic-merge patches (in the shape the config uses - legacy
    C(machine.network.interfaces) or C(LinkConfig) + C(Layer2VIPConfig)) that set the new address, the routes,
    the VIP and the certSANs (C(machine.certSANs), C(cluster.apiServer.certSANs): the new address and the VIP),
    and the reverse patches that restore the original. Control planes that only get the VIP and certSANs come
    first, then the moves one at a time in the order given. C(cluster.controlPlane.endpoint) is never touched."
  - With O(verify), also lists what is not yet as it should be after the migration in RV(problems).
  - With O(follow), waits (reading again every O(poll_interval) seconds, up to O(wait_timeout)) until the cluster has
    followed one step of the migration - etcd, and for a control plane that moves, Kubernetes - and fails if it has
    not, with the last readings in the result.
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
    details: The module only reads.
  diff_mode:
    support: none
options:
  node:
    description:
      - The control plane asked for the etcd member list (reached through the endpoints with the C(node) metadata).
      - When omitted, the first answering endpoint itself.
    type: str
  nodes:
    description:
      - The control planes to move. Control planes not listed keep their address but still get the VIP and certSANs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The control plane's hostname (its etcd member name and Kubernetes node name).
        type: str
        required: true
      address:
        description: The new address with its prefix length, for example C(192.168.1.253/24).
        type: str
        required: true
      gateway:
        description:
          - The default gateway in the new subnet; replaces the gateway of the default route (or adds one).
          - Needed when the current gateway is outside the new subnet.
        type: str
      kubernetes_address:
        description:
          - The address Kubernetes will see for the node (its C(InternalIP) and the apiserver's advertise address),
            when it differs from the Talos one (address translation, or the lab twin, which serves Talos on loopback).
          - Defaults to the address of O(nodes[].address).
        type: str
  vip:
    description:
      - The shared control-plane VIP to configure (Talos Layer 2 VIP). Without it, the VIP the control planes carry
        is kept; with neither the preflight refuses.
    type: str
  k8s_auth:
    description:
      - Kubernetes connection options, with the names, aliases, defaults and C(K8S_AUTH_*) environment fallbacks
        of the C(tazlab.resilience.k8s_auth) doc fragment (and of kubernetes.core). Options the dict does not
        give are taken from their environment variables (AWX's Kubernetes credentials inject those), so V({})
        means the environment.
      - Without it the Kubernetes checks are skipped (the node readiness check included).
      - Nested so that its options never mix with the Talos connection options.
      - The old name C(kubernetes) is an alias.
    type: dict
    aliases: [kubernetes]
  verify:
    description:
      - Also check the state after a migration (no step pending, etcd healthy, control planes Ready, the
        C(kubernetes) Endpoints and EndpointSlice listing exactly the control planes' addresses, CoreDNS and
        kube-proxy ready) and return RV(problems).
    type: bool
    default: false
  follow:
    description:
      - Wait until the cluster has followed one step of a migration (one control plane), then return with
        RV(followed=true); when O(wait_timeout) runs out first, fail (C(error.kind=timeout)) with the last readings
        (RV(etcd), RV(kubernetes), ...) and what they lack (RV(follow_problems)) in the result. Read errors while
        waiting (the node restarting) count as not yet.
      - Followed means etcd has quorum and lists O(follow.peer_url) for the member O(follow.name); unless
        O(follow.all_healthy=false), every member is healthy and none is a learner; and when O(follow.moves), the
        C(default/kubernetes) Endpoints and EndpointSlice list O(follow.kubernetes_address), the Endpoints no
        longer list O(follow.kubernetes_address_before), and every control plane is C(Ready).
      - The fields of a step of RV(steps) fit it - C(name), C(peer_url_after), C(moves), C(kubernetes_address_after),
        C(kubernetes_address_before).
      - Not with O(verify).
    type: dict
    suboptions:
      name:
        description: The control plane (its etcd member name).
        type: str
        required: true
      peer_url:
        description: The peer URL etcd must list for it. Give this or O(follow.address).
        type: str
      address:
        description:
          - The address etcd must list it at - its peer URL C(https://<address>:2380). Give this or O(follow.peer_url).
        type: str
      moves:
        description:
          - Whether the step changes the node's address; then Kubernetes must follow too (needs O(k8s_auth),
            O(follow.kubernetes_address) and O(follow.kubernetes_address_before)).
          - V(false) (a VIP and certSANs only step, or a rollback) needs etcd alone.
        type: bool
        default: false
      kubernetes_address:
        description: The address the C(kubernetes) Service endpoints must list for the node after the step.
        type: str
      kubernetes_address_before:
        description: The node's address before the step, which the C(kubernetes) Endpoints must no longer list.
        type: str
      all_healthy:
        description:
          - Also require every etcd member healthy and no learner; V(false) is content with quorum (a rollback
            waits for the member list and quorum only).
        type: bool
        default: true
  wait_timeout:
    description:
      - Seconds to wait - for O(follow), or with O(verify) until RV(verified) (then, when the time runs out, the
        result of the last reading is returned with RV(verified=false); a verification reports, it never fails
        for what it finds).
      - V(0) reads once.
    type: int
    default: 0
  poll_interval:
    description: Seconds between two readings while waiting.
    type: float
    default: 2.0
"""

EXAMPLES = r"""
- name: Plan the move of cp-01 to .253 and the cluster to the VIP .250
  tazlab.resilience.ip_migration_plan:
    talosconfig: ~/.talos/config
    k8s_auth:
      kubeconfig: ~/.kube/config
    nodes:
      - name: cp-01
        address: 192.168.1.253/24
    vip: 192.168.1.250
  register: plan

- name: Stop here unless the preflight passed
  ansible.builtin.assert:
    that: plan.refused | length == 0
    fail_msg: "{{ plan.refused }}"

- name: Check the cluster after the migration
  tazlab.resilience.ip_migration_plan:
    k8s_auth: {kubeconfig: ~/.kube/config}
    nodes: [{name: cp-01, address: 192.168.1.253/24}]
    verify: true
    wait_timeout: 120
  register: after

- name: Wait until etcd and Kubernetes follow the move of cp-01 (fails after 240 s with the last readings)
  tazlab.resilience.ip_migration_plan:
    endpoints: [192.168.1.72, 192.168.1.73]
    k8s_auth: {kubeconfig: ~/.kube/config}
    follow:
      name: "{{ step.name }}"
      peer_url: "{{ step.peer_url_after }}"
      moves: "{{ step.moves }}"
      kubernetes_address: "{{ step.kubernetes_address_after }}"
      kubernetes_address_before: "{{ step.kubernetes_address_before }}"
    wait_timeout: 240
    poll_interval: 2
  vars:
    step: "{{ plan.steps | selectattr('name', 'equalto', 'cp-01') | first }}"
"""

RETURN = r"""
refused:
  description: Why the migration must not start (empty when the preflight passed).
  returned: success
  type: list
  elements: str
  sample: ["cp-01: 192.168.1.72 is in use by cp-02"]
steps:
  description:
    - One entry per control plane, in the order to carry them out, with C(name), C(address_before),
      C(address_after), C(kubernetes_address_before) (its C(InternalIP) now), C(kubernetes_address_after), C(moves),
      C(endpoint_before), C(endpoint_after) (as Talos endpoints, port kept), C(shape) (V(legacy) or V(link)),
      C(changed), C(patches), C(reverse_patches), C(peer_url_after), C(vip_after).
  returned: success
  type: list
  elements: dict
pending:
  description: The control planes whose config still has to change.
  returned: success
  type: list
  elements: str
positions:
  description: Where each control plane is now (hostname to Talos address).
  returned: success
  type: dict
  sample: {cp-01: 192.168.1.253, cp-02: 192.168.1.72}
vip:
  description: The VIP configured now, the one planned, the one after the run, and whether it moves.
  returned: success
  type: dict
  sample: {configured: null, planned: 192.168.1.250, after: 192.168.1.250, move: false}
endpoints_now:
  description: Talos endpoints at the control planes' current addresses (port kept), for the next calls.
  returned: success
  type: list
  elements: str
endpoints_after:
  description: The talosconfig endpoints after the migration - node addresses, never the VIP.
  returned: success
  type: list
  elements: str
kubernetes_addresses_after:
  description: The addresses the C(kubernetes) Service endpoints must list after the migration.
  returned: success
  type: list
  elements: str
etcd:
  description: Quorum and the members (hostname, address, peer URLs, health).
  returned: success
  type: dict
kubernetes:
  description:
    - What Kubernetes shows - control-plane nodes, the Endpoints and EndpointSlice addresses, CoreDNS and kube-proxy
      readiness.
  returned: when O(k8s_auth) is given
  type: dict
problems:
  description: What is not as it should be after the migration.
  returned: when O(verify=true)
  type: list
  elements: str
verified:
  description: Whether RV(problems) is empty.
  returned: when O(verify=true)
  type: bool
followed:
  description: Whether the cluster has followed the step of O(follow) (V(false) only in a failed result).
  returned: when O(follow) is given
  type: bool
follow_problems:
  description: What the last reading still lacked for the step of O(follow) (empty once followed).
  returned: when O(follow) is given
  type: list
  elements: str
  sample: ["Endpoints default/kubernetes still list the old address 10.0.0.71"]
polls:
  description: How many times the cluster was read while waiting.
  returned: when O(follow) is given, or O(verify) with O(wait_timeout)
  type: int
waited:
  description: Seconds spent waiting.
  returned: when O(follow) is given, or O(verify) with O(wait_timeout)
  type: float
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.run import (
    check_options, libraries, run_ip_migration_plan)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_auth_suboptions
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import non_negative, run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import (
    merge_auth_kwargs, talos_auth_argument_spec)


def argument_spec():
    spec = talos_auth_argument_spec()
    spec.update(
        node=dict(type='str'),
        nodes=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            address=dict(type='str', required=True),
            gateway=dict(type='str'),
            kubernetes_address=dict(type='str'),
        )),
        vip=dict(type='str'),
        k8s_auth=dict(type='dict', aliases=['kubernetes'], options=k8s_auth_suboptions()),
        verify=dict(type='bool', default=False),
        follow=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            peer_url=dict(type='str'),
            address=dict(type='str'),
            moves=dict(type='bool', default=False),
            kubernetes_address=dict(type='str'),
            kubernetes_address_before=dict(type='str'),
            all_healthy=dict(type='bool', default=True),
        )),
        wait_timeout=dict(type='int', default=0),
        poll_interval=dict(type='float', default=2.0),
    )
    return spec


def main():
    run_module(argument_spec(), run_ip_migration_plan, requires=[libraries], check=check_options,
               bounds=dict(wait_timeout=non_negative(), poll_interval=non_negative()), **merge_auth_kwargs())


if __name__ == '__main__':
    main()
