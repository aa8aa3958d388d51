#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resilience_audit
short_description: Find what would make a node loss hurt, before it happens (read-only)
version_added: 0.1.0
description:
  - Reads the cluster (Kubernetes, Longhorn, and optionally Proxmox and Talos) and reports findings, each with a
    severity (V(info), V(low), V(medium), V(high), V(critical)), the object, why it matters and the fix.
  - "Workloads: Deployments or stand-alone ReplicaSets with more than one replica (or an HPA) on a ReadWriteOnce
    claim; critical single replicas (ingress controllers and cluster DNS by name, or marked with the annotation
    C(remediation.tazlab.io/critical: \"true\"; the older C(resilience.tazlab.io/critical) still counts) or
    O(critical_workloads)); multi-replica workloads without a PodDisruptionBudget or without anti-affinity."
  - "Longhorn: the namespace found, volumes with fewer than O(min_replicas) replicas, degraded or faulted volumes,
    the C(node-down-pod-deletion-policy) and C(replica-auto-balance) settings."
  - "Fencing (with O(proxmox)): nodes no VM or several VMs carry the SMBIOS UUID of, control planes sharing a PVE
    host or not HA-managed, an even number of control planes."
  - "Clients: a kubeconfig pointing at one node rather than the VIP, a talosconfig whose endpoint is the VIP, the
    C(kubernetes) Service endpoints not matching the control planes."
  - "Talos (with O(talos)): secretbox Secrets encryption off on a control plane, STATE or EPHEMERAL not encrypted
    (the C(VolumeStatus) resource where served, else the machine config)."
  - The module never writes anything; check mode is the same run. It returns a Markdown report and an HTML page
    with the same content for the caller to save, and fails when O(fail_on) is reached (for CI).
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
    details: The module only reads; check mode runs the same reads.
  diff_mode:
    support: none
options:
  talos:
    description:
      - Talos connection options (the names of the C(tazlab.resilience.talos_auth) fragment, e.g. C(talosconfig)).
        Without it the encryption checks are skipped. Needs the C(os:admin) role to read machine configs.
    type: dict
  talos_nodes:
    description: Talos node addresses to read. Defaults to the talosconfig context's nodes.
    type: list
    elements: str
  vip:
    description: The control-plane VIP. Defaults to the VIP in the Talos machine config.
    type: str
  longhorn_namespace:
    description: Where Longhorn lives (C(longhorn-system) and C(longhorn) are tried after it).
    type: str
    default: longhorn-system
  critical_workloads:
    description: Workloads to treat as critical, as C(namespace/name) or C(Kind/namespace/name).
    type: list
    elements: str
    default: []
  min_replicas:
    description: Fewest Longhorn replicas a volume should have.
    type: int
    default: 3
  fail_on:
    description: Fail when a finding of this severity or higher exists (V(none) never fails).
    type: str
    default: none
    choices: [none, info, low, medium, high, critical]
"""

EXAMPLES = r"""
- name: Audit the cluster, fail on high findings (CI)
  tazlab.resilience.resilience_audit:
    kubeconfig: ~/.kube/config
    proxmox: "{{ tazlab_proxmox }}"
    talos: {talosconfig: ~/.talos/config}
    fail_on: high
  register: audit

- name: Keep the report
  ansible.builtin.copy:
    content: "{{ audit.markdown }}"
    dest: artifacts/audit.md
    mode: "0644"
"""

RETURN = r"""
findings:
  description: Every finding, highest severity first.
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: Stable identifier of the check (e.g. C(critical-single-replica), C(unfenceable-node)).
      type: str
    severity:
      description: info, low, medium, high or critical.
      type: str
    object:
      description: What the finding is about.
      type: str
    why:
      description: Why it matters.
      type: str
    fix:
      description: How to fix it.
      type: str
    node:
      description: The node it concerns, when it concerns one.
      type: str
  sample:
    - code: critical-single-replica
      severity: high
      object: Deployment traefik/traefik
      why: a single replica of a critical workload ...
      fix: Run at least 2 replicas ...
      node: null
summary:
  description: Counts per severity and the highest severity found (C(max_severity), null when none).
  returned: always
  type: dict
  sample: {counts: {info: 1, low: 2, medium: 3, high: 1, critical: 0}, max_severity: high}
failing:
  description: The findings at or above O(fail_on).
  returned: always
  type: list
  elements: dict
markdown:
  description: The report in Markdown.
  returned: always
  type: str
html:
  description: The same report as an HTML page.
  returned: always
  type: str
errors:
  description: Parts that could not be read (their checks became V(info) findings).
  returned: always
  type: list
  elements: str
cluster_time:
  description: The API server's clock when the audit read it.
  returned: always
  type: str
vip:
  description: The control-plane VIP used by the client checks.
  returned: always
  type: str
read:
  description: Which sources were read (kubernetes, longhorn, proxmox, talos, clients).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.audit.module import (
    check_options, libraries, run_audit_module)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import K8S_BOUNDS, k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import proxmox_auth_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import at_least, run_module


def argument_spec():
    return k8s_argument_spec(
        proxmox=dict(type='dict', options=proxmox_auth_argument_spec(),
                     required_together=[('api_token_id', 'api_token_secret')]),
        talos=dict(type='dict'),
        talos_nodes=dict(type='list', elements='str'),
        vip=dict(type='str'),
        longhorn_namespace=dict(type='str', default='longhorn-system'),
        critical_workloads=dict(type='list', elements='str', default=[]),
        min_replicas=dict(type='int', default=3),
        fail_on=dict(type='str', default='none', choices=['none', 'info', 'low', 'medium', 'high', 'critical']),
    )


def main():
    run_module(argument_spec(), run_audit_module, requires=[libraries], check=check_options,
               bounds=dict(K8S_BOUNDS, min_replicas=at_least(1)))


if __name__ == '__main__':
    main()
