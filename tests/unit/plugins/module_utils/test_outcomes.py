"""Domain outcomes: not API errors, never retried, their kind and fields kept through the module runner."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tazlab.resilience.plugins.module_utils import runner
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import errors as k8s_errors
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.endpoints import RolloutTimeout, StaleAdvertiser
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import VerificationFailed
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.longhorn_volumes import (
    VolumesMissing, VolumesNotHealthy,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import Outcome, is_outcome
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as proxmox_errors
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import RetryPolicy, retry_call, wait_until

REPORT = {'ok': False, 'elapsed_s': 20.0}
VOLUMES = [{'name': 'a', 'state': 'attached', 'robustness': 'degraded'}]

#: every outcome of the collection: (instance, kind, changed, result fields)
OUTCOMES = [
    (VerificationFailed('recovery of node w1 not verified within wait_timeout', REPORT), 'timeout', None,
     {'verification': REPORT}),
    (RolloutTimeout('not rolled out within 10s: coredns', [{'name': 'coredns', 'done': False}]), 'timeout', True,
     {'rollout': [{'name': 'coredns', 'done': False}]}),
    (StaleAdvertiser('address 10.0.0.1 keeps coming back', ['10.0.0.1'], [], REPORT), 'refused', True,
     {'stale_addresses': ['10.0.0.1'], 'removed_addresses': [], 'stickiness': REPORT}),
    (VolumesNotHealthy('Longhorn volumes still not healthy after 5 s: a', VOLUMES, ['a']), 'timeout', None,
     {'volumes': VOLUMES, 'unhealthy': ['a']}),
    (VolumesMissing('no Longhorn volume named zz', VOLUMES), 'not_found', None, {'volumes': VOLUMES}),
]
IDS = [type(o[0]).__name__ for o in OUTCOMES]


@pytest.mark.parametrize('outcome,kind,changed,fields', OUTCOMES, ids=IDS)
def test_an_outcome_is_not_an_api_error(outcome, kind, changed, fields):
    assert isinstance(outcome, Outcome) and is_outcome(outcome)
    assert not isinstance(outcome, K8sError) and not isinstance(outcome, proxmox_errors.ProxmoxError)
    assert outcome.kind == kind and outcome.changed is changed and outcome.result_fields() == fields
    assert outcome.as_dict() == {'kind': kind, 'message': str(outcome)}
    assert outcome.transient is False


@pytest.mark.parametrize('outcome,kind,changed,fields', OUTCOMES, ids=IDS)
def test_an_outcome_is_not_caught_as_a_k8s_error(outcome, kind, changed, fields):
    """A loop that catches K8sError to keep polling lets an outcome through."""
    def poll():
        try:
            raise outcome
        except K8sError:
            return 'swallowed'
    with pytest.raises(type(outcome)):
        poll()


@pytest.mark.parametrize('outcome,kind,changed,fields', OUTCOMES, ids=IDS)
def test_an_outcome_is_never_retried(outcome, kind, changed, fields):
    calls, sleeps = [], []

    def func():
        calls.append(1)
        raise outcome
    with pytest.raises(type(outcome)):   # even a predicate that retries everything
        retry_call(func, lambda exc: True, RetryPolicy(attempts=5, jitter=0), sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == []
    with pytest.raises(type(outcome)):   # and the predicates of the API clients say it is not transient
        retry_call(func, k8s_errors.is_transient, RetryPolicy(attempts=5, jitter=0), sleep=sleeps.append)
    assert not k8s_errors.is_transient(outcome) and not proxmox_errors.is_transient(outcome)
    with pytest.raises(type(outcome)):
        wait_until(func, lambda v: True, timeout=1, is_transient=lambda exc: True, sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == []


def test_an_outcome_of_kind_timeout_is_not_a_transient_timeout():
    """Yesterday's VerificationFailed was a K8sError of kind timeout, which the retry predicate took for a slow
    request; a K8sError of that kind still is one."""
    assert k8s_errors.is_transient(K8sError(k8s_errors.TIMEOUT, 'request timed out'))
    assert not k8s_errors.is_transient(VerificationFailed('not verified', REPORT))


def go(capsys, call):
    with patch_module_args({}):
        with pytest.raises(SystemExit) as info:
            runner.run_module({}, call)
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('outcome,kind,changed,fields', OUTCOMES, ids=IDS)
@pytest.mark.parametrize('wrote', [False, True])
def test_an_outcome_keeps_its_kind_and_fields_through_the_runner(capsys, outcome, kind, changed, fields, wrote):
    assert runner.is_collection_error(outcome)

    def call(run):
        run.context['node'] = 'w1'
        run.changed = lambda: wrote
        raise outcome
    code, out = go(capsys, call)
    assert code == 1 and out['failed'] is True and out['msg'] == str(outcome) and out['node'] == 'w1'
    assert out['error'] == {'kind': kind, 'message': str(outcome)}
    assert out['changed'] is (wrote if changed is None else changed)
    for key, value in fields.items():
        assert out[key] == value


def test_a_plain_outcome():
    outcome = Outcome('the drill did not come back')
    assert outcome.kind == 'outcome' and outcome.result_fields() == {} and outcome.changed is None
    assert Outcome('late', kind='late').as_dict() == {'kind': 'late', 'message': 'late'}
    assert repr(Outcome('late', kind='late')) == "Outcome('late', kind='late')"
