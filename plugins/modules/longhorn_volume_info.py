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

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import (
    HAS_K8S, K8S_IMPORT_ERROR, client_from_params,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError


def summarize(volume):
    meta = volume.get('metadata') or {}
    spec = volume.get('spec') or {}
    status = volume.get('status') or {}
    kstatus = status.get('kubernetesStatus') or {}
    pvc = '{0}/{1}'.format(kstatus['namespace'], kstatus['pvcName']) if kstatus.get('pvcName') else None
    return {
        'name': meta.get('name'),
        'state': status.get('state'),
        'robustness': status.get('robustness'),
        'node': status.get('currentNodeID') or None,
        'replicas': spec.get('numberOfReplicas'),
        'pvc': pvc,
    }


def unhealthy(volumes):
    return [v['name'] for v in volumes if v['state'] == 'attached' and v['robustness'] != 'healthy']


def main():
    spec = k8s_argument_spec(
        names=dict(type='list', elements='str'),
        wait_healthy=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=600),
        poll_interval=dict(type='float', default=2),
        namespace=dict(type='str', default='longhorn-system'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if not HAS_K8S:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=K8S_IMPORT_ERROR)
    p = module.params
    if p['wait_timeout'] < 0 or p['poll_interval'] <= 0:
        module.fail_json(msg='wait_timeout must be >= 0 and poll_interval > 0')
    wanted = set(p['names'] or [])
    start = time.monotonic()
    try:
        client = client_from_params(p)
        try:
            client.call('read namespace {0}'.format(p['namespace']), client.core.read_namespace, name=p['namespace'])
        except K8sError as exc:
            if exc.status == 404:
                module.fail_json(msg='namespace {0} does not exist: no Longhorn there to read volumes from (zero '
                                     'volumes would not mean healthy)'.format(p['namespace']))
            raise
        while True:
            volumes = [summarize(v) for v in client.list_custom('volumes', namespace=p['namespace'])]
            if wanted:
                volumes = [v for v in volumes if v['name'] in wanted]
            bad = unhealthy(volumes)
            waited = time.monotonic() - start
            if not p['wait_healthy'] or not bad:
                break
            if waited >= p['wait_timeout']:
                module.fail_json(msg='Longhorn volumes still not healthy after {0} s: {1}'.format(
                    p['wait_timeout'], ', '.join(bad)), volumes=volumes, unhealthy=bad)
            time.sleep(p['poll_interval'])
    except K8sError as exc:
        module.fail_json(msg='cannot read Longhorn volumes: {0}'.format(exc))
    missing = sorted(wanted - set(v['name'] for v in volumes))
    if missing:
        module.fail_json(msg='no Longhorn volume named {0}'.format(', '.join(missing)), volumes=volumes)
    module.exit_json(changed=False, volumes=volumes, unhealthy=bad, waited_seconds=round(waited, 1))


if __name__ == '__main__':
    main()
