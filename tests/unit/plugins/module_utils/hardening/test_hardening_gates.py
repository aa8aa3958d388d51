"""The gates of the disk-encryption rollout: etcd quorum with the node gone, Longhorn copies elsewhere."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import gates


def _members(n=3, learner=None):
    return [dict(id=i + 1, hostname='cp-0%d' % (i + 1), is_learner=(i + 1) == learner) for i in range(n)]


def _health(members, down=()):
    return dict((m['id'], None if m['id'] in down else {'errors': []}) for m in members)


def test_a_healthy_three_member_cluster_may_lose_one_control_plane():
    ms = _members()
    assert gates.etcd_gate(ms, _health(ms), 2) == []


def test_a_control_plane_is_refused_when_another_member_is_down():
    ms = _members()
    reasons = gates.etcd_gate(ms, _health(ms, down=(3,)), 2)
    assert any('cp-03 are not healthy' in r for r in reasons)
    assert any('quorum needs 2' in r for r in reasons)


def test_a_learner_blocks_the_next_node_until_it_is_promoted():
    ms = _members(learner=1)
    reasons = gates.etcd_gate(ms, _health(ms), 2)
    assert reasons and 'cp-01 are still learners' in reasons[0]


def test_a_single_member_cluster_cannot_lose_its_member():
    ms = _members(1)
    assert any('only etcd member' in r for r in gates.etcd_gate(ms, _health(ms), 1))


def test_a_worker_only_needs_a_healthy_etcd():
    ms = _members()
    assert gates.etcd_gate(ms, _health(ms), None) == []
    assert gates.etcd_gate(ms, _health(ms, down=(1,)), None) != []


def _vol(name, state='attached', robustness='healthy', node='w1', replicas=3):
    return {'metadata': {'name': name}, 'spec': {'numberOfReplicas': replicas},
            'status': {'state': state, 'robustness': robustness, 'currentNodeID': node if state == 'attached' else ''}}


def _rep(vol, node, healthy=True, running=True, suffix=''):
    return {'metadata': {'name': '%s-r-%s%s' % (vol, node, suffix)},
            'spec': {'volumeName': vol, 'nodeID': node, 'failedAt': '' if healthy else '2026-12-07T10:00:00Z',
                     'healthyAt': '2026-12-07T09:00:00Z' if healthy else ''},
            'status': {'currentState': 'running' if running else 'stopped'}}


def test_a_node_whose_replicas_have_healthy_copies_elsewhere_may_go():
    vols = [_vol('pvc-a')]
    reps = [_rep('pvc-a', n) for n in ('w1', 'w2', 'w3')]
    assert gates.longhorn_gate(vols, reps, 'w2') == []
    assert gates.longhorn_gate(vols, reps, 'w4') == []         # nothing of it there


def test_a_node_holding_the_only_healthy_replica_is_refused():
    vols = [_vol('pvc-a', robustness='healthy', replicas=1)]
    reps = [_rep('pvc-a', 'w2')]
    reasons = gates.longhorn_gate(vols, reps, 'w2')
    assert len(reasons) == 1
    assert 'pvc-a has 0 healthy replica(s) outside w2' in reasons[0]
    assert 'without a healthy copy' in reasons[0]


def test_a_degraded_volume_is_refused_everywhere_until_rebuilt():
    vols = [_vol('pvc-a', robustness='degraded')]
    reps = [_rep('pvc-a', 'w1'), _rep('pvc-a', 'w2'), _rep('pvc-a', 'w3', healthy=False)]
    assert any('degraded' in r for r in gates.longhorn_gate(vols, reps, 'w4'))


def test_an_attached_volume_counts_only_running_replicas_elsewhere():
    vols = [_vol('pvc-a', replicas=2)]
    reps = [_rep('pvc-a', 'w1'), _rep('pvc-a', 'w2', running=False)]
    assert gates.longhorn_gate(vols, reps, 'w1') != []


def test_a_detached_volume_counts_stopped_healthy_replicas_but_refuses_failed_ones():
    vols = [_vol('pvc-b', state='detached', robustness='unknown')]
    reps = [_rep('pvc-b', 'w1', running=False), _rep('pvc-b', 'w2', running=False)]
    assert gates.longhorn_gate(vols, reps, 'w1') == []
    reps[1] = _rep('pvc-b', 'w2', healthy=False, running=False)
    reasons = gates.longhorn_gate(vols, reps, 'w1')
    assert any('cannot rebuild while detached' in r for r in reasons)
    assert any('0 healthy replica(s) outside w1' in r for r in reasons)


def test_the_engine_node_counts_even_without_a_replica_there():
    vols = [_vol('pvc-a', node='w4', replicas=1)]
    reps = [_rep('pvc-a', 'w1')]
    assert gates.longhorn_gate(vols, reps, 'w4') == []
    assert gates.longhorn_gate(vols, reps, 'w1') != []


def test_min_healthy_elsewhere_is_at_least_one():
    with pytest.raises(ValueError):
        gates.longhorn_gate([], [], 'w1', 0)


def test_rebuilt_and_the_invariant():
    vols = [_vol('pvc-a', robustness='degraded')]
    reps = [_rep('pvc-a', 'w1'), _rep('pvc-a', 'w2'), _rep('pvc-a', 'w3', healthy=False)]
    assert gates.longhorn_rebuilt(vols, reps) == ['volume pvc-a is degraded']
    assert gates.without_healthy_replica(vols, reps) == []
    dead = [_rep('pvc-a', n, healthy=False) for n in ('w1', 'w2', 'w3')]
    assert gates.without_healthy_replica(vols, dead) == ['pvc-a']
    vols[0]['status']['robustness'] = 'healthy'
    reps[2] = _rep('pvc-a', 'w3')
    assert gates.longhorn_rebuilt(vols, reps) == []
