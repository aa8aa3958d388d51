"""Drain: which pods move, and a cordon that an uncordon later only undoes when it was ours."""

from __future__ import annotations

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
