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
    etcd health through the Talos API, and, with O(kubernetes), the Kubernetes nodes, the C(default/kubernetes)
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
  kubernetes:
    description:
      - Kubernetes connection options, those of the C(tazlab.resilience.k8s_auth) doc fragment (C(kubeconfig),
        C(context), C(host), C(api_key), C(ca_cert), C(validate_certs), ...).
      - Options the dict does not give are taken from their C(K8S_AUTH_*) environment variables, as the doc
        fragment says (AWX's Kubernetes credentials inject those), so V({}) means the environment.
      - Without it the Kubernetes checks are skipped (the node readiness check included).
    type: dict
  verify:
    description:
      - Also check the state after a migration (no step pending, etcd healthy, control planes Ready, the
        C(kubernetes) Endpoints and EndpointSlice listing exactly the control planes' addresses, CoreDNS and
        kube-proxy ready) and return RV(problems).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Plan the move of cp-01 to .253 and the cluster to the VIP .250
  tazlab.resilience.ip_migration_plan:
    talosconfig: ~/.talos/config
    kubernetes:
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
    kubernetes: {kubeconfig: ~/.kube/config}
    nodes: [{name: cp-01, address: 192.168.1.253/24}]
    verify: true
  register: after
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
  returned: when O(kubernetes) is given
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
"""

import asyncio

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.plan import (
    PlanInputError, parse_moves, plan_migration, talos_endpoint, verify_migration)
from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.facts import (
    kubernetes_facts, talos_facts)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import auth_env_fallbacks, k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import HAS_K8S, K8S_IMPORT_ERROR
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import (
    auth_from_params, client_kwargs, merge_auth_kwargs, talos_auth_argument_spec)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import (
    GRPCLIB_IMPORT_ERROR, HAS_GRPCLIB, HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR, TalosClient)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError


def kubernetes_params(options):
    """The k8s_auth options given as a dict, completed with the defaults of the shared spec."""
    spec = k8s_argument_spec()
    unknown = sorted(set(options) - set(spec))
    if unknown:
        raise ValueError('unknown kubernetes option(s): %s (see the tazlab.resilience.k8s_auth doc fragment)'
                         % ', '.join(unknown))
    params = dict((name, opt.get('default')) for name, opt in spec.items())
    # the K8S_AUTH_* variables (an AWX Kubernetes credential) for what the dict does not say
    params.update(auth_env_fallbacks(options))
    return params


def main():
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
        kubernetes=dict(type='dict', no_log=True),
        verify=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **merge_auth_kwargs())
    if not HAS_GRPCLIB:
        module.fail_json(msg=missing_required_lib('grpclib'), exception=GRPCLIB_IMPORT_ERROR)
    if not HAS_PROTOBUF:
        module.fail_json(msg=missing_required_lib('protobuf'), exception=PROTOBUF_IMPORT_ERROR)
    params = module.params
    k8s_params = None
    try:
        moves = parse_moves(params['nodes'])
        auth = auth_from_params(params)
        kwargs = client_kwargs(params)
        if params['kubernetes'] is not None:
            if not HAS_K8S:
                module.fail_json(msg=missing_required_lib('kubernetes'), exception=K8S_IMPORT_ERROR)
            k8s_params = kubernetes_params(params['kubernetes'])
    except (PlanInputError, TalosError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    port = auth.endpoints[0][1]

    async def go():
        async with TalosClient(auth, **kwargs) as client:
            return await talos_facts(client, node=params['node'])
    try:
        facts = asyncio.run(go())
        facts['kubernetes'] = kubernetes_facts(k8s_params) if k8s_params is not None else None
    except TalosError as exc:
        module.fail_json(msg='reading the control planes through the Talos API failed: %s' % exc)
    except K8sError as exc:
        module.fail_json(msg='reading Kubernetes failed: %s' % exc)

    plan = plan_migration(facts, moves, vip=params['vip'], port=port)
    k8s_ips = dict((n['name'], n.get('internal_ip')) for n in (facts['kubernetes'] or {}).get('nodes') or [])
    k8s_after = []
    for step in plan['steps']:
        step['kubernetes_address_before'] = k8s_ips.get(step['name']) or step['address_before']
        step['kubernetes_address_after'] = step['kubernetes_address_after'] or step['kubernetes_address_before'] \
            if step['moves'] else step['kubernetes_address_before']
        k8s_after.append(step['kubernetes_address_after'])
        step['endpoint_before'] = talos_endpoint(step['address_before'], port)
        step['endpoint_after'] = talos_endpoint(step['address_after'], port)
    result = dict(changed=False, refused=plan['refused'], steps=plan['steps'], pending=plan['pending'],
                  positions=plan['positions'], vip=plan['vip'], endpoints_after=plan['endpoints_after'],
                  endpoints_now=[talos_endpoint(cp['address'], port) for cp in facts['control_planes']],
                  kubernetes_addresses_after=sorted(set(k8s_after)),
                  etcd=dict(quorum=facts['etcd_quorum'], members=[
                      dict(name=cp['name'], address=cp['address'], peer_urls=cp['peer_urls'],
                           healthy=cp['etcd_healthy'], is_learner=cp['is_learner'])
                      for cp in facts['control_planes']]))
    if facts['kubernetes'] is not None:
        result['kubernetes'] = facts['kubernetes']
    if params['verify']:
        result['problems'] = verify_migration(facts, plan, result['kubernetes_addresses_after']
                                              if facts['kubernetes'] is not None else None)
        result['verified'] = not result['problems']
    module.exit_json(**result)


if __name__ == '__main__':
    main()
