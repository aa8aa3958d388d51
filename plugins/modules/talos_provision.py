#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_provision
short_description: Turn Talos nodes in maintenance mode into a running cluster, bootstrapping etcd once
version_added: 0.2.0
description:
  - Probes every node of O(nodes) - with mutual TLS (the talosconfig) it is C(configured); answering without a
    client certificate in stage C(maintenance) it is waiting for its config; otherwise it is waited for (the VM
    may still boot) up to O(maintenance_timeout).
  - Applies each maintenance-mode node's machine config with C(ApplyConfiguration) (mode AUTO, no client
    certificate, as C(talosctl apply-config --insecure)). The maintenance server certificate is self-signed per
    boot - its SPKI fingerprint is read, checked against O(maintenance_fingerprints) when given (a mismatch
    stops before the config, which carries secrets, is sent) and returned otherwise.
  - Waits for the install and reboot (the node answers with mutual TLS), then calls C(Bootstrap) on exactly one
    control plane (O(bootstrap_node)) - only when every control plane answers and none has an etcd member, so a
    rerun never bootstraps again and a replacement control plane joins the existing etcd; C(AlreadyExists) counts
    as done.
  - Waits for etcd (every control plane a healthy voting member), every node RUNNING and ready, fetches the
    kubeconfig through the C(Kubeconfig) RPC into O(kubeconfig_dest) (mode 0600; kept while it still matches the
    cluster CA and server and its certificate is valid for more than 30 days), then waits until Kubernetes lists
    every node Ready and the C(default/kubernetes) endpoints list every control plane.
  - The talosconfig itself is written by M(tazlab.resilience.talos_machine_config) (endpoints are node
    addresses, never the VIP).
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: Probes the nodes and returns the plan (which nodes get a config, whether etcd is bootstrapped, whether the kubeconfig is written).
  diff_mode:
    support: none
requirements:
  - grpclib
  - protobuf
  - cryptography
  - PyYAML
  - kubernetes (to wait for Kubernetes)
