"""The module runner: bounds, input checks, dependency checks, one failure shape, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from module_harness import as_on_a_target, registered

from ansible_collections.tazlab.resilience.plugins.module_utils import runner
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.endpoints import RolloutTimeout, StaleAdvertiser
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError, RefusedError
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosPermissionDenied
from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.plan import PlanInputError

SPEC = dict(api_retries=dict(type='int', default=3), timeout=dict(type='float'), name=dict(type='str'))


def go(capsys, call, args=None, **kw):
    """(exit code, result) of run_module with SPEC and `args`."""
    with patch_module_args(dict(args or {})):
        with pytest.raises(SystemExit) as info:
            runner.run_module(SPEC, call, **kw)
    return info.value.code, json.loads(capsys.readouterr().out)


def never(run):
    raise AssertionError('the call must not run')


def test_bounds_words_and_unset_options():
    bounds = {'api_retries': runner.at_least(1), 'timeout': runner.positive(), 'wait': runner.non_negative(),
              'port': runner.between(1, 65535)}
    assert runner.bound_errors({'api_retries': 0, 'timeout': 0, 'wait': -1, 'port': 0}, bounds) == [
        'api_retries must be at least 1', 'timeout must be positive', 'wait must not be negative',
        'port must be between 1 and 65535']
    assert runner.bound_errors({'api_retries': 1, 'timeout': 0.1, 'wait': 0, 'port': 65535}, bounds) == []
    assert runner.bound_errors({'api_retries': None}, bounds) == []


def test_bad_bounds_fail_before_the_call(capsys):
    code, out = go(capsys, never, {'api_retries': 0}, bounds={'api_retries': runner.at_least(1)})
    assert code == 1 and out['msg'] == 'api_retries must be at least 1' and out['changed'] is False
    assert out['error'] == {'kind': 'invalid', 'message': 'api_retries must be at least 1'}


def test_check_reasons_and_value_error_are_invalid_input(capsys):
    code, out = go(capsys, never, {'name': 'x'}, check=lambda params: ['name {0} is taken'.format(params['name'])],
                   bounds={'api_retries': runner.at_least(5)})
    assert code == 1 and out['msg'] == 'api_retries must be at least 5; name x is taken'

    def bad(params):
        raise ValueError('no such thing')
    code, out = go(capsys, never, check=bad)
    assert code == 1 and out['error'] == {'kind': 'invalid', 'message': 'no such thing'}


def test_missing_library_fails_with_its_name_before_the_call(capsys):
    code, out = go(capsys, never, requires=[lambda params: [('somelib', True, None), ('otherlib', False, 'Traceback: x')]])
    assert code == 1 and 'otherlib' in out['msg'] and 'somelib' not in out['msg']
    assert out['error'] == {'kind': 'dependency', 'message': 'missing Python library otherlib', 'library': 'otherlib'}


def test_success_exits_with_the_result_and_sees_check_and_diff(capsys):
    seen = {}

    def call(run):
        seen.update(check=run.check_mode, diff=run.diff, name=run.params['name'])
        return {'changed': False, 'answer': 42}
    code, out = go(capsys, call, {'name': 'n', '_ansible_check_mode': True, '_ansible_diff': True})
    assert code == 0 and out['answer'] == 42 and out['changed'] is False
    assert seen == {'check': True, 'diff': True, 'name': 'n'}


def test_k8s_error_keeps_its_dict_and_the_runs_changed(capsys):
    def call(run):
        run.changed = lambda: True
        raise K8sError('invalid', 'slice refused (422)', status=422)
    code, out = go(capsys, call)
    assert code == 1 and out['msg'] == 'slice refused (422)' and out['changed'] is True
    assert out['error'] == {'kind': 'invalid', 'message': 'slice refused (422)', 'status': 422}


def test_proxmox_and_talos_errors_have_the_same_shape(capsys):
    def pve(run):
        raise ProxmoxError('locked', 'VM is locked (backup)', status=500)
    code, out = go(capsys, pve)
    assert out['error']['kind'] == 'locked' and out['error']['message'] == 'VM is locked (backup)'
    assert out['changed'] is False

    def talos(run):
        run.context['node'] = '192.168.1.71'
        raise TalosPermissionDenied('os:operator may not read the config', code=7, status='PERMISSION_DENIED',
                                    node='192.168.1.71')
    code, out = go(capsys, talos)
    assert code == 1 and out['node'] == '192.168.1.71'
    assert out['error'] == {'kind': 'TalosPermissionDenied', 'message': 'os:operator may not read the config',
                            'status': 'PERMISSION_DENIED', 'code': 7, 'node': '192.168.1.71'}


def test_collection_value_errors_are_invalid(capsys):
    def call(run):
        raise PlanInputError('node cp-09 is not in the inventory')
    code, out = go(capsys, call)
    assert out['error'] == {'kind': 'invalid', 'message': 'node cp-09 is not in the inventory'}


def test_error_fields_and_changed_travel_to_the_result(capsys):
    def stale(run):
        raise StaleAdvertiser('address 10.0.0.1 keeps coming back', ['10.0.0.1'], [], {'ok': False})
    code, out = go(capsys, stale)
    assert out['changed'] is True and out['stale_addresses'] == ['10.0.0.1'] and out['stickiness'] == {'ok': False}
    assert out['error']['kind'] == 'refused'

    def rollout(run):
        raise RolloutTimeout('not rolled out within 10s', [{'name': 'coredns', 'done': False}])
    code, out = go(capsys, rollout)
    assert out['changed'] is True and out['rollout'] == [{'name': 'coredns', 'done': False}]
    assert out['error']['kind'] == 'timeout'

    def refused(run):
        run.changed = lambda: True  # a refusal is before any write, whatever the client says
        raise RefusedError('cannot fix it', ['no Ready control plane'])
    code, out = go(capsys, refused)
    assert out['changed'] is False and out['refused'] == ['no Ready control plane']


def test_foreign_errors_keep_their_traceback():
    def call(run):
        raise RuntimeError('a bug')
    with patch_module_args({}):
        with pytest.raises(RuntimeError):
            runner.run_module(SPEC, call)
    assert not runner.is_collection_error(RuntimeError('x'))
    assert runner.is_collection_error(PlanInputError('x'))


def test_importing_the_runner_and_a_thin_module_loads_no_kubernetes():
    code = ('import sys\n'
            'import ansible_collections.tazlab.resilience.plugins.module_utils.runner\n'
            'import ansible_collections.tazlab.resilience.plugins.modules.k8s_endpoint_fix\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("kubernetes", "grpclib", "proxmoxer")))\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == '[]', out.stdout + out.stderr


def test_a_stage_names_what_failed_and_probes_see_the_params(capsys):
    seen = []

    def probe(params):
        seen.append(params['name'])
        return []

    def call(run):
        with run.stage('reading Kubernetes failed'):
            raise K8sError('network', 'connection refused')
    code, out = go(capsys, call, {'name': 'n'}, requires=[probe])
    assert seen == ['n']
    assert out['msg'] == 'reading Kubernetes failed: connection refused'
    assert out['error'] == {'kind': 'network', 'message': 'connection refused'}


# -- warnings: one key, `warnings` --------------------------------------------------------------------------

def on_a_target(capsys, call, args=None, **kw):
    """go(), with module.warn recording for the result as in the module process on a target."""
    with as_on_a_target():
        code, out = go(capsys, call, args, **kw)
    return code, registered(out)


def test_a_calls_warnings_are_warned_and_kept_under_warnings(capsys):
    def call(run):
        run.warn('said during the run')
        return {'changed': False, 'warnings': ['ASSUMED FENCED: node w-03', 'no controller recreates pod p']}
    code, out = on_a_target(capsys, call)
    assert code == 0 and out['changed'] is False
    assert out['warnings'] == ['said during the run', 'ASSUMED FENCED: node w-03', 'no controller recreates pod p']
    assert 'deprecations' not in out   # the key is never passed to exit_json (deprecated in ansible-core)


def test_the_warnings_of_a_failure_are_warned_and_kept_too(capsys):
    class Failed(K8sError):
        def result_fields(self):
            return {'warnings': ['the lock was held'], 'node': 'w-03'}

    def call(run):
        raise Failed('timeout', 'gave up after 10s')
    code, out = on_a_target(capsys, call)
    assert code == 1 and out['failed'] is True and out['node'] == 'w-03'
    assert out['warnings'] == ['the lock was held'] and 'deprecations' not in out


def test_the_runner_hands_each_warning_to_module_warn_not_to_exit_json():
    class Module(object):
        check_mode = False

        def __init__(self, argument_spec, supports_check_mode):
            self.params, self.warned, self.exited = {}, [], None

        def warn(self, message):
            self.warned.append(message)

        def exit_json(self, **kwargs):
            self.exited = kwargs
            raise SystemExit(0)
    made = []

    def module_class(**kw):
        made.append(Module(**kw))
        return made[-1]
    result = {'changed': True, 'warnings': ['a', 'b']}
    with pytest.raises(SystemExit):
        runner.run_module({}, lambda run: result, module_class=module_class)
    assert made[0].warned == ['a', 'b'] and made[0].exited == {'changed': True}
    assert result == {'changed': True, 'warnings': ['a', 'b']}   # the call's own dict is left alone
