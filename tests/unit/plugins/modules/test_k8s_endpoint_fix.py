"""The k8s_endpoint_fix module entry: argument handling, check mode and diff, idempotence."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import endpoints
from ansible_collections.tazlab.resilience.plugins.modules import k8s_endpoint_fix as mod

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'module_utils', 'k8s'))
import k8s_fixtures as fx  # noqa: E402
from fake_k8s import FakeK8s  # noqa: E402
from module_harness import run_main

AUTH = dict(host='https://127.0.0.1:6443', api_key='tok')
CP = {'node-role.kubernetes.io/control-plane': ''}


def objects(ip='192.168.1.71'):
    return [
        ('nodes', fx.node('cp-1', labels=CP, ip='192.168.1.253')),
        ('endpoints', {'metadata': {'name': 'kubernetes', 'namespace': 'default',
                                    'labels': {'endpointslice.kubernetes.io/skip-mirror': 'true'}},
                       'subsets': [{'addresses': [{'ip': ip}],
                                    'ports': [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]}]}),
        ('endpointslices', {'metadata': {'name': 'kubernetes', 'namespace': 'default',
                                         'labels': {'kubernetes.io/service-name': 'kubernetes'}},
                            'addressType': 'IPv4', 'endpoints': [{'addresses': [ip], 'conditions': {'ready': True}}],
                            'ports': [{'name': 'https', 'port': 6443, 'protocol': 'TCP'}]}),
    ]


@pytest.fixture
def cluster(monkeypatch):
    state = {'fake': FakeK8s(objects()), 'params': []}

    def factory(params, sleep=None):
        state['params'].append(dict(params))
        return state['fake']
    monkeypatch.setattr(endpoints, 'connect', factory)
    return state


def call(args, check_mode=False, diff=False):
    return run_main(mod, args, check_mode=check_mode, diff=diff)


def test_bad_addresses_rejected_before_api(cluster):
    code, out = call(dict(AUTH, addresses=['192.168.1.300']))
    assert code == 1 and 'not an IP address' in out['msg'] and cluster['params'] == []
    code, out = call(dict(AUTH, addresses=[]))
    assert code == 1 and 'must not be an empty list' in out['msg']
    code, out = call(dict(AUTH, port=70000))
    assert code == 1 and 'port' in out['msg']


def test_restart_suboptions_validated(cluster):
    code, out = call(dict(AUTH, restart=[{'kind': 'Pod', 'name': 'x'}]))
    assert code == 1 and 'kind' in out['msg']


def test_check_mode_diff_no_write(cluster):
    code, out = call(dict(AUTH), check_mode=True, diff=True)
    assert code == 0, out
    assert out['changed'] is True and out['source'] == 'discovered'
    assert out['diff']['before']['endpoints'] == ['192.168.1.71']
    assert out['diff']['after']['endpoints'] == ['192.168.1.253']
    assert cluster['fake'].log == []


def test_already_right_no_change(monkeypatch):
    fake = FakeK8s(objects(ip='192.168.1.253'))
    monkeypatch.setattr(endpoints, 'connect', lambda params, sleep=None: fake)
    code, out = call(dict(AUTH, addresses=['192.168.1.253']))
    assert code == 0 and out['changed'] is False and out['restarted'] == [] and fake.log == []


def test_write_without_restarts_and_short_watch(cluster):
    code, out = call(dict(AUTH, addresses=['192.168.1.253'], restart_defaults=False, stickiness_period=0.05,
                          poll_interval=0.01))
    assert code == 0, out
    assert out['changed'] is True and out['stickiness']['ok'] is True
    assert [e[0] for e in cluster['fake'].write_log()] == ['replace', 'replace']


def test_api_error_mid_run_reports_kind_and_change(cluster):
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
    cluster['fake'].fail_next = {'replace endpointslices': [K8sError('invalid', 'slice refused (422)', status=422)]}
    code, out = call(dict(AUTH, addresses=['192.168.1.253'], restart_defaults=False))
    assert code == 1 and out['error']['kind'] == 'invalid' and 'slice refused' in out['msg']
    # the Endpoints object was already replaced: the run changed something before it failed
    assert out['changed'] is True
    assert [e[:2] for e in cluster['fake'].write_log()] == [('replace', 'endpoints')]
