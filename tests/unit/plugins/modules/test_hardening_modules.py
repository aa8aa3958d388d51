"""The hardening module entries through the module runner: refusals, failures and bad input keep their fields."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import runner as hardening
from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.disk import HardeningFailed, HardeningRefused
from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.secretbox import SecretboxRefused
from ansible_collections.tazlab.resilience.plugins.modules import talos_disk_encryption, talos_secretbox
from module_harness import run_main

CPS = [dict(address='10.0.0.1', name='cp-01'), dict(address='10.0.0.2', name='cp-02')]


def raising(exc):
    def call(params, check_mode=False):
        raise exc
    return call


def secretbox_args(**kw):
    return dict(dict(control_planes=CPS, endpoints=['10.0.0.1']), **kw)


def disk_args(**kw):
    return dict(dict(node='10.0.0.3', node_name='w-03', role='worker', control_planes=['10.0.0.1'],
                     state_dir='/tmp/x', endpoints=['10.0.0.1']), **kw)


def test_secretbox_node_not_a_control_plane_is_invalid():
    code, out = run_main(talos_secretbox, secretbox_args(node='10.0.0.9'))
    assert code == 1 and out['msg'] == 'node 10.0.0.9 is not one of control_planes'
    assert out['error']['kind'] == 'invalid' and out['changed'] is False


def test_secretbox_empty_control_planes_is_invalid():
    code, out = run_main(talos_secretbox, secretbox_args(control_planes=[]))
    assert code == 1 and out['msg'] == 'control_planes must not be empty'


@pytest.mark.parametrize('exc, fields', [
    (SecretboxRefused('a control plane is down'), dict(changed=False, refused=True)),
    (HardeningFailed('cp-02 failed at apply', 'apply'), dict(changed=True, where='apply')),
    (ValueError('unknown kubernetes option(s): x'), dict(changed=False)),
])
def test_secretbox_failures_keep_their_fields(monkeypatch, exc, fields):
    monkeypatch.setattr(hardening, 'secretbox', raising(exc))
    code, out = run_main(talos_secretbox, secretbox_args())
    assert code == 1 and out['msg'] == str(exc)
    for key, value in fields.items():
        assert out[key] == value, key


def test_disk_refusal_and_failure_keep_reasons_steps_and_node(monkeypatch):
    monkeypatch.setattr(hardening, 'disk_encryption', raising(HardeningRefused('not safe', ['no copies'])))
    code, out = run_main(talos_disk_encryption, disk_args())
    assert code == 1 and out['refused'] is True and out['reasons'] == ['no copies'] and out['node'] == 'w-03'
    assert out['changed'] is False and out['error']['kind'] == 'refused'
    failed = HardeningFailed('w-03 failed at wipe', 'wipe', ['drain'])
    monkeypatch.setattr(hardening, 'disk_encryption', raising(failed))
    code, out = run_main(talos_disk_encryption, disk_args())
    assert code == 1 and out['where'] == 'wipe' and out['steps'] == ['drain'] and out['changed'] is True
    assert out['node'] == 'w-03' and out['msg'] == 'w-03 failed at wipe'


def test_disk_warnings_are_warned(monkeypatch):
    from ansible.module_utils.basic import AnsibleModule
    warned = []
    monkeypatch.setattr(AnsibleModule, 'warn', lambda self, message: warned.append(message))
    monkeypatch.setattr(hardening, 'disk_encryption',
                        lambda params, check_mode=False: dict(changed=False, node='w-03', warnings=['tpm absent']))
    code, out = run_main(talos_disk_encryption, disk_args())
    assert code == 0 and out['node'] == 'w-03' and warned == ['tpm absent']
    assert 'deprecations' not in out   # the runner warns; it never hands `warnings` to exit_json (deprecated)
