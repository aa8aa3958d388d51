#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_endpoint_fix
short_description: Make the kubernetes Service endpoints name the real apiservers again
version_added: 0.1.0
description:
  - After a control-plane address change, C(default/kubernetes) can keep pointing at the old address, and
    everything that talks to C(10.96.0.1:443) (CoreDNS, kube-proxy, Longhorn, operators) fails with
    C(no route to host).
  - "Makes B(both) the Endpoints and the EndpointSlice C(default/kubernetes) list exactly the desired
    addresses, with the labels and ports the apiserver writes (Endpoints label
    C(endpointslice.kubernetes.io/skip-mirror=true), one subset; EndpointSlice label
    C(kubernetes.io/service-name=kubernetes), one endpoint per address with C(ready=true); one port named
    C(https), O(port), C(TCP)), and deletes any other slice with that service-name label and the same
    C(addressType). kube-proxy reads the EndpointSlices, so patching only the Endpoints does not help."
  - Works on one address family, the family of the desired addresses. On a dual-stack control plane the
    slice of the other family (C(addressType) V(IPv6) next to V(IPv4), or the reverse) is left as it is,
    not deleted and not watched.
  - The desired addresses are O(addresses), or the C(InternalIP) of every C(Ready) control-plane node (of
    the family of the current C(kubernetes) slice when a node has both).
  - Then watches the objects of that family for O(stickiness_period) seconds (at least one master-lease
    period). If the apiserver's lease reconciler writes another address back, an apiserver still
    advertises it; the module fails, names that address and the control planes whose own address is not
    advertised, and restarts nothing.
  - "The cure is that apiserver, not the Endpoints object and not the machine config: Talos runs
    kube-apiserver with C(--advertise-address=$(POD_IP)), resolved when the container starts, so restart
    the kube-apiserver static pod on that node - C(talosctl -n <node-ip> containers -k) lists
    C(kube-system/kube-apiserver-<node>:kube-apiserver:<id>), then C(talosctl -n <node-ip> restart -k <id>)
    (or reboot that node)."
  - Then rollout-restarts CoreDNS and kube-proxy (as C(kubectl rollout restart) does, with the pod template
    annotation C(kubectl.kubernetes.io/restartedAt)) and the workloads in O(restart), skipping absent
    ones, and waits until they are rolled out and ready.
  - Idempotent - when both objects are already right nothing is written and nothing is restarted. Check
    mode returns the plan and the diff and writes nothing.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - tazlab.resilience.k8s_auth
attributes:
  check_mode:
    support: full
    description: Returns the plan and the diff; no write request.
  diff_mode:
    support: full
    description: Addresses in the Endpoints and in each EndpointSlice, before and after.
