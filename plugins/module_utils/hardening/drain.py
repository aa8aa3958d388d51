# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cordon and drain a node the way ``kubectl drain`` does, through the Eviction API (PDBs honoured).

Talos' own drain during a Reset is no safety gate (its errors are only logged, it gives up after
5 minutes, a PDB refusal is a warning: talos-hardening.md section 2), so the rollout drains first:

* cordon (``spec.unschedulable``) with the cordon annotation of k8s_remediation's claim, so an uncordon
  later only undoes what this run did;
* evict every pod on the node except DaemonSet pods, mirror (static) pods and pods already finished;
  429 (a PodDisruptionBudget says not now) is retried until the deadline, never forced;
* wait until none of those pods remains on the node.
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    is_daemonset_pod, is_mirror_pod, name_of, namespace_of)
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import ANNOTATION_CORDONED
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import Pace


class DrainError(Exception):
    pass


def pods_to_evict(pods):
    """The pods a drain must move: not DaemonSet-owned, not mirror pods, not finished."""
    out = []
    for p in pods:
        phase = (p.get('status') or {}).get('phase')
        if is_daemonset_pod(p) or is_mirror_pod(p) or phase in ('Succeeded', 'Failed'):
            continue
        out.append(p)
    return out


def cordon_patch(node, cordon=True):
    """The node patch for cordon/uncordon, or None when nothing changes.

    Cordoning a schedulable node marks it ours (annotation); uncordon only removes our cordon."""
    spec = node.get('spec') or {}
    annotations = (node.get('metadata') or {}).get('annotations') or {}
    if cordon:
        if spec.get('unschedulable'):
            return None
        return {'spec': {'unschedulable': True}, 'metadata': {'annotations': {ANNOTATION_CORDONED: 'true'}}}
    if spec.get('unschedulable') and annotations.get(ANNOTATION_CORDONED) == 'true':
        return {'spec': {'unschedulable': None}, 'metadata': {'annotations': {ANNOTATION_CORDONED: None}}}
    return None


def cordon(client, name, on=True):
    node = client.get_node(name)
    body = cordon_patch(node, on)
    if body is None:
        return False
    client.patch_node(name, body)
    return True


def _evict(client, pod):
    body = {'apiVersion': 'policy/v1', 'kind': 'Eviction',
            'metadata': {'name': name_of(pod), 'namespace': namespace_of(pod)}}
    client.call('evict pod %s/%s' % (namespace_of(pod), name_of(pod)), client.core.create_namespaced_pod_eviction,
                write=True, name=name_of(pod), namespace=namespace_of(pod), body=body)


def drain(client, name, timeout=300.0, poll=2.0, now=time.monotonic, sleep=time.sleep):
    """Evict the node's pods (honouring PDBs) and wait until they are gone. Returns the pods evicted."""
    pace = Pace(float(poll), timeout=float(timeout), sleep=sleep, clock=now)
    evicted = set()
    while True:
        pending = pods_to_evict(client.pods_on_node(name))
        if not pending:
            return sorted(evicted)
        blocked = []
        for pod in pending:
            key = '%s/%s' % (namespace_of(pod), name_of(pod))
            if (pod.get('metadata') or {}).get('deletionTimestamp'):
                continue        # evicted, terminating
            try:
                _evict(client, pod)
                evicted.add(key)
            except K8sError as exc:
                if exc.status == 404:
                    continue
                if exc.status == 429:
                    blocked.append('%s (%s)' % (key, exc))
                    continue
                raise
        if pace.expired():
            raise DrainError('drain of %s did not finish in %ss; still there: %s%s' % (
                name, timeout, ', '.join('%s/%s' % (namespace_of(p), name_of(p)) for p in pending),
                ('; refused by a PodDisruptionBudget: ' + ', '.join(blocked)) if blocked else ''))
        pace.sleep()
