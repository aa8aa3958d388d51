#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_secretbox
short_description: Turn on secretbox encryption of Kubernetes Secrets on a running Talos cluster
version_added: 0.2.0
description:
  - Sets C(cluster.secretboxEncryptionSecret) in the machine config of every control plane, one control plane
    at a time (a C(.cluster) change, applied without a reboot), and waits until that control plane's
    kube-apiserver is healthy with it before the next.
  - Then reads every Secret and writes it back unchanged, so the apiserver stores it through secretbox (the
    C(kubectl get secrets -A -o json | kubectl replace -f -) step), and checks that every control plane runs
    with the secret.
  - The secret comes from O(secret) or from the secrets bundle O(secrets_bundle) (C(secrets.secretboxencryptionsecret),
    written there once with mode 0600 when the bundle has none).
  - Refuses, before any change, to replace a secretbox secret that is already set with another one. Talos
    has a single secretbox key and no way to keep the old one for decryption, so changing it makes every
    Secret stored with it unreadable (siderolabs/talos#8702).
  - On a real cluster the stored values can be checked from an etcd snapshot (every C(/registry/secrets/) value
    starts with C(k8s:enc:secretbox:v1:key2:)) or with O(verify_metrics).
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
    details: Returns the per control plane plan and each node's dry run; writes nothing (not even the bundle).
  diff_mode:
    support: none
options:
  control_planes:
    description: The control planes, in the order they are changed.
    type: list
    elements: dict
    required: true
    suboptions:
      address:
        description: The node's Talos address (C(node) metadata).
        type: str
        required: true
      name:
        description: The Kubernetes node name (its kube-apiserver mirror pod is C(kube-apiserver-<name>)).
        type: str
        required: true
  node:
    description:
      - Only this control plane (its Talos address, one of O(control_planes)) is changed in this run; the others
        are still read and checked. The Secrets are rewritten only once every control plane has the secret.
      - When omitted, every control plane in order.
    type: str
  secret:
    description:
      - The secretbox secret (base64 of 32 random bytes). Keep it in a vault, like the CA keys.
      - When omitted, the one in O(secrets_bundle), or the one already set on the control planes.
    type: str
  secrets_bundle:
    description: Path of the secrets bundle (secrets.yaml as M(tazlab.resilience.talos_secrets) writes it).
    type: path
  rewrite:
    description: Rewrite every Secret so it is stored encrypted.
    type: bool
    default: true
  verify_metrics:
    description:
      - Also read the apiserver's C(/metrics) and require the secretbox C(to_storage) counter of
        C(apiserver_storage_transformation_operations_total) to be at least the number of Secrets rewritten.
    type: bool
    default: false
  k8s_auth:
    description:
      - Kubernetes connection options, with the names, aliases, defaults and C(K8S_AUTH_*) environment fallbacks
        of the C(tazlab.resilience.k8s_auth) doc fragment (and of kubernetes.core). Options the dict does not
        give are taken from their environment variables (AWX's Kubernetes credentials inject those), so V({})
        means the environment.
      - Without it, no apiserver health check and no rewrite happen.
      - Nested so that its options never mix with the Talos connection options.
      - The old name C(kubernetes) is an alias.
    type: dict
    aliases: [ kubernetes ]
  wait_timeout:
    description: Seconds to wait for each control plane's apiserver.
    type: float
    default: 300
  poll_interval:
    description: Seconds between checks.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Secretbox on every control plane, then every Secret re-encrypted
  tazlab.resilience.talos_secretbox:
    talosconfig: /secure/talosconfig
    secrets_bundle: /secure/secrets.yaml
    control_planes:
      - {address: 10.0.0.11, name: cp-01}
      - {address: 10.0.0.12, name: cp-02}
      - {address: 10.0.0.13, name: cp-03}
    k8s_auth:
      kubeconfig: /secure/kubeconfig
"""

RETURN = r"""
plan:
  description: Per control plane, V(set) or V(keep) (and its dry run summary in check mode).
  returned: always
  type: list
  elements: dict
secret_generated:
  description: The bundle had no secretbox secret and one was generated into it.
  returned: always
  type: bool
applied:
  description: The control planes changed, with the apply mode and the seconds since the start.
  returned: always
  type: list
  elements: dict
rewritten:
  description: The Secrets written again because the apiserver found them stored with another provider.
  returned: always
  type: list
  elements: str
verified_config:
  description: Control plane name to whether its running config carries the secret.
  returned: not in check mode
  type: dict
secretbox_writes:
  description: The apiserver's successful secretbox to_storage count.
  returned: verify_metrics
  type: int
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.module import (
    check_secretbox_options, run_secretbox_module)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_auth_suboptions
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import (
    merge_auth_kwargs, talos_auth_argument_spec, talos_libraries)


def argument_spec():
    spec = talos_auth_argument_spec()
    spec.update(
        control_planes=dict(type='list', elements='dict', required=True, options=dict(
            address=dict(type='str', required=True), name=dict(type='str', required=True))),
        node=dict(type='str'),
        secret=dict(type='str', no_log=True),
        secrets_bundle=dict(type='path'),
        rewrite=dict(type='bool', default=True),
        verify_metrics=dict(type='bool', default=False),
        k8s_auth=dict(type='dict', aliases=['kubernetes'], options=k8s_auth_suboptions()),
        wait_timeout=dict(type='float', default=300.0),
        poll_interval=dict(type='float', default=2.0),
    )
    return spec


def main():
    run_module(argument_spec(), run_secretbox_module, requires=[talos_libraries], check=check_secretbox_options,
               **merge_auth_kwargs())


if __name__ == '__main__':
    main()
