"""ip_migration_plan's module call: step enrichment and the k8s_auth option (alias kubernetes, K8S_AUTH_*)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.run import enrich_steps, libraries
from ansible_collections.tazlab.resilience.plugins.modules import ip_migration_plan


def step(name, before, after, moves=True, k8s_after=None):
    return {'name': name, 'address_before': before, 'address_after': after, 'moves': moves,
            'kubernetes_address_after': k8s_after}


def test_steps_get_kubernetes_addresses_and_endpoints():
    facts = {'kubernetes': {'nodes': [{'name': 'cp-01', 'internal_ip': '10.0.0.71'},
                                      {'name': 'cp-02', 'internal_ip': '10.0.0.72'}]}}
    steps = [step('cp-01', '127.0.0.71', '127.0.0.253', k8s_after='10.0.0.253'),
             step('cp-02', '127.0.0.72', '127.0.0.72', moves=False),
             step('cp-03', '127.0.0.73', '127.0.0.93')]
    after = enrich_steps(steps, facts, 50001)
    assert [(s['kubernetes_address_before'], s['kubernetes_address_after']) for s in steps] == [
        ('10.0.0.71', '10.0.0.253'), ('10.0.0.72', '10.0.0.72'), ('127.0.0.73', '127.0.0.73')]
    assert steps[0]['endpoint_before'] == '127.0.0.71:50001' and steps[0]['endpoint_after'] == '127.0.0.253:50001'
    assert after == ['10.0.0.253', '10.0.0.72', '127.0.0.73']
    # without Kubernetes facts the Talos address stands in
    steps = [step('cp-01', '127.0.0.71', '127.0.0.253')]
    assert enrich_steps(steps, {'kubernetes': None}, 50000) == ['127.0.0.71']


def parsed(args, monkeypatch, env=None):
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=ip_migration_plan.argument_spec(), supports_check_mode=True)
    return module.params


def test_k8s_auth_takes_the_old_name_and_the_environment(monkeypatch):
    params = parsed({'kubernetes': {'kubeconfig': '/kc'}}, monkeypatch, env={'K8S_AUTH_CONTEXT': 'lab'})
    assert params['k8s_auth']['kubeconfig'] == '/kc' and params['k8s_auth']['context'] == 'lab'
    assert params['k8s_auth']['validate_certs'] is True and params['k8s_auth']['api_retries'] == 20
    params = parsed({'k8s_auth': {}}, monkeypatch, env={'K8S_AUTH_HOST': 'https://127.0.0.1:6443'})
    assert params['k8s_auth']['host'] == 'https://127.0.0.1:6443'
    # not given: no Kubernetes reads, and no kubernetes package needed
    params = parsed({}, monkeypatch)
    assert params['k8s_auth'] is None
    assert [lib for lib, present, trace in libraries(params)] == ['grpclib', 'protobuf']
    assert 'kubernetes' in [lib for lib, present, trace in libraries({'k8s_auth': {}})]


def test_unknown_kubernetes_option_is_refused(monkeypatch, capsys):
    with patch_module_args({'kubernetes': {'kubeconfig': '/kc', 'bogus': 1}}):
        with pytest.raises(SystemExit):
            AnsibleModule(argument_spec=ip_migration_plan.argument_spec())
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] and 'bogus' in out['msg']


def invalid(args, capsys):
    """The module's answer to args it must refuse before any API call."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ip_migration_plan.main()
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] and out['error']['kind'] == 'invalid' and out['changed'] is False
    return out['msg']


def test_follow_input_is_refused_before_any_read(capsys):
    cp = {'name': 'cp-01', 'address': '127.0.0.253'}
    assert 'follow.moves needs k8s_auth' in invalid({'endpoints': ['127.0.0.71'], 'follow': dict(cp, moves=True)},
                                                    capsys)
    assert 'give one of them' in invalid({'endpoints': ['127.0.0.71'], 'follow': cp, 'verify': True}, capsys)
    assert 'follow needs peer_url or address' in invalid({'endpoints': ['127.0.0.71'], 'follow': {'name': 'cp-01'}},
                                                         capsys)
    assert 'wait_timeout must not be negative' in invalid({'endpoints': ['127.0.0.71'], 'follow': cp,
                                                           'wait_timeout': -1}, capsys)
