#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: longhorn_volume_info
short_description: Report Longhorn volumes' state and robustness, and wait until their replicas are rebuilt
version_added: 0.1.0
description:
  - Lists Longhorn C(volumes.longhorn.io) (one request) with their state, robustness, the node they are
    attached to and their replica counts.
  - With O(wait_healthy), polls until no selected volume is V(degraded), V(faulted) or V(unknown). After a
    node comes back, Longhorn rebuilds the replicas it lost, and a restore is only complete once that is done.
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
  names:
    description: Only these volumes (Longhorn volume names, C(pvc-...)). All volumes when omitted.
    type: list
    elements: str
  wait_healthy:
    description: Wait until every selected volume that is attached is V(healthy) (detached volumes are not waited for).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait_healthy).
    type: int
    default: 600
  poll_interval:
    description: Seconds between two listings while waiting.
    type: float
    default: 2
  namespace:
    description: Longhorn's namespace. A namespace that does not exist fails (it is not zero healthy volumes).
    type: str
    default: longhorn-system
"""

EXAMPLES = r"""
- name: Wait until Longhorn has rebuilt the replicas lost with worker-new-03
  tazlab.resilience.longhorn_volume_info:
    wait_healthy: true
    wait_timeout: 900
  register: longhorn
"""

RETURN = r"""
volumes:
  description: The selected volumes.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
    state:
      description: Longhorn's C(status.state) (attached, detached, attaching...).
      type: str
    robustness:
      description: Longhorn's C(status.robustness) (healthy, degraded, faulted, unknown).
      type: str
    node:
      description: Node the volume is attached to (C(status.currentNodeID)).
      type: str
    replicas:
      description: Number of replicas wanted (C(spec.numberOfReplicas)).
      type: int
    pvc:
      description: C(namespace/name) of the claim, when Longhorn knows it.
      type: str
  sample:
    - {name: pvc-7d3c, state: attached, robustness: healthy, node: worker-new-02, replicas: 3, pvc: traefik/acme}
unhealthy:
  description: Names of the attached volumes that are not healthy.
  returned: success
  type: list
  elements: str
waited_seconds:
  description: How long the module waited (O(wait_healthy)).
  returned: success
  type: float
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import (
    K8S_BOUNDS, k8s_argument_spec, k8s_libraries,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.longhorn_volumes import (
    check_options, run_volume_info,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    return k8s_argument_spec(
        names=dict(type='list', elements='str'),
        wait_healthy=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=600),
        poll_interval=dict(type='float', default=2),
        namespace=dict(type='str', default='longhorn-system'),
    )


def main():
    run_module(argument_spec(), run_volume_info, requires=[k8s_libraries], bounds=K8S_BOUNDS, check=check_options)


if __name__ == '__main__':
    main()
