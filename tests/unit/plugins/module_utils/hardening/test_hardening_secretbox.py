"""Secretbox: the secret kept once in the bundle, the refusal to change it (siderolabs/talos#8702), verification."""

from __future__ import annotations

import base64
import os

import pytest
import yaml

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import secretbox as sb

A = base64.b64encode(b'a' * 32).decode()
B = base64.b64encode(b'b' * 32).decode()


def _cp(secret=None):
    v1 = {'version': 'v1alpha1', 'machine': {'type': 'controlplane'}, 'cluster': {'clusterName': 'tazlab'}}
    if secret:
        v1['cluster']['secretboxEncryptionSecret'] = secret
    return [v1]


def test_plan_sets_it_where_missing_and_keeps_it_where_set():
    want, steps = sb.plan({'cp-01': _cp(A), 'cp-02': _cp(), 'cp-03': _cp()}, A)
    assert want == A
    assert steps == [dict(node='cp-01', action='keep'), dict(node='cp-02', action='set'),
                     dict(node='cp-03', action='set')]


def test_a_different_secret_already_set_is_refused_and_the_reason_names_the_issue():
    with pytest.raises(sb.SecretboxRefused) as err:
        sb.plan({'cp-01': _cp(A), 'cp-02': _cp()}, B)
    assert 'siderolabs/talos#8702' in str(err.value) and 'unreadable' in str(err.value) and 'cp-01' in str(err.value)


def test_control_planes_that_disagree_are_refused():
    with pytest.raises(sb.SecretboxRefused, match='2 different secretbox secrets'):
        sb.plan({'cp-01': _cp(A), 'cp-02': _cp(B)}, None)


def test_without_a_secret_the_one_set_is_adopted():
    want, steps = sb.plan({'cp-01': _cp(A), 'cp-02': _cp(A)}, None)
    assert want == A and all(s['action'] == 'keep' for s in steps)
    with pytest.raises(sb.SecretboxRefused, match='no secretbox secret'):
        sb.plan({'cp-01': _cp()}, None)


def test_a_malformed_secret_is_refused():
    with pytest.raises(sb.SecretboxRefused, match='32 random bytes'):
        sb.plan({'cp-01': _cp()}, 'c2hvcnQ=')


def test_the_patch_adds_it_to_the_cluster_section():
    docs = sb.with_secret(_cp(), A)
    assert docs[0]['cluster'] == {'clusterName': 'tazlab', 'secretboxEncryptionSecret': A}


def test_the_bundle_secret_is_generated_once_and_kept(tmp_path):
    path = str(tmp_path / 'secrets.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump({'secrets': {'bootstraptoken': 'abcdef.0123456789abcdef', 'aescbcencryptionsecret': A}}, f)
    os.chmod(path, 0o600)
    value, generated = sb.ensure_bundle_secret(path, check_mode=True)
    assert generated and sb.valid_secret(value)
    assert 'secretboxencryptionsecret' not in yaml.safe_load(open(path))['secrets']   # check mode wrote nothing
    value, generated = sb.ensure_bundle_secret(path)
    assert generated and yaml.safe_load(open(path))['secrets']['secretboxencryptionsecret'] == value
    assert os.stat(path).st_mode & 0o777 == 0o600
    again, generated = sb.ensure_bundle_secret(path)
    assert again == value and not generated


def test_metrics_count_only_successful_secretbox_writes():
    text = '\n'.join([
        '# TYPE apiserver_storage_transformation_operations_total counter',
        'apiserver_storage_transformation_operations_total{status="OK",transformation_type="to_storage",'
        'transformer_prefix="k8s:enc:secretbox:v1:"} 12',
        'apiserver_storage_transformation_operations_total{status="OK",transformation_type="from_storage",'
        'transformer_prefix="k8s:enc:secretbox:v1:"} 40',
        'apiserver_storage_transformation_operations_total{status="OK",transformation_type="to_storage",'
        'transformer_prefix="identity"} 7',
        'apiserver_storage_transformation_operations_total{status="Unknown",transformation_type="to_storage",'
        'transformer_prefix="k8s:enc:secretbox:v1:"} 2',
    ])
    assert sb.secretbox_writes(text) == 12


def test_stored_summary_by_prefix():
    out = sb.stored_summary({'/registry/secrets/a/x': b'k8s:enc:secretbox:v1:key2:\x00\x01',
                             '/registry/secrets/a/y': b'k8s\x00\x0a\x02',
                             '/registry/secrets/a/z': b'k8s:enc:aescbc:v1:key1:...'})
    assert (out['secretbox'], out['identity'], out['aescbc']) == (1, 1, 1)
    assert out['not_secretbox'] == ['/registry/secrets/a/y', '/registry/secrets/a/z']


# -- the wait for the apiserver with the secret (hardening runner) ---------------------------------------------

class _Talos(object):
    """machine_config from a script: a config without / with the secret, or an exception to raise."""

    def __init__(self, script):
        self.script = list(script)

    async def machine_config(self, node):
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        cluster = {sb.FIELD: item} if item else {}
        return yaml.safe_dump({'version': 'v1alpha1', 'machine': {'type': 'controlplane'},
                               'cluster': cluster}).encode()


def test_wait_apiserver_rides_out_a_restart_and_times_out_with_the_last_reading():
    import asyncio
    from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import runner
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosUnreachable
    cp = {'name': 'cp-01', 'address': '10.0.0.10'}
    talos = _Talos([TalosUnreachable('restarting'), None, A])
    asyncio.run(runner._wait_apiserver(None, talos, cp, A, None, 5, 0.01))
    assert talos.script == [A]
    with pytest.raises(runner.HardeningFailed) as info:
        asyncio.run(runner._wait_apiserver(None, _Talos([None]), cp, A, None, 0.1, 0.02))
    assert str(info.value) == ('cp-01: the apiserver is not healthy with the secretbox secret after 0.1s '
                               '(last: config applied False, apiserver healthy True)')
    with pytest.raises(runner.HardeningFailed, match=r'after 0.1s \(last: gone\)$'):
        asyncio.run(runner._wait_apiserver(None, _Talos([None, TalosUnreachable('gone')]), cp, A, None, 0.1, 0.02))
