"""Drain: which pods move, and a cordon that an uncordon later only undoes when it was ours."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import drain


def _pod(name, owner=None, phase='Running', mirror=False):
    md = {'name': name, 'namespace': 'apps'}
    if owner:
        md['ownerReferences'] = [{'kind': owner, 'name': 'x', 'controller': True}]
    if mirror:
        md['annotations'] = {'kubernetes.io/config.mirror': 'abc'}
    return {'metadata': md, 'status': {'phase': phase}}


def test_daemonset_mirror_and_finished_pods_stay():
    pods = [_pod('web', 'ReplicaSet'), _pod('ds', 'DaemonSet'), _pod('static', mirror=True),
            _pod('job', 'Job', phase='Succeeded'), _pod('bare')]
    assert [p['metadata']['name'] for p in drain.pods_to_evict(pods)] == ['web', 'bare']


def test_cordon_marks_it_ours_and_uncordon_only_undoes_ours():
    node = {'metadata': {'name': 'w1'}, 'spec': {}}
    patch = drain.cordon_patch(node, True)
    assert patch['spec'] == {'unschedulable': True}
    assert patch['metadata']['annotations'] == {'remediation.tazlab.io/cordoned': 'true'}
    cordoned_by_us = {'metadata': {'name': 'w1', 'annotations': {'remediation.tazlab.io/cordoned': 'true'}},
                      'spec': {'unschedulable': True}}
    assert drain.cordon_patch(cordoned_by_us, True) is None
    assert drain.cordon_patch(cordoned_by_us, False)['spec'] == {'unschedulable': None}
    by_a_human = {'metadata': {'name': 'w1'}, 'spec': {'unschedulable': True}}
    assert drain.cordon_patch(by_a_human, False) is None


class _Cluster(object):
    """pods_on_node + the Eviction API; a PDB refuses the eviction of 'db' (429), 'web' goes once evicted."""

    def __init__(self):
        self.core = self
        self.pods = {'web': _pod('web', 'ReplicaSet'), 'db': _pod('db', 'StatefulSet')}
        self.t = 0.0
        self.sleeps = []

    def pods_on_node(self, name):
        return list(self.pods.values())

    def call(self, what, fn, write=False, **kw):
        return fn(**kw)

    def create_namespaced_pod_eviction(self, name, namespace, body):
        if name == 'db':
            raise K8sError('conflict', 'Cannot evict pod as it would violate the pod\'s disruption budget.',
                           status=429)
        self.pods.pop(name)

    def clock(self):
        return self.t

    def sleep(self, secs):
        self.sleeps.append(secs)
        self.t += secs


def test_drain_retries_a_pdb_refusal_until_the_deadline_never_past_it():
    cluster = _Cluster()
    with pytest.raises(drain.DrainError) as info:
        drain.drain(cluster, 'w1', timeout=5, poll=2, now=cluster.clock, sleep=cluster.sleep)
    assert 'drain of w1 did not finish in 5s; still there: apps/db' in str(info.value)
    assert 'refused by a PodDisruptionBudget: apps/db' in str(info.value)
    assert cluster.sleeps == [2, 2, 1] and cluster.t == 5


def test_drain_returns_the_evicted_pods_once_gone():
    cluster = _Cluster()
    cluster.pods.pop('db')
    assert drain.drain(cluster, 'w1', timeout=5, poll=2, now=cluster.clock, sleep=cluster.sleep) == ['apps/web']
    assert cluster.sleeps == [2]
