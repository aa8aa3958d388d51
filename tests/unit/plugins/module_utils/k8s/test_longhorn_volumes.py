"""longhorn_volume_info's logic: the summary, the namespace guard and the wait for healthy volumes."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.longhorn_volumes import (
    VolumesMissing, VolumesNotHealthy, check_options, read_volumes, summarize, unhealthy,
)
from fake_clock import FakeClock


def volume(name, robustness='healthy', state='attached', node='w1', pvc=None):
    status = {'state': state, 'robustness': robustness, 'currentNodeID': node}
    if pvc:
        status['kubernetesStatus'] = {'namespace': pvc[0], 'pvcName': pvc[1]}
    return {'metadata': {'name': name}, 'spec': {'numberOfReplicas': 3}, 'status': status}


class Client(object):
    """read_namespace + list_custom, with a list of volume lists served one per read."""

    def __init__(self, rounds, namespaces=('longhorn-system',), fail=None):
        self.rounds = list(rounds)
        self.namespaces = namespaces
        self.fail = fail
        self.reads = 0
        self.core = self

    def read_namespace(self, name):
        if name not in self.namespaces:
            raise K8sError('not_found', 'namespaces "{0}" not found'.format(name), status=404)
        return {'metadata': {'name': name}}

    def call(self, what, fn, **kw):
        return fn(**kw)

    def list_custom(self, plural, namespace):
        assert plural == 'volumes'
        if self.fail:
            raise self.fail
        self.reads += 1
        return self.rounds[min(self.reads, len(self.rounds)) - 1]


def test_summary_and_unhealthy():
    v = summarize(volume('pvc-1', robustness='degraded', pvc=('db', 'data')))
    assert v == {'name': 'pvc-1', 'state': 'attached', 'robustness': 'degraded', 'node': 'w1', 'replicas': 3,
                 'pvc': 'db/data'}
    vols = [v, summarize(volume('pvc-2', state='detached', robustness='unknown'))]
    assert unhealthy(vols) == ['pvc-1']


def test_without_waiting_one_read():
    client = Client([[volume('a'), volume('b', robustness='degraded')]])
    out = read_volumes(client)
    assert out['unhealthy'] == ['b'] and [v['name'] for v in out['volumes']] == ['a', 'b'] and client.reads == 1
    assert out['changed'] is False


def test_waits_until_healthy():
    clock = FakeClock()
    client = Client([[volume('a', robustness='degraded')]] * 3 + [[volume('a')]])
    out = read_volumes(client, wait_healthy=True, wait_timeout=60, poll_interval=2, clock=clock, sleep=clock.sleep)
    assert out['unhealthy'] == [] and client.reads == 4 and out['waited_seconds'] == 6.0


def test_wait_runs_out_with_the_volumes_in_the_error():
    clock = FakeClock()
    client = Client([[volume('a', robustness='degraded')]])
    with pytest.raises(VolumesNotHealthy) as info:
        read_volumes(client, wait_healthy=True, wait_timeout=5, poll_interval=2, clock=clock, sleep=clock.sleep)
    assert 'still not healthy after 5 s: a' in str(info.value) and info.value.kind == 'timeout'
    # reads at 0, 2, 4 and a last one at the deadline: the wait never runs past wait_timeout
    assert client.reads == 4 and clock.now == 5
    assert info.value.result_fields()['unhealthy'] == ['a']


def test_missing_namespace_is_not_healthy_and_missing_names_are_named():
    with pytest.raises(K8sError) as info:
        read_volumes(Client([[]]), namespace='nope')
    assert 'namespace nope does not exist' in str(info.value)
    with pytest.raises(VolumesMissing) as info:
        read_volumes(Client([[volume('a')]]), names=['a', 'zz'])
    assert str(info.value) == 'no Longhorn volume named zz' and info.value.result_fields()['volumes'][0]['name'] == 'a'


def test_api_errors_say_what_was_read():
    with pytest.raises(K8sError) as info:
        read_volumes(Client([[]], fail=K8sError('auth', 'forbidden', status=403)))
    assert str(info.value) == 'cannot read Longhorn volumes: forbidden' and info.value.kind == 'auth'


def test_option_checks():
    assert check_options({'wait_timeout': -1, 'poll_interval': 1}) == ['wait_timeout must be >= 0 and poll_interval > 0']
    assert check_options({'wait_timeout': 0, 'poll_interval': 1}) == []
