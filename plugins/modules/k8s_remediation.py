#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_remediation
short_description: Claim a Kubernetes node for remediation, or release it
version_added: 0.1.0
description:
  - Before a node is fenced and its storage freed, exactly one actor must own the job. This module takes
    a C(coordination.k8s.io/v1) Lease named C(tazlab-remediation-<node>) for O(actor), adds the
    C(remediation.tazlab.io/fencing:NoSchedule) taint, cordons the node and annotates it with the actor
    and the time. Another run, AWX job or person holding an unexpired lease makes it fail without
    changing anything.
  - O(state=released) removes the taint, uncordons the node only if this claim cordoned it, removes the
    annotations and deletes the lease.
  - With O(run_id), the lease also records which run of O(actor) holds it (annotation
    C(remediation.tazlab.io/run)), so two concurrent runs of the SAME actor never both act on a node. A
    lease held by another run of the actor blocks unless that run is proven gone (a process on this host
    that ended), handed the node back (O(state=run_ended)), or is named in O(take_over_run).
  - O(state=run_ended) keeps the claim (lease of O(actor), taint, cordon) and ends this run's hold on it,
    so that a later run of the same actor (a rerun, a restore) may act on the node.
  - Lease expiry is judged with the cluster's clock (the API server's C(Date) header), not the
    controller's.
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
    details: Reads the node and the lease and returns the steps it would take; writes nothing.
  diff_mode:
    support: full
    details: Shows the taints, cordon and lease holder before and after.
options:
  node:
    description: Name of the Kubernetes node.
    type: str
    required: true
  state:
    description:
      - V(claimed) takes the lease (or keeps it when O(actor) already holds it), taints and cordons the node.
      - V(released) undoes all of it.
      - V(run_ended) removes O(run_id) from the lease and keeps the claim; nothing when another run holds it.
    type: str
    choices: [claimed, released, run_ended]
    default: claimed
  actor:
    description:
      - Who remediates, as the lease holder identity. Use something stable across retries of the same
        job (an AWX job template name, a host name), so a second run of the same actor is idempotent.
    type: str
    required: true
  run_id:
    description:
      - The identity of this run (the role computes it with the P(tazlab.resilience.run_identity#lookup)
        lookup - C(awx-job-<id>) under AWX, else C(<host>/<pid>/<start time>)).
      - Without it, runs of the same actor are not told apart (the behaviour before run identities).
      - Required with O(state=run_ended).
    type: str
  take_over_run:
    description:
      - A run of O(actor) an operator knows is gone (an AWX job that was cancelled, a controller that
        died) - its lease is taken over although it has not expired. Only that exact run id is taken over.
    type: str
  lease_namespace:
    description: Namespace of the lease; it must exist (checked before any write).
    type: str
    default: kube-system
  lease_duration:
    description:
      - Seconds the claim is valid without renewal. An expired claim may be taken over by another actor.
    type: int
    default: 3600
  cordon:
    description: Also cordon the node (C(spec.unschedulable)) when claiming it.
    type: bool
    default: true
  force:
    description: Release the claim even when another actor holds it.
    type: bool
    default: false
  wait_ready:
    description:
      - With O(state=released), first wait until the node is C(Ready) again (it was powered back on), so a
        node is never uncordoned while it is still down. Fails after O(wait_timeout) without releasing.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the node to be C(Ready).
    type: int
    default: 600
  poll_interval:
    description: Seconds between two reads of the node while waiting.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Claim worker-new-03 for this runbook
  tazlab.resilience.k8s_remediation:
    node: worker-new-03
    actor: awx-dr_recover
    kubeconfig: ~/.kube/config

- name: Claim it for this run only (a second run of the same actor at the same time is refused)
  tazlab.resilience.k8s_remediation:
    node: worker-new-03
    actor: awx-dr_recover
    run_id: "{{ lookup('tazlab.resilience.run_identity').id }}"

- name: Release it once the node is back
  tazlab.resilience.k8s_remediation:
    node: worker-new-03
    actor: awx-dr_recover
    state: released
"""

RETURN = r"""
steps:
  description: The steps taken (or, in check mode, that would be taken).
  returned: always
  type: list
  elements: dict
  sample: [{action: create_lease, lease: tazlab-remediation-worker-new-03, holder: awx-dr_recover},
           {action: add_taint, node: worker-new-03}, {action: cordon, node: worker-new-03}]
holder:
  description: The lease holder after the task.
  returned: success
  type: str
run:
  description:
    - The run recorded on the lease after the task (null when no run holds it).
    - A step that only moves the run's hold on a claim O(actor) already has (C(take_over_lease) from the same
      actor, C(end_run)) is listed in RV(steps) but does not make the task changed.
  returned: success
  type: str
cluster_time:
  description: The cluster's time when the node was read (RFC 3339, from the API server's Date header).
  returned: always
  type: str
waited_ready_seconds:
  description: How long the module waited for the node to be Ready (O(wait_ready)).
  returned: when O(wait_ready) waited
  type: float
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec, k8s_libraries
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.module import (
    check_claim_options, run_k8s_remediation,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import positive, run_module


def argument_spec():
    return k8s_argument_spec(
        node=dict(type='str', required=True),
        state=dict(type='str', default='claimed', choices=['claimed', 'released', 'run_ended']),
        actor=dict(type='str', required=True),
        run_id=dict(type='str'),
        take_over_run=dict(type='str'),
        lease_namespace=dict(type='str', default='kube-system'),
        lease_duration=dict(type='int', default=3600),
        cordon=dict(type='bool', default=True),
        force=dict(type='bool', default=False),
        wait_ready=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=600),
        poll_interval=dict(type='float', default=2),
    )


def main():
    run_module(argument_spec(), run_k8s_remediation, requires=[k8s_libraries], check=check_claim_options,
               bounds=dict(lease_duration=positive()), required_if=[('state', 'run_ended', ('run_id',))])


if __name__ == '__main__':
    main()
