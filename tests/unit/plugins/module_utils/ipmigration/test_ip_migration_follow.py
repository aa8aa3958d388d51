"""ipmigration/follow.py: has the cluster followed a step (each condition), and the bounded waits."""

from __future__ import annotations

import copy

import pytest
from fake_clock import FakeClock

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.follow import (
    NotFollowed, check_follow, follow_problems, follow_step, followed, wait_followed, wait_verified)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosConfigError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import failure

MOVE = follow_step({'name': 'cp-01', 'peer_url': 'https://127.0.0.253:2380', 'moves': True,
                    'kubernetes_address': '10.0.0.253', 'kubernetes_address_before': '10.0.0.71'})


def member(name, url, healthy=True, learner=False):
    return {'name': name, 'address': url.split('//')[1].rsplit(':', 1)[0], 'peer_urls': [url], 'healthy': healthy,
            'is_learner': learner}


def readings():
    """The cluster once cp-01 has moved from .71 to .253 and everything followed."""
    return {
        'changed': False,
        'etcd': {'quorum': True, 'members': [member('cp-01', 'https://127.0.0.253:2380'),
                                             member('cp-02', 'https://127.0.0.72:2380'),
                                             member('cp-03', 'https://127.0.0.73:2380')]},
        'kubernetes': {'endpoints': ['10.0.0.253', '10.0.0.72', '10.0.0.73'],
                       'slice_addresses': ['10.0.0.253', '10.0.0.72', '10.0.0.73'],
                       'nodes': [{'name': 'cp-01', 'control_plane': True, 'ready': True},
                                 {'name': 'cp-02', 'control_plane': True, 'ready': True},
                                 {'name': 'cp-03', 'control_plane': True, 'ready': True},
                                 {'name': 'w-01', 'control_plane': False, 'ready': False}]},
    }


def changed(**edits):
    """readings() with one thing changed: edits map a dotted path to a function of its value."""
    out = copy.deepcopy(readings())
    for path, edit in edits.items():
        *parents, last = path.split('.')
        obj = out
        for key in parents:
            obj = obj[int(key)] if isinstance(obj, list) else obj[key]
        obj[last] = edit(obj[last])
    return out


def test_followed_when_etcd_and_kubernetes_have_followed():
    assert followed(readings(), MOVE) and follow_problems(readings(), MOVE) == []
    # a worker not Ready is not the migration's business
    assert readings()['kubernetes']['nodes'][3]['ready'] is False


@pytest.mark.parametrize('edits, problem', [
    ({'etcd.quorum': lambda v: False}, 'etcd has no quorum'),
    ({'etcd.members.0.peer_urls': lambda v: ['https://127.0.0.71:2380']},
     'etcd lists https://127.0.0.71:2380 for cp-01, not yet https://127.0.0.253:2380'),
    ({'etcd.members.0.name': lambda v: 'cp-09'}, 'etcd has no member cp-01'),
    ({'etcd.members.1.healthy': lambda v: False}, 'etcd member(s) not healthy: cp-02'),
    ({'etcd.members.2.is_learner': lambda v: True}, 'etcd learner(s) still joining: cp-03'),
    ({'kubernetes.endpoints': lambda v: ['10.0.0.72', '10.0.0.73']},
     "Endpoints default/kubernetes list ['10.0.0.72', '10.0.0.73'], not yet 10.0.0.253"),
    ({'kubernetes.slice_addresses': lambda v: ['10.0.0.72', '10.0.0.73']},
     "EndpointSlice default/kubernetes lists ['10.0.0.72', '10.0.0.73'], not yet 10.0.0.253"),
    ({'kubernetes.endpoints': lambda v: v + ['10.0.0.71']},
     'Endpoints default/kubernetes still list the old address 10.0.0.71'),
    ({'kubernetes.nodes.1.ready': lambda v: False}, 'control plane(s) not Ready: cp-02'),
])
def test_each_condition_alone_keeps_the_step_unfollowed(edits, problem):
    got = changed(**edits)
    assert not followed(got, MOVE)
    assert follow_problems(got, MOVE) == [problem]


def test_the_old_address_only_in_the_slice_does_not_hold_the_step():
    # the Endpoints must drop the old address; the slice must list the new one (as the role always checked)
    got = changed(**{'kubernetes.slice_addresses': lambda v: v + ['10.0.0.71']})
    assert followed(got, MOVE)


def test_nothing_read_is_not_followed():
    assert follow_problems({'changed': False}, MOVE) == ['etcd was not read', 'Kubernetes was not read']
    assert follow_problems(dict(readings(), kubernetes=None), MOVE) == ['Kubernetes was not read']


def test_a_step_that_does_not_move_needs_only_etcd():
    vip_only = follow_step({'name': 'cp-02', 'address': '127.0.0.72'})
    assert vip_only['peer_url'] == 'https://127.0.0.72:2380' and not vip_only['moves']
    stale_k8s = changed(**{'kubernetes.endpoints': lambda v: [], 'kubernetes.nodes.0.ready': lambda v: False})
    assert followed(stale_k8s, vip_only) and followed(dict(readings(), kubernetes=None), vip_only)
    # etcd still decides
    assert not followed(changed(**{'etcd.members.1.healthy': lambda v: False}), vip_only)
    assert follow_problems(changed(**{'etcd.members.1.peer_urls': lambda v: []}), vip_only) == [
        'etcd lists no peer URL for cp-02, not yet https://127.0.0.72:2380']


