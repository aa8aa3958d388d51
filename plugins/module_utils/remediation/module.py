# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module runner's calls of remediation_plan and k8s_remediation, and the reads they need.

``read_cluster`` reads what the planner (``remediation/plan.py``, pure) needs in three requests;
``wait_until_ready`` waits for a node with ``retry.wait_until``; the claim itself is ``remediation/claim.py``.
The Kubernetes client is imported only when a call runs.
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import node_ready, rfc3339
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import (
    ClaimError, ClaimService, is_run_hold, lease_run, lease_state, plan_claim, plan_end_run, plan_release, predict,
    utc, view,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import (
    NOT_FOUND, match_vms, node_facts, plan_remediation, restore_selection, vm_for_plan,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until

__all__ = ['LEASE_PREFIX', 'read_cluster', 'check_plan_options', 'run_remediation_plan', 'wait_until_ready',
           'check_claim_options', 'run_k8s_remediation']

LEASE_PREFIX = 'tazlab-remediation-'


# -- remediation_plan ---------------------------------------------------------------------------------------

def read_cluster(client, lease_namespace, node_lease_namespace='kube-node-lease'):
    """Nodes, ({node: lease holder}, {node: run on the lease}), the cluster's time and {node: kubelet Lease},
    in three requests. The cluster's time is the API server's clock (``client.server_time``) at the last
    answer before the node leases are read (the local clock if none carried a Date)."""
    nodes = client.items(client.call('list nodes', client.core.list_node))
    leases_api = client.coordination
    try:
        leases = client.items(client.call('list remediation leases', leases_api.list_namespaced_lease,
                                          namespace=lease_namespace,
                                          label_selector='app.kubernetes.io/managed-by=tazlab.resilience'))
    except K8sError as exc:
        if exc.status != 404:
            raise
        leases = []
    now = client.server_time if client.server_time is not None else time.time()
    claims, runs = {}, {}
    for lease in leases:
        name = (lease.get('metadata') or {}).get('name') or ''
        holder = lease_state(lease, now)[0]
        if name.startswith(LEASE_PREFIX) and holder:
            claims[name[len(LEASE_PREFIX):]] = holder
            runs[name[len(LEASE_PREFIX):]] = lease_run(lease)
    try:
        node_leases = client.items(client.call('list node leases', leases_api.list_namespaced_lease,
                                               namespace=node_lease_namespace))
    except K8sError as exc:
        if exc.status != 404:
            raise
        node_leases = []
    kubelet = dict(((lease.get('metadata') or {}).get('name'), lease) for lease in node_leases)
    return nodes, (claims, runs), now, kubelet


def check_plan_options(params):
    """The thresholds and the etcd input, before any request (raises PlanError)."""
    plan_remediation([], unhealthy_seconds=params['unhealthy_seconds'], max_unhealthy=params['max_unhealthy'],
                     min_healthy=params['min_healthy'], etcd=params.get('etcd'))
    return []


def run_remediation_plan(run):
    """remediation_plan: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params

    p = run.params
    nodes, (claims, runs), now, kubelet = read_cluster(client_from_params(p), p['lease_namespace'],
                                                       p['node_lease_namespace'])
    matches = None if p['vms'] is None else match_vms(nodes, p['vms'])
    facts = [node_facts(n, now, vm=None if matches is None else vm_for_plan(matches[n['metadata']['name']]),
                        exclude_labels=tuple(p['exclude_labels']), claims=claims, claim_runs=runs,
                        lease=kubelet.get(n['metadata']['name'])) for n in nodes]
    plan = plan_remediation(facts, unhealthy_seconds=p['unhealthy_seconds'], max_unhealthy=p['max_unhealthy'],
                            min_healthy=p['min_healthy'], fence_running=p['fence_running'], only=p['nodes'],
                            actor=p['actor'], proxmox_quorate=p['proxmox_quorate'],
                            run=(p['run_id'] or '').strip() or None, take_over_run=p['take_over_run'],
                            etcd=p['etcd'])
    result = dict(plan, changed=False, cluster_time=rfc3339(utc(now)))
    if p['restore'] or p['restore_nodes']:
        result.update(restore_selection(plan['in_remediation'], [n['metadata']['name'] for n in nodes],
                                        p['restore_nodes']))
        for skipped in result['restore_skipped']:
            if skipped['reason'] == NOT_FOUND:
                run.warn('restore_nodes: the cluster has no node named {0}; nothing is restored for it'.format(
                    skipped['node']))
    return result


# -- k8s_remediation ----------------------------------------------------------------------------------------

def wait_until_ready(service, name, node, timeout, interval, sleep=time.sleep, clock=time.monotonic):
    """(seconds waited, node) once the node is Ready; (None, node) after `timeout` seconds.

    `node` is the node as last read: when it is Ready nothing more is read."""
    start = clock()
    reads = [node]

    def probe():
        if reads:
            return reads.pop()
        return service.read(name)[0]
    try:
        node = wait_until(probe, lambda n: node_ready(n) == 'True', timeout, interval=interval, sleep=sleep,
                          clock=clock, what='node {0} Ready'.format(name))
    except WaitTimeout as exc:
        return None, exc.last
    return clock() - start, node


def check_claim_options(params):
    """k8s_remediation's input checks, before any request."""
    if not params['actor'].strip():
        return ['actor must not be empty']
    return []


def run_k8s_remediation(run):
    """k8s_remediation: the module runner's one call. Failures report changed false (as they always did)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params

    p = run.params
    client = client_from_params(p)
    try:  # before any write: a lease in a namespace that does not exist would fail half-way through
        client.call('read namespace {0}'.format(p['lease_namespace']), client.core.read_namespace,
                    name=p['lease_namespace'])
    except K8sError as exc:
        if exc.status == 404:
            raise ClaimError('lease_namespace {0} does not exist: nothing claimed or released'.format(
                p['lease_namespace'])) from exc
        raise
    service = ClaimService(client, namespace=p['lease_namespace'])
    node, lease = service.read(p['node'])
    waited = None
    if p['state'] == 'released' and p['wait_ready'] and not run.check_mode:
        waited, node = wait_until_ready(service, p['node'], node, p['wait_timeout'], p['poll_interval'])
        if waited is None:
            raise ClaimError('node {0} is not Ready after {1} s: not releasing it'.format(p['node'], p['wait_timeout']))
        node, lease = service.read(p['node'])
    now = service.now()
    run_id = (p['run_id'] or '').strip() or None
    if p['state'] == 'claimed':
        steps = plan_claim(node, lease, p['actor'], now, p['lease_duration'], cordon=p['cordon'], run=run_id,
                           take_over_run=p['take_over_run'])
    elif p['state'] == 'run_ended':
        steps = plan_end_run(node, lease, p['actor'], now, run_id)
    else:
        steps = plan_release(node, lease, p['actor'], now, force=p['force'], run=run_id,
                             take_over_run=p['take_over_run'])
    before = view(node, lease, now)
    # Moving only this run's hold on a claim the actor already has is not a change of the claim (a
    # rerun of the same actor stays idempotent); it is still listed in steps.
    result = {'changed': any(not is_run_hold(s) for s in steps), 'steps': steps, 'cluster_time': rfc3339(utc(now))}
    if waited is not None:
        result['waited_ready_seconds'] = round(waited, 1)
    if steps and not run.check_mode:
        service.execute(steps, p['actor'], p['lease_duration'], run=run_id)
        node, lease = service.read(p['node'])
    after = view(node, lease, service.now())
    if run.check_mode:
        after = predict(before, steps, p['actor'], run_id)
    result['holder'] = after['lease_holder']
    result['run'] = after['lease_run']
    if run.diff:
        result['diff'] = {'before': before, 'after': after}
    return result