options:
  addresses:
    description:
      - The apiserver addresses the endpoints must list. If omitted, the C(InternalIP) of every C(Ready)
        node labelled C(node-role.kubernetes.io/control-plane) is used.
    type: list
    elements: str
  port:
    description:
      - The port the apiservers listen on (the Service's target port).
    type: int
    default: 6443
  restart_defaults:
    description:
      - Restart Deployment C(kube-system/coredns) and DaemonSet C(kube-system/kube-proxy) after a change
        (those that exist).
    type: bool
    default: true
  restart:
    description:
      - More workloads to restart after a change; absent ones are skipped and reported.
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Workload kind.
        type: str
        choices: [ Deployment, DaemonSet, StatefulSet ]
        default: Deployment
      namespace:
        description: Namespace of the workload.
        type: str
        default: kube-system
      name:
        description: Name of the workload.
        type: str
        required: true
  wait:
    description:
      - Wait until the restarted workloads are rolled out and ready.
    type: bool
    default: true
  rollout_timeout:
    description:
      - Seconds the restarted workloads have to roll out.
    type: float
    default: 300
  stickiness_check:
    description:
      - Watch the written objects for O(stickiness_period) seconds and fail if the apiserver's reconciler
        writes a different set of addresses back.
    type: bool
    default: true
  stickiness_period:
    description:
      - Seconds to watch; at least one master-lease period (15 s lease TTL, refreshed every 10 s) plus a margin.
    type: float
    default: 20
  poll_interval:
    description:
      - Seconds between two reads while watching or waiting.
    type: float
    default: 1
seealso:
  - name: The kubernetes Service endpoints reconciler
    description: How the apiserver maintains default/kubernetes (lease reconciler).
    link: https://github.com/kubernetes/kubernetes/tree/master/pkg/controlplane/reconcilers
"""

EXAMPLES = r"""
- name: Point default/kubernetes at the new control-plane address
  tazlab.resilience.k8s_endpoint_fix:
    kubeconfig: "{{ playbook_dir }}/kubeconfig"
    addresses:
      - 192.168.1.253

- name: Use the Ready control-plane nodes, restart Longhorn's manager too
  tazlab.resilience.k8s_endpoint_fix:
    restart:
      - kind: DaemonSet
        namespace: longhorn-system
        name: longhorn-manager
    rollout_timeout: 600

- name: What would change
  tazlab.resilience.k8s_endpoint_fix:
    addresses: [192.168.1.253]
  check_mode: true
  diff: true
  register: plan
"""

RETURN = r"""
addresses:
  description: The addresses the endpoints must list (sorted).
  returned: always
  type: list
  elements: str
  sample: [192.168.1.253]
source:
  description: Where the addresses came from (V(given) or V(discovered)).
  returned: always
  type: str
  sample: given
discovered_from:
  description: The control-plane nodes and addresses used when discovering.
  returned: always
  type: list
  elements: dict
plan:
  description:
    - The plan - C(endpoints_action) and C(slice_action) (V(none), V(create), V(replace)), C(delete_slices),
      C(restarts), C(skipped_restarts), C(family) (the address family worked on), C(other_family_slices)
      (slices of the other family, left alone), and the objects to write.
  returned: always
  type: dict
diff:
  description: Addresses of the Endpoints and of each EndpointSlice before and after.
  returned: always
  type: dict
  sample: {"before": {"endpoints": ["192.168.1.71"], "slices": {"kubernetes": ["192.168.1.71"]}},
           "after": {"endpoints": ["192.168.1.253"], "slices": {"kubernetes": ["192.168.1.253"]}}}
stickiness:
  description:
    - The stickiness watch (seconds watched, number of reads, the address family watched).
    - When it failed, also C(returned), C(removed), C(endpoints), C(slices) and C(suspects) (Ready control
      planes whose own address is not advertised, each C(node) and C(address)).
  returned: when the module wrote and stickiness_check is true
  type: dict
  sample: {"ok": true, "watched_s": 20.0, "polls": 21, "family": "IPv4"}
restarted:
  description: Workloads restarted, with the C(restartedAt) stamp.
  returned: always
  type: list
  elements: dict
skipped_restarts:
  description: Workloads not restarted because they do not exist.
  returned: always
  type: list
  elements: dict
rollout:
  description: Per restarted workload, whether and when (seconds since the module started) it was rolled out.
  returned: always
  type: list
  elements: dict
stale_addresses:
  description: Addresses the reconciler wrote back (an apiserver still advertises them).
  returned: when the stickiness check failed
  type: list
  elements: str
  sample: [192.168.1.71]
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import (
    K8S_BOUNDS, k8s_argument_spec, k8s_libraries,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.endpoints import check_options, run_endpoint_fix
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import between, positive, run_module


def argument_spec():
    return k8s_argument_spec(
        addresses=dict(type='list', elements='str'),
        port=dict(type='int', default=6443),
        restart_defaults=dict(type='bool', default=True),
        restart=dict(type='list', elements='dict', default=[], options=dict(
            kind=dict(type='str', default='Deployment', choices=['Deployment', 'DaemonSet', 'StatefulSet']),
            namespace=dict(type='str', default='kube-system'),
            name=dict(type='str', required=True),
        )),
        wait=dict(type='bool', default=True),
        rollout_timeout=dict(type='float', default=300),
        stickiness_check=dict(type='bool', default=True),
        stickiness_period=dict(type='float', default=20),
        poll_interval=dict(type='float', default=1),
    )


BOUNDS = dict(K8S_BOUNDS, port=between(1, 65535), rollout_timeout=positive(), stickiness_period=positive(),
              poll_interval=positive())


def main():
    run_module(argument_spec(), run_endpoint_fix, requires=[k8s_libraries], bounds=BOUNDS, check=check_options)


if __name__ == '__main__':
    main()