def test_a_rollback_is_content_with_quorum():
    back = follow_step({'name': 'cp-01', 'address': '127.0.0.253', 'all_healthy': False})
    unhealthy = changed(**{'etcd.members.1.healthy': lambda v: False, 'etcd.members.2.is_learner': lambda v: True})
    assert followed(unhealthy, back)
    assert follow_problems(changed(**{'etcd.quorum': lambda v: False}), back) == ['etcd has no quorum']
    assert follow_step({'name': 'x', 'address': 'fd00::5'})['peer_url'] == 'https://[fd00::5]:2380'


def test_follow_input_is_checked_before_any_read():
    assert check_follow(None, None) == []
    assert check_follow({'name': 'cp-01', 'address': '10.0.0.5', 'moves': False}, None) == []
    assert check_follow({'name': 'cp-01', 'moves': False}, None) == [
        'follow needs peer_url or address (the peer URL etcd must list for cp-01)']
    assert check_follow({'name': 'cp-01', 'address': 'a', 'peer_url': 'b'}, {}) == [
        'follow takes peer_url or address, not both']
    assert check_follow({'name': 'cp-01', 'address': 'a', 'moves': True, 'kubernetes_address': '10.0.0.5'}, None) == [
        'follow.moves needs follow.kubernetes_address_before (where Kubernetes must see the node, and where it must '
        'not)', 'follow.moves needs k8s_auth: Kubernetes must follow a control plane that moves']


def reader(answers):
    answers = list(answers)

    def read():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    return read


OLD_EP = changed(**{'kubernetes.endpoints': lambda v: v + ['10.0.0.71']})


def test_wait_followed_polls_until_followed_and_tolerates_a_restarting_node():
    clock = FakeClock()
    read = reader([TalosUnreachable('127.0.0.253:50000 refused'), OLD_EP, K8sError('server', 'apiserver 503'),
                   readings()])
    got = wait_followed(read, MOVE, 60, 2, sleep=clock.sleep, clock=clock)
    assert got['followed'] is True and got['follow_problems'] == [] and got['polls'] == 4 and got['waited'] == 6
    assert clock.sleeps == [2, 2, 2] and got['etcd'] == readings()['etcd']


def test_wait_followed_fails_with_the_last_readings():
    clock = FakeClock()
    with pytest.raises(NotFollowed) as info:
        wait_followed(reader([OLD_EP] * 10), MOVE, 5, 2, sleep=clock.sleep, clock=clock)
    exc = info.value
    assert str(exc) == ('the cluster has not followed cp-01 (https://127.0.0.253:2380) within 5s: Endpoints '
                        'default/kubernetes still list the old address 10.0.0.71')
    assert sum(clock.sleeps) == 5 and exc.fields['polls'] == 4
    # what the role's rescue reads: the failure carries etcd and kubernetes.endpoints, changed false, kind timeout
    out = failure(exc)
    assert out['etcd'] == OLD_EP['etcd'] and out['kubernetes']['endpoints'] == OLD_EP['kubernetes']['endpoints']
    assert out['followed'] is False and out['changed'] is False and out['error']['kind'] == 'timeout'
    assert out['follow_problems'] == ['Endpoints default/kubernetes still list the old address 10.0.0.71']


def test_wait_followed_names_the_last_read_error_and_keeps_the_readings_before_it():
    clock = FakeClock()
    with pytest.raises(NotFollowed) as info:
        wait_followed(reader([OLD_EP] + [TalosUnreachable('no route')] * 10), MOVE, 3, 2, sleep=clock.sleep,
                      clock=clock)
    assert str(info.value).endswith('still list the old address 10.0.0.71; last read: no route')
    assert info.value.fields['etcd'] == OLD_EP['etcd']
    with pytest.raises(NotFollowed) as info:
        wait_followed(reader([TalosUnreachable('no route')] * 10), MOVE, 3, 2, sleep=clock.sleep, clock=clock)
    assert str(info.value).endswith('within 3s: no reading; last read: no route')
    assert 'etcd' not in info.value.fields and info.value.fields['follow_problems'] == []


def test_wait_followed_stops_at_once_on_bad_input():
    with pytest.raises(TalosConfigError):
        wait_followed(reader([TalosConfigError('no talosconfig')]), MOVE, 60, 2, sleep=pytest.fail)


def test_wait_verified_returns_the_last_reading_when_time_runs_out():
    clock = FakeClock()
    bad = {'verified': False, 'problems': ['coredns is not ready']}
    got = wait_verified(reader([bad, {'verified': True, 'problems': []}]), 10, 2, sleep=clock.sleep, clock=clock)
    assert got['verified'] is True and got['polls'] == 2 and got['waited'] == 2
    clock = FakeClock()
    got = wait_verified(reader([bad] * 10), 4, 2, sleep=clock.sleep, clock=clock)
    assert got == dict(bad, polls=3, waited=4)
    with pytest.raises(TalosUnreachable):
        wait_verified(reader([bad, TalosUnreachable('gone'), TalosUnreachable('gone')]), 3, 2, sleep=clock.sleep,
                      clock=clock)