options:
  nodes:
    description:
      - Every node of the cluster.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The node's hostname (its Kubernetes Node name).
        type: str
        required: true
      role:
        description: V(controlplane) or V(worker).
        type: str
        required: true
        choices: [controlplane, worker]
      address:
        description: Where the node answers now (its maintenance-mode address), C(host) or C(host:port).
        type: str
        required: true
      talos_address:
        description: Where the node answers once configured (a static address of its config); default O(nodes[].address).
        type: str
      config:
        description: The node's machine config (multi-document YAML).
        type: str
      config_file:
        description: A file with the node's machine config (instead of O(nodes[].config)).
        type: path
  talosconfig:
    description: The admin talosconfig (mutual TLS to configured nodes).
    type: path
    required: true
  context:
    description: Context of the talosconfig; its current one by default.
    type: str
  bootstrap_node:
    description: The control plane etcd is bootstrapped on; the first control plane of O(nodes) by default.
    type: str
  maintenance_fingerprints:
    description:
      - Node name to the SPKI fingerprint (base64 SHA-256, as the node's console prints it) of its maintenance
        certificate. A node whose certificate differs gets no config.
    type: dict
  kubeconfig_dest:
    description: Where to write the admin kubeconfig (mode 0600).
    type: path
  kubeconfig_server:
    description: The server URL to put in the kubeconfig (e.g. C(https://<VIP>:6443)); the cluster endpoint of the config by default.
    type: str
  wait_kubernetes:
    description: Wait for every node Ready and the kubernetes Service endpoints (needs O(kubeconfig_dest)).
    type: bool
    default: true
  k8s_validate_certs:
    description: Verify the Kubernetes API certificate with the CA of the kubeconfig.
    type: bool
    default: true
  maintenance_timeout:
    description: Seconds to wait for every node to answer at all.
    type: int
    default: 300
  apply_timeout:
    description: Seconds to retry the config apply on transient errors.
    type: int
    default: 120
  install_timeout:
    description: Seconds to wait for a node to install and come back with its config.
    type: int
    default: 900
  bootstrap_timeout:
    description: Seconds to retry Bootstrap while it answers FailedPrecondition (CRI or time not ready).
    type: int
    default: 300
  etcd_timeout:
    description: Seconds to wait for etcd to have every control plane as a healthy voting member.
    type: int
    default: 600
  ready_timeout:
    description: Seconds to wait for each node to be RUNNING and ready.
    type: int
    default: 900
  kubernetes_timeout:
    description: Seconds to wait for Kubernetes.
    type: int
    default: 600
  poll_interval:
    description: Seconds between two probes while waiting.
    type: float
    default: 2.0
  timeout:
    description: Deadline of one Talos API call in seconds.
    type: float
    default: 30.0
  connect_timeout:
    description: Seconds to wait for a connection.
    type: float
    default: 10.0
"""

EXAMPLES = r"""
- name: Configure and bootstrap the cluster, write the kubeconfig
  tazlab.resilience.talos_provision:
    talosconfig: "{{ provision_dir }}/talosconfig"
    kubeconfig_dest: "{{ provision_dir }}/kubeconfig"
    kubeconfig_server: https://192.168.1.250:6443
    nodes:
      - {name: cp-01, role: controlplane, address: 192.168.1.71, config_file: "{{ provision_dir }}/cp-01.yaml"}
      - {name: worker-01, role: worker, address: 192.168.1.81, config_file: "{{ provision_dir }}/worker-01.yaml"}
"""

RETURN = r"""
plan:
  description: What the run found and planned.
  returned: always
  type: dict
  sample:
    states: {cp-01: maintenance, worker-01: maintenance}
    apply: [cp-01, worker-01]
    bootstrap: cp-01
    bootstrap_reason: no control plane has an etcd member
    kubeconfig: {write: true, reason: no file at /srv/kubeconfig}
bootstrap_node:
  description: The control plane etcd is (or was) bootstrapped on.
  returned: always
  type: str
fingerprints:
  description: Node name to the SPKI fingerprint of the maintenance certificate it presented when its config was sent.
  returned: when not in check mode
  type: dict
etcd_members:
  description: The etcd members (hostnames) once healthy.
  returned: when not in check mode
  type: list
  elements: str
nodes_ready:
  description: The Kubernetes nodes that are Ready.
  returned: when Kubernetes was waited for
  type: list
  elements: str
kubernetes_endpoints:
  description: The addresses of the C(default/kubernetes) endpoints.
  returned: when Kubernetes was waited for
  type: list
  elements: str
steps:
  description: What was done, in order (apply, bootstrap, etcd, kubeconfig, kubernetes).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import talos_libraries
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.provision import run_provision_module


def argument_spec():
    node_options = dict(
        name=dict(type='str', required=True),
        role=dict(type='str', required=True, choices=['controlplane', 'worker']),
        address=dict(type='str', required=True),
        talos_address=dict(type='str'),
        config=dict(type='str', no_log=True),
        config_file=dict(type='path'),
    )
    spec = dict(
        nodes=dict(type='list', elements='dict', required=True, options=node_options),
        talosconfig=dict(type='path', required=True),
        context=dict(type='str'),
        bootstrap_node=dict(type='str'),
        maintenance_fingerprints=dict(type='dict'),
        kubeconfig_dest=dict(type='path'),
        kubeconfig_server=dict(type='str'),
        wait_kubernetes=dict(type='bool', default=True),
        k8s_validate_certs=dict(type='bool', default=True),
        maintenance_timeout=dict(type='int', default=300),
        apply_timeout=dict(type='int', default=120),
        install_timeout=dict(type='int', default=900),
        bootstrap_timeout=dict(type='int', default=300),
        etcd_timeout=dict(type='int', default=600),
        ready_timeout=dict(type='int', default=900),
        kubernetes_timeout=dict(type='int', default=600),
        poll_interval=dict(type='float', default=2.0),
        timeout=dict(type='float', default=30.0),
        connect_timeout=dict(type='float', default=10.0),
    )
    return spec


def main():
    run_module(argument_spec(), run_provision_module, requires=[talos_libraries])


if __name__ == '__main__':
    main()
