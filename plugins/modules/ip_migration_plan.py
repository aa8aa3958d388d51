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
    suboptions:
      kubeconfig:
        description: Path to a kubeconfig, or the kubeconfig as a dict (K8S_AUTH_KUBECONFIG).
        type: raw
      context:
        description: Context of the kubeconfig to use (K8S_AUTH_CONTEXT).
        type: str
      host:
        description: URL of the API server (K8S_AUTH_HOST).
        type: str
      api_key:
        description: Bearer token (K8S_AUTH_API_KEY).
        type: str
      username:
        description: User for basic authentication (K8S_AUTH_USERNAME).
        type: str
      password:
        description: Password for basic authentication (K8S_AUTH_PASSWORD).
        type: str
      validate_certs:
        description: Verify the API server's certificate (K8S_AUTH_VALIDATE_CERTS, K8S_AUTH_VERIFY_SSL).
        type: bool
        default: true
        aliases: [verify_ssl]
      ca_cert:
        description: CA certificate to verify the API server with (K8S_AUTH_SSL_CA_CERT).
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description: Client certificate (K8S_AUTH_CERT_FILE).
        type: path
        aliases: [cert_file]
      client_key:
        description: Key of the client certificate (K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
      proxy:
        description: HTTP proxy URL (K8S_AUTH_PROXY).
        type: str
      impersonate_user:
        description: User to impersonate (K8S_AUTH_IMPERSONATE_USER).
        type: str
      impersonate_groups:
        description: One group to impersonate with O(k8s_auth.impersonate_user) (K8S_AUTH_IMPERSONATE_GROUPS).
        type: list
        elements: str
      no_proxy:
        description: Hosts reached without the proxy (K8S_AUTH_NO_PROXY).
        type: str
      proxy_headers:
        description: Headers for the proxy, as kubernetes.core takes them.
        type: dict
        suboptions:
          proxy_basic_auth:
            description: C(user:password) for the proxy.
            type: str
          basic_auth:
            description: C(user:password) for basic authentication through the proxy.
            type: str
          user_agent:
            description: User-Agent sent to the proxy.
            type: str
      persist_config:
        description: Write refreshed credentials back to the kubeconfig file (K8S_AUTH_PERSIST_CONFIG).
        type: bool
      request_timeout:
        description: Seconds one API request may take before it counts as failed (and is retried).
        type: float
        default: 30.0
      api_retries:
        description: Most attempts per API request (transient errors are retried with backoff).
        type: int
        default: 20
      api_retry_deadline:
        description: Seconds after the first attempt of a request when no new attempt starts.
        type: float
        default: 45.0
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
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.run import (
    check_options, libraries, run_ip_migration_plan)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
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
        k8s_auth=dict(type='dict', aliases=['kubernetes'], options=k8s_argument_spec()),
        verify=dict(type='bool', default=False),
    )
    return spec


def main():
    run_module(argument_spec(), run_ip_migration_plan, requires=[libraries], check=check_options,
               **merge_auth_kwargs())


if __name__ == '__main__':
    main()
