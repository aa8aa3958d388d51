"""What the disk-encryption step applies: keys, documents per Talos version, refusals, the status check."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import disk
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import block_pb2, resource_pb2

BASE = [{'version': 'v1alpha1', 'machine': {'type': 'worker'}, 'cluster': {}},
        {'apiVersion': 'v1alpha1', 'kind': 'ResolverConfig', 'nameservers': [{'address': '1.1.1.1'}]}]


@pytest.mark.parametrize('key,entry', [
    ({'type': 'nodeID'}, {'slot': 0, 'nodeID': {}}),
    ({'type': 'static', 'passphrase': 's3cret', 'slot': 1}, {'slot': 1, 'static': {'passphrase': 's3cret'}}),
    ({'type': 'kms', 'endpoint': 'https://kms.example:4050'}, {'slot': 0, 'kms': {'endpoint': 'https://kms.example:4050'}}),
    ({'type': 'tpm', 'pcrs': [7]}, {'slot': 0, 'tpm': {'options': {'pcrs': [7]}}}),
    ({'type': 'tpm'}, {'slot': 0, 'tpm': {}}),
])
def test_key_entries(key, entry):
    assert disk.key_entry(disk.validate_key(key), 'STATE') == entry


def test_lock_to_state_goes_on_ephemeral_only():
    key = disk.validate_key({'type': 'nodeID', 'lock_to_state': True})
    assert disk.key_entry(key, 'EPHEMERAL')['lockToState'] is True
    assert 'lockToState' not in disk.key_entry(key, 'STATE')


@pytest.mark.parametrize('bad,msg', [
    ({'type': 'password'}, 'key.type must be one of'),
    ({'type': 'static'}, 'needs key.passphrase'),
    ({'type': 'kms'}, 'needs key.endpoint'),
    ({'type': 'nodeID', 'slot': 40}, 'key.slot'),
])
def test_bad_keys_are_refused_before_anything(bad, msg):
    with pytest.raises(ValueError, match=msg):
        disk.validate_key(bad)


def test_volume_config_documents_from_1_11_and_system_disk_encryption_before():
    key = disk.validate_key({'type': 'nodeID'})
    new = disk.encryption_patch('v1.11.0', key)
    assert [(d['kind'], d['name'], d['encryption']['provider']) for d in new] == [
        ('VolumeConfig', 'STATE', 'luks2'), ('VolumeConfig', 'EPHEMERAL', 'luks2')]
    old = disk.encryption_patch('v1.10.9', key)
    assert set(old[0]['machine']['systemDiskEncryption']) == {'state', 'ephemeral'}


def test_desired_config_appends_the_volume_configs_and_is_idempotent():
    key = disk.validate_key({'type': 'nodeID'})
    docs, missing, refused = disk.desired_config(BASE, 'v1.13.9', key)
    assert refused == [] and missing == ['STATE', 'EPHEMERAL']
    assert [d.get('kind') for d in docs] == [None, 'ResolverConfig', 'VolumeConfig', 'VolumeConfig']
    again, missing2, refused2 = disk.desired_config(docs, 'v1.13.9', key)
    assert again == docs and missing2 == [] and refused2 == []
    assert disk.configured_encryption(docs, 'v1.13.9')['EPHEMERAL']['keys'] == [{'slot': 0, 'nodeID': {}}]


def test_another_key_type_on_an_encrypted_volume_is_a_rotation_and_refused():
    docs, dummy, dummy2 = disk.desired_config(BASE, 'v1.13.9', disk.validate_key({'type': 'nodeID'}))
    out, missing, refused = disk.desired_config(docs, 'v1.13.9', disk.validate_key({'type': 'tpm'}))
    assert out == docs and len(refused) == 2 and 'key rotation' in refused[0]


def test_warnings_say_what_a_key_type_costs():
    nodeid = disk.warnings_for(disk.validate_key({'type': 'nodeID'}), ['STATE', 'EPHEMERAL'])
    assert any('VM.Audit' in w and 'smbios1' in w for w in nodeid)
    static = disk.warnings_for(disk.validate_key({'type': 'static', 'passphrase': 'x'}), ['STATE'])
    assert any('META' in w for w in static)
    assert disk.warnings_for(disk.validate_key({'type': 'static', 'passphrase': 'x'}), ['EPHEMERAL']) == []


def _resource(**spec):
    return resource_pb2.Resource(spec=resource_pb2.Spec(proto_spec=block_pb2.VolumeStatusSpec(**spec).SerializeToString()))


def test_volume_status_decoding_and_the_encrypted_rule():
    ok = disk.decode_volume_status(_resource(phase=6, encryption_provider=1, configured_encryption_keys=['nodeID'],
                                             mount_location='/dev/dm-0', location='/dev/sda6'))
    assert ok['phase'] == 'ready' and ok['provider'] == 'luks2' and disk.encrypted(ok)
    plain = disk.decode_volume_status(_resource(phase=6))
    assert not disk.encrypted(plain)
    failed_sync = disk.decode_volume_status(_resource(phase=6, encryption_provider=1, encryption_failed_syncs=['tpm']))
    assert not disk.encrypted(failed_sync)
    mismatch = disk.decode_volume_status(_resource(phase=1, error_message='block dev type mismatch: xfs != luks'))
    assert mismatch['phase'] == 'failed' and not disk.encrypted(mismatch)
    assert not disk.encrypted(None)


def test_an_empty_volume_list_is_refused_it_would_wipe_the_whole_disk():
    with pytest.raises(ValueError, match='wipes the whole system disk'):
        disk.NodeRoll(None, None, {'node': '10.0.0.1', 'volumes': []})
    with pytest.raises(ValueError, match='volumes must be among'):
        disk.NodeRoll(None, None, {'node': '10.0.0.1', 'volumes': ['META']})


def test_params_copy_masks_the_passphrase():
    out = disk.params_copy({'node': 'x', 'encryption_key': {'type': 'static', 'passphrase': 'hunter2'}})
    assert 'hunter2' not in repr(out)


def test_an_smbios1_uuid_change_is_refused_on_a_nodeid_encrypted_node():
    enc = {'EPHEMERAL': {'provider': 'luks2', 'keys': ['nodeID']}, 'STATE': {'provider': 'luks2', 'keys': ['nodeID']}}
    why = disk.smbios_change_refusal(enc, 'uuid=4C4C4544-0081-4D10-8051-B4C04F4E3831',
                                     'uuid=4c4c4544-0081-4d10-8051-000000000000,manufacturer=QEMU')
    assert why and 'EPHEMERAL, STATE are encrypted with a nodeID key' in why
    assert disk.smbios_change_refusal(enc, 'uuid=4C4C4544-0081-4D10-8051-B4C04F4E3831',
                                      'uuid=4c4c4544-0081-4d10-8051-b4c04f4e3831') is None   # same uuid, other case
    static = {'EPHEMERAL': {'provider': 'luks2', 'keys': ['static']}}
    assert disk.smbios_change_refusal(static, 'uuid=a', 'uuid=b') is None
    plain = {'EPHEMERAL': {'provider': 'none', 'keys': []}}
    assert disk.smbios_change_refusal(plain, 'uuid=a', 'uuid=b') is None


# -- NodeRoll._wait: the probe every round, the Longhorn invariant after each, the timeout with the last reading --

def _roll(timeout):
    roll = disk.NodeRoll(None, None, {'node': '10.0.0.21', 'node_name': 'w1', 'poll_interval': 0.01,
                                      'wait_timeout': timeout, 'encryption_key': {'type': 'nodeID'}})
    roll.invariant_rounds = 0

    def invariant():
        roll.invariant_rounds += 1
    roll._check_invariant = invariant
    return roll


def test_node_roll_wait_rides_out_a_node_down_and_checks_the_invariant_every_round():
    import asyncio
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosUnreachable
    roll = _roll(5)
    script = [TalosUnreachable('rebooting'), (False, 'stage booting'), (True, 'ready')]

    async def probe():
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item
    asyncio.run(roll._wait('RUNNING and ready', probe))
    assert script == [] and roll.invariant_rounds == 3


def test_node_roll_wait_times_out_with_the_last_reading():
    import asyncio
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosUnreachable
    roll = _roll(0.1)
    readings = iter([(False, 'stage booting')] + [TalosUnreachable('no route to host')] * 1000)

    async def probe():
        item = next(readings)
        if isinstance(item, Exception):
            raise item
        return item
    with pytest.raises(disk.HardeningFailed) as info:
        asyncio.run(roll._wait('volumes encrypted', probe))
    assert str(info.value) == 'w1: volumes encrypted not reached after 0.1s (last: no route to host)'
    assert info.value.where == 'volumes encrypted' and roll.invariant_rounds >= 3
