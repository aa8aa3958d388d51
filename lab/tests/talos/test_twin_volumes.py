"""Disk encryption in the Talos twin: VolumeStatus over the resource API, STAGED + Reset wiping, the
mismatch a reboot without a wipe runs into, the etcd member a wiped control plane loses and gets back."""

from __future__ import annotations

import asyncio

import yaml
from talos_lab_helpers import TEST_TIMINGS, auth_for, talos_lab

from tazlab_lab.talos import Timings
from tazlab_lab.talos import machine as mm

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import block_pb2

VS = "VolumeStatuses.block.talos.dev"
ENC = {"provider": "luks2", "keys": [{"slot": 0, "nodeID": {}}]}


def run(coro):
    return asyncio.run(coro)


async def _status(c, node, rid):
    res = await c.get_resource("runtime", VS, rid, node=node)
    spec = block_pb2.VolumeStatusSpec()
    spec.ParseFromString(res.spec.proto_spec)
    return spec, res.spec.yaml_spec


def _with_volume_configs(current: bytes, names=("STATE", "EPHEMERAL"), enc=None) -> bytes:
    docs = [d for d in yaml.safe_load_all(current.decode()) if d]
    docs += [{"apiVersion": "v1alpha1", "kind": "VolumeConfig", "name": n, "encryption": enc or ENC} for n in names]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs).encode()


async def _until(pred, timeout=30.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await pred():
            return True
        await asyncio.sleep(0.02)
    return await pred()


def test_volume_status_reports_unencrypted_system_volumes_to_a_reader():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with TalosClient(auth_for(twin, role="os:reader")) as c:
                for rid in ("STATE", "EPHEMERAL"):
                    spec, text = await _status(c, addrs[1], rid)
                    assert spec.phase == 6                       # VOLUME_PHASE_READY
                    assert spec.encryption_provider == 0          # ENCRYPTION_PROVIDER_NONE
                    assert list(spec.configured_encryption_keys) == []
                    assert spec.location.startswith("/dev/sda")
                    assert "phase: ready" in text
                listed = await c.list_resources("runtime", VS, node=addrs[1])
                assert sorted(r.metadata.id for r in listed) == ["EPHEMERAL", "STATE"]
    run(main())


def test_staged_encryption_then_reset_wiping_ephemeral_comes_back_encrypted_and_rejoins_etcd():
    async def main():
        async with talos_lab(controlplanes=3, workers=0, timings=Timings(**TEST_TIMINGS)) as (twin, clock, addrs):
            cp = twin.machines["cp2"]
            async with TalosClient(auth_for(twin)) as c:
                data = _with_volume_configs(cp.current, names=("EPHEMERAL",))
                reply = await c.apply_configuration(data, mode="staged", node=addrs[1])
                assert "Staged" in str(reply)
                spec, _ = await _status(c, addrs[1], "EPHEMERAL")
                assert spec.encryption_provider == 0             # staged: nothing changes before the reboot
                member_ids = {m["hostname"]: m["id"] for m in await c.etcd_member_list(node=addrs[0])}
                await c.reset(node=addrs[1], graceful=True, reboot=True, wipe_partitions=["EPHEMERAL"])
                # a graceful reset of a control plane leaves etcd first; its data is gone with EPHEMERAL
                assert await _until(lambda: _members(c, addrs[0], lambda ms: "cp2" not in ms))
                assert await _until(lambda: _running(cp))
                assert await _until(lambda: _members(c, addrs[0], lambda ms: "cp2" in ms and not ms["cp2"]["is_learner"]))
                again = {m["hostname"]: m["id"] for m in await c.etcd_member_list(node=addrs[0])}
                assert again["cp2"] != member_ids["cp2"]         # a new member, not the old one back
                spec, text = await _status(c, addrs[1], "EPHEMERAL")
                assert spec.phase == 6 and spec.encryption_provider == 1   # READY, LUKS2
                assert list(spec.configured_encryption_keys) == ["nodeID"]
                assert spec.mount_location.startswith("/dev/dm-")
                assert list(spec.encryption_failed_syncs) == []
                assert "encryptionProvider: luks2" in text
                state, _ = await _status(c, addrs[1], "STATE")
                assert state.encryption_provider == 0             # not wiped, not asked for: unchanged
    run(main())


async def _members(c, node, pred):
    try:
        return pred({m["hostname"]: m for m in await c.etcd_member_list(node=node)})
    except Exception:  # noqa: BLE001 - no quorum for a moment
        return False


async def _running(m):
    return m.stage == mm.RUNNING and m.ready


def test_reboot_with_staged_encryption_but_no_wipe_fails_the_volume_and_the_boot_hangs():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            w = twin.machines["w1"]
            async with TalosClient(auth_for(twin)) as c:
                await c.apply_configuration(_with_volume_configs(w.current, names=("EPHEMERAL",)), mode="staged",
                                            node=addrs[1])
                await c.reboot(node=addrs[1])
                assert await _until(lambda: _booted(w))
                await asyncio.sleep(0.3)       # 60 simulated seconds: longer than any boot
                assert w.stage == mm.BOOTING and not w.ready
                spec, _ = await _status(c, addrs[1], "EPHEMERAL")
                assert spec.phase == 1                            # VOLUME_PHASE_FAILED
                assert spec.error_message == "block dev type mismatch: xfs != luks"
    run(main())


async def _booted(m):
    return m.os_up and m.stage == mm.BOOTING and bool(m.reboots)


def test_reset_wiping_state_and_ephemeral_goes_to_maintenance_then_formats_encrypted_from_the_applied_config():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            w = twin.machines["w1"]
            full = _with_volume_configs(w.current)
            async with TalosClient(auth_for(twin)) as c:
                await c.reset(node=addrs[1], graceful=True, reboot=True, wipe_partitions=["STATE", "EPHEMERAL"])
            assert await _until(lambda: _in_maintenance(w))
            assert w.current is None and w.volumes["STATE"].fs is None
            # the maintenance service takes the full config (no client certificate); the node formats both
            await w.apply(full, mm.AUTO, False, None)
            assert await _until(lambda: _running(w))
            for name in ("STATE", "EPHEMERAL"):
                v = w.volumes[name]
                assert (v.fs, v.phase, [k["kind"] for k in v.keys]) == ("luks", "ready", ["nodeID"])
    run(main())


async def _in_maintenance(m):
    return m.maintenance and m.os_up


def test_a_nodeid_volume_does_not_open_after_the_smbios_uuid_changed():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            w = twin.machines["w1"]
            w.system_uuid = "4c4c4544-0081-4d10-8051-b4c04f4e3831"
            async with TalosClient(auth_for(twin)) as c:
                await c.apply_configuration(_with_volume_configs(w.current, names=("EPHEMERAL",)), mode="staged",
                                            node=addrs[1])
                await c.reset(node=addrs[1], graceful=True, reboot=True, wipe_partitions=["EPHEMERAL"])
                assert await _until(lambda: _running(w))
                assert w.volumes["EPHEMERAL"].fs == "luks"
                w.system_uuid = "4c4c4544-0081-4d10-8051-000000000000"   # smbios1 changed on the VM
                await c.reboot(node=addrs[1])
                assert await _until(lambda: _booted(w))
                await asyncio.sleep(0.3)
                spec, _ = await _status(c, addrs[1], "EPHEMERAL")
                assert spec.phase == 1 and "no key slot could be unlocked" in spec.error_message
                assert w.stage == mm.BOOTING
    run(main())
