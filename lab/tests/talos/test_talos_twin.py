"""The Talos twin against real clients on loopback: the collection's grpclib client and grpcio."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
import yaml

from talos_lab_helpers import SLOW_TIMINGS, TEST_TIMINGS, auth_for, talos_lab

from tazlab_lab.talos import Timings
from tazlab_lab.talos import machine as mm

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient, per_node
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosNodeError, TalosPermissionDenied, TalosTLSError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import TalosAuth


def run(coro):
    return asyncio.run(coro)


def client(auth, **kw):
    kw.setdefault("retry_delay", 0.02)
    kw.setdefault("timeout", 10)
    kw.setdefault("connect_timeout", 2)
    return TalosClient(auth, **kw)


async def patched(c, node, *patches):
    current = await c.machine_config(node=node)
    return current, tp.dump_documents(tp.apply_patches(current, list(patches))).encode()


def test_apply_patch_read_back_reboot_and_wait_ready():
    async def main():
        async with talos_lab(timings=Timings(**SLOW_TIMINGS)) as (twin, clock, addrs):
            worker = addrs[3]
            async with client(auth_for(twin)) as c:
                # 1. a patch that applies without reboot (AUTO resolves to NO_REBOOT)
                before, new = await patched(c, worker, {"machine": {"sysctls": {"vm.max_map_count": "262144"}}})
                res = await c.apply_configuration(new, mode="auto", node=worker)
                assert res["mode"] == "no_reboot"
                assert res["mode_details"] == "Applied configuration without a reboot"
                assert await c.machine_config(node=worker) == new            # through cp1 (node pass-through)
                assert await c.machine_config(endpoint=worker) == new        # and at the node itself
                assert await c.machine_config(node=worker, rid="persistent") == new
                assert (await c.machine_status(node=worker))["stage"] == "running"

                # 2. a change that needs a reboot: AUTO reboots, the config is live after the boot
                _, new2 = await patched(c, worker, {"machine": {"env": {"HTTP_PROXY": "http://proxy:3128"}}})
                res = await c.apply_configuration(new2, mode="auto", node=worker)
                assert res["mode"] == "reboot"
                assert res["mode_details"] == "Applied configuration with a reboot"
                st = await c.machine_status(node=worker)
                assert st["stage"] == "rebooting" and st["ready"] is False
                # the node goes away during the reboot
                went_down = False
                for _ in range(200):
                    if not twin.machines["w1"].reachable:
                        went_down = True
                        break
                    await asyncio.sleep(0.01)
                assert went_down
                async with client(auth_for(twin), retries=0) as once:
                    with pytest.raises(TalosApiError) as err:
                        await once.machine_status(node=worker)
                assert err.value.status == "UNAVAILABLE" and worker in str(err.value)
                st = await c.wait_ready(node=worker, timeout=20, poll=0.02)
                assert st == {"stage": "running", "ready": True, "unmet_conditions": []}
                assert await c.machine_config(node=worker) == new2

                # 3. explicit Reboot (answers at once), then RUNNING and ready again
                await c.reboot(node=worker)
                assert (await c.machine_status(node=worker))["stage"] == "rebooting"
                await c.wait_ready(node=worker, timeout=20, poll=0.02)
                assert twin.machines["w1"].stage == mm.RUNNING
    run(main())


def _grpcio_version(grpc, twin, address):
    """Version through grpcio (BoringSSL), with the same credentials a talosconfig holds."""
    from google.protobuf import empty_pb2

    from tazlab_lab.talos.pb import machine_pb2

    client_ck = twin.client("os:admin")
    creds = grpc.ssl_channel_credentials(root_certificates=twin.pki.ca_pem, private_key=client_ck.key_pem_openssl,
                                         certificate_chain=client_ck.cert_pem)
    with grpc.secure_channel(f"{address}:{twin.port}", creds) as ch:
        call = ch.unary_unary("/machine.MachineService/Version",
                              request_serializer=empty_pb2.Empty.SerializeToString,
                              response_deserializer=machine_pb2.VersionResponse.FromString)
        return call(empty_pb2.Empty(), timeout=5)


def test_grpcio_cannot_handshake_with_ed25519_but_grpclib_can():
    import grpc   # test-only dev dependency (requirements-dev.txt): the real BoringSSL client

    async def main():
        async with talos_lab(controlplanes=1, workers=0) as (twin, clock, addrs):
            loop = asyncio.get_running_loop()
            with pytest.raises(grpc.RpcError) as err:
                await loop.run_in_executor(None, _grpcio_version, grpc, twin, addrs[0])
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "handshake" in err.value.details().lower()
            # the same credentials through grpclib + OpenSSL work
            async with client(auth_for(twin)) as c:
                reply = await c.version(endpoint=addrs[0])
                assert reply.messages[0].version.tag == "v1.13.9"

        # control: the very same twin and grpcio call with ECDSA keys succeed, so Ed25519 is the cause
        from tazlab_lab.talos.pki import TalosPKI
        async with talos_lab(controlplanes=1, workers=0, pki=TalosPKI(key_type="ecdsa")) as (twin, clock, addrs):
            reply = await asyncio.get_running_loop().run_in_executor(None, _grpcio_version, grpc, twin, addrs[0])
            assert reply.messages[0].version.tag == "v1.13.9"
    run(main())


def test_nodes_mode_carries_per_node_errors():
    async def main():
        async with talos_lab() as (twin, clock, addrs):
            twin.machines["w1"].power_off()
            await twin.settle()
            async with client(auth_for(twin)) as c:
                with pytest.raises(TalosNodeError) as err:
                    await c.version(nodes=addrs)
                assert err.value.node == addrs[3]
                assert addrs[3] in str(err.value) and "connection refused" in str(err.value)
                assert err.value.status == "UNAVAILABLE"
                # the RPC itself succeeded: every node has a message, the failed one only metadata
                from google.protobuf import empty_pb2
                from tazlab_lab.talos.pb import machine_pb2
                raw = await c.unary("/machine.MachineService/Version", empty_pb2.Empty(),
                                    machine_pb2.VersionResponse, nodes=addrs, check=False)
                assert [m.metadata.hostname for m in raw.messages] == addrs
                results = per_node(raw)
                assert isinstance(results[addrs[3]], TalosNodeError)
                assert all(results[a].version.tag == "v1.13.9" for a in addrs[:3])
                assert raw.messages[3].metadata.status.code == 14
    run(main())


def test_roles_from_client_certificate_organization():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with client(auth_for(twin, "os:reader"), retries=0) as reader:
                assert (await reader.machine_status(node=addrs[1]))["ready"] is True
                assert await reader.hostname(node=addrs[1]) == "w1"
                with pytest.raises(TalosPermissionDenied) as err:
                    await reader.apply_configuration(b"version: v1alpha1\n", node=addrs[1])
                assert err.value.node == addrs[1] and "ApplyConfiguration" in str(err.value)
                with pytest.raises(TalosPermissionDenied):
                    await reader.machine_config(node=addrs[1])          # MachineConfig needs admin
                with pytest.raises(TalosPermissionDenied):
                    await reader.reboot(node=addrs[1])
            async with client(auth_for(twin, "os:operator"), retries=0) as operator:
                with pytest.raises(TalosPermissionDenied):
                    await operator.bootstrap(node=addrs[0])
                await operator.reboot(node=addrs[1])
                assert twin.machines["w1"].stage == mm.REBOOTING
    run(main())


def test_dry_run_shows_diff_and_changes_nothing():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                before, new = await patched(c, addrs[1], {"machine": {"nodeLabels": {"zone": "rack-7"}}})
                res = await c.apply_configuration(new, mode="auto", dry_run=True, node=addrs[1])
                details = res["mode_details"]
                assert details.startswith("Dry run summary:")
                assert "Config diff:" in details and "+    zone: rack-7" in details
                assert await c.machine_config(node=addrs[1]) == before
                res = await c.apply_configuration(before, mode="auto", dry_run=True, node=addrs[1])
                assert "No changes." in res["mode_details"]
    run(main())


def test_immediate_modes_reject_changes_that_need_a_reboot_and_configs_without_v1alpha1():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                before, new = await patched(c, addrs[1], {"machine": {"env": {"http_proxy": "http://proxy:3128"}}})
                for mode in ("no_reboot", "try"):
                    with pytest.raises(TalosApiError) as err:
                        await c.apply_configuration(new, mode=mode, node=addrs[1])
                    assert err.value.status == "INVALID_ARGUMENT"
                    assert "this config change can't be applied in immediate mode" in str(err.value)
                assert await c.machine_config(node=addrs[1]) == before
                typed_only = b"apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers:\n  - address: 9.9.9.9\n"
                with pytest.raises(TalosApiError) as err:
                    await c.apply_configuration(typed_only, mode="auto", node=addrs[1])
                assert err.value.status == "INVALID_ARGUMENT" and "v1alpha1" in str(err.value)
                # STAGED: persistent moves ahead, the current config stays until the next reboot
                res = await c.apply_configuration(new, mode="staged", node=addrs[1])
                assert res["mode_details"] == "Staged configuration to be applied after the next reboot"
                assert await c.machine_config(node=addrs[1]) == before
                assert await c.machine_config(node=addrs[1], rid="persistent") == new
    run(main())


def test_concurrent_apply_is_failed_precondition():
    async def main():
        async with talos_lab(controlplanes=1, workers=1, timings=Timings(**dict(TEST_TIMINGS, apply=400))) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                _, new = await patched(c, addrs[1], {"machine": {"nodeLabels": {"a": "b"}}})
                first = asyncio.create_task(c.apply_configuration(new, mode="no_reboot", node=addrs[1]))
                for _ in range(300):
                    if twin.machines["w1"].apply_busy:
                        break
                    await asyncio.sleep(0.005)
                assert twin.machines["w1"].apply_busy
                with pytest.raises(TalosApiError) as err:
                    await c.apply_configuration(new, mode="no_reboot", node=addrs[1])
                assert err.value.status == "FAILED_PRECONDITION"
                assert (await first)["mode"] == "no_reboot"
                assert await c.machine_config(node=addrs[1]) == new
    run(main())


def test_disconnect_while_node_powers_off_mid_call():
    async def main():
        async with talos_lab(controlplanes=1, workers=1, timings=Timings(**dict(TEST_TIMINGS, apply=4000))) as (twin, clock, addrs):
            async with client(auth_for(twin, endpoints=[addrs[1]])) as c:
                _, new = await patched(c, None, {"machine": {"nodeLabels": {"a": "b"}}})
                call = asyncio.create_task(c.apply_configuration(new, mode="no_reboot"))
                for _ in range(300):
                    if twin.machines["w1"].apply_busy:
                        break
                    await asyncio.sleep(0.005)
                twin.machines["w1"].power_off()
                with pytest.raises(TalosDisconnected) as err:
                    await call
                assert addrs[1] in str(err.value)
                with pytest.raises(TalosUnreachable):
                    await c.version()
    run(main())


def test_wrong_ca_and_unreachable_endpoint_are_clear_errors():
    async def main():
        async with talos_lab(controlplanes=1, workers=0) as (twin, clock, addrs):
            good = auth_for(twin)
            from tazlab_lab.talos.pki import TalosPKI
            other = TalosPKI()
            bad = TalosAuth([addrs[0]], other.ca_pem, good.crt_pem, good.key_pem)
            async with client(bad) as c:
                with pytest.raises(TalosTLSError) as err:
                    await c.version()
                assert addrs[0] in str(err.value) and "CA" in str(err.value)
            a, b, _, _ = addrs[0].split(".")
            nowhere = TalosAuth([f"127.{b}.{a}.99"], good.ca_pem, good.crt_pem, good.key_pem)
            async with client(nowhere, retries=1) as c:
                with pytest.raises(TalosUnreachable) as err:
                    await c.version()
                assert f"127.{b}.{a}.99:{twin.port}" in str(err.value)
            # failover: a dead first endpoint, a live second one
            failover = TalosAuth([f"127.{b}.{a}.99", addrs[0]], good.ca_pem, good.crt_pem, good.key_pem)
            async with client(failover, retries=0) as c:
                assert (await c.version()).messages[0].version.tag == "v1.13.9"
    run(main())


def test_etcd_members_bootstrap_remove_and_status():
    async def main():
        async with talos_lab() as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                members = await c.etcd_member_list()
                assert sorted(m["hostname"] for m in members) == ["cp1", "cp2", "cp3"]
                assert all(m["peer_urls"] == [f"https://{twin.machines[m['hostname']].address}:2380"] for m in members)
                with pytest.raises(TalosApiError) as err:
                    await c.bootstrap(node=addrs[0])
                assert err.value.status == "ALREADY_EXISTS" and "etcd data directory is not empty" in str(err.value)
                with pytest.raises(TalosApiError) as err:
                    await c.etcd_remove_member(12345, node=addrs[0])
                assert err.value.status == "NOT_FOUND"
                status = await c.etcd_status(node=addrs[1])
                assert status["leader"] in {m["id"] for m in members} and not status["errors"]
                # lose two of three: no quorum, member list refused, status reports it
                twin.machines["cp2"].power_off()
                twin.machines["cp3"].power_off()
                with pytest.raises(TalosApiError) as err:
                    await c.etcd_member_list(node=addrs[0])
                assert err.value.status == "UNAVAILABLE"
                local = await c.etcd_member_list(node=addrs[0], query_local=True)
                assert len(local) == 3
                assert (await c.etcd_status(node=addrs[0]))["leader"] == 0
                twin.machines["cp2"].power_on()
                await c.wait_ready(node=addrs[1], timeout=20, poll=0.02)
                assert len(await c.etcd_member_list(node=addrs[0])) == 3
                cp3_id = next(m["id"] for m in members if m["hostname"] == "cp3")
                await c.etcd_remove_member(cp3_id, node=addrs[0])
                assert sorted(m["hostname"] for m in await c.etcd_member_list()) == ["cp1", "cp2"]
                await c.etcd_leave_cluster(node=addrs[1])
                assert [m["hostname"] for m in await c.etcd_member_list(node=addrs[0])] == ["cp1"]
    run(main())


def test_snapshot_then_recover_restores_byte_for_byte(tmp_path):
    async def main():
        async with talos_lab(workers=0) as (twin, clock, addrs):
            db = os.urandom(150_000)
            twin.etcd.write(db)
            async with client(auth_for(twin)) as c:
                path = tmp_path / "etcd.snapshot"
                with open(path, "wb") as f:
                    size, sha = await c.etcd_snapshot(f.write, node=addrs[1])
                snap = path.read_bytes()
                assert size == len(snap) == len(db) + 32 and sha == hashlib.sha256(snap).hexdigest()
                # disaster: every control plane loses EPHEMERAL
                for a in addrs:
                    await c.reset(node=a, graceful=False, reboot=True, wipe_partitions=["EPHEMERAL"])
                for a in addrs:
                    await c.wait_ready(endpoint=a, timeout=30, poll=0.02)
                services = {s["id"]: s for s in await c.service_list(node=addrs[0])}
                assert services["etcd"]["state"] == "Preparing"
                with pytest.raises(TalosApiError) as err:      # nothing uploaded yet
                    await c.bootstrap(node=addrs[0], recover_etcd=True)
                assert err.value.status == "FAILED_PRECONDITION"
                corrupted = snap[:-1] + bytes([snap[-1] ^ 1])
                await c.etcd_recover(corrupted, node=addrs[0])
                with pytest.raises(TalosApiError) as err:
                    await c.bootstrap(node=addrs[0], recover_etcd=True)
                assert "integrity" in str(err.value)
                await c.etcd_recover(snap, node=addrs[0])
                await c.bootstrap(node=addrs[0], recover_etcd=True)
                assert twin.etcd.db == db
                with open(tmp_path / "again", "wb") as f:
                    await c.etcd_snapshot(f.write, node=addrs[0])
                assert (tmp_path / "again").read_bytes() == snap
                # the other control planes join again
                for _ in range(400):
                    members = await c.etcd_member_list(node=addrs[0])
                    if len(members) == 3 and not any(m["is_learner"] for m in members):
                        break
                    await asyncio.sleep(0.01)
                assert sorted(m["hostname"] for m in members) == ["cp1", "cp2", "cp3"]
                assert not any(m["is_learner"] for m in members)
    run(main())


def _readdress(config: bytes, old: str, new: str, extra: dict | None = None) -> bytes:
    docs = tp.load_documents(config)
    v1 = docs[0]
    for iface in v1["machine"]["network"]["interfaces"]:
        iface["addresses"] = [a.replace(old + "/", new + "/") for a in iface["addresses"]]
    if extra:
        docs = tp.strategic_merge(docs, [extra])
    return tp.dump_documents(docs).encode()


def test_address_change_moves_the_endpoint():
    async def main():
        async with talos_lab(timings=Timings(**SLOW_TIMINGS)) as (twin, clock, addrs):
            a, b, _, _ = addrs[0].split(".")
            new_w, new_cp = f"127.{a}.{b}.121", f"127.{a}.{b}.112"
            async with client(auth_for(twin)) as c:
                # immediate (network changes apply without reboot)
                cfg = await c.machine_config(endpoint=addrs[3])
                res = await c.apply_configuration(_readdress(cfg, addrs[3], new_w), mode="auto", endpoint=addrs[3])
                assert res["mode"] == "no_reboot"
                await twin.settle()
                await asyncio.sleep(0.05)
                await twin.settle()
                with pytest.raises(TalosUnreachable):
                    await c.version(endpoint=addrs[3])
                assert await c.hostname(endpoint=new_w) == "w1"      # server cert now covers the new address
                assert await c.hostname(node=new_w) == "w1"          # and routing follows
                # a control plane, together with a change that needs a reboot: moves after the reboot
                cfg = await c.machine_config(endpoint=addrs[1])
                new_cfg = _readdress(cfg, addrs[1], new_cp, {"machine": {"env": {"X": "1"}}})
                res = await c.apply_configuration(new_cfg, mode="auto", endpoint=addrs[1])
                assert res["mode"] == "reboot"
                assert (await c.machine_status(endpoint=addrs[1]))["stage"] == "rebooting"
                st = await c.wait_ready(endpoint=new_cp, timeout=30, poll=0.02)
                assert st["stage"] == "running"
                with pytest.raises(TalosUnreachable):
                    await c.version(endpoint=addrs[1])
                for _ in range(300):
                    members = {m["hostname"]: m for m in await c.etcd_member_list(node=addrs[0])}
                    if members["cp2"]["peer_urls"] == [f"https://{new_cp}:2380"]:
                        break
                    await asyncio.sleep(0.01)
                assert members["cp2"]["peer_urls"] == [f"https://{new_cp}:2380"]
    run(main())


def test_state_rejects_one_to_many_and_unknown_resources():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                from tazlab_lab.talos.pb import resource_pb2
                with pytest.raises(TalosApiError) as err:
                    await c.unary("/cosi.resource.State/Get", resource_pb2.GetRequest(
                        namespace="runtime", type="MachineStatuses.runtime.talos.dev", id="machine"),
                        resource_pb2.GetResponse, nodes=addrs)
                assert err.value.status == "INVALID_ARGUMENT"
                with pytest.raises(TalosApiError) as err:
                    await c.get_resource("config", "MachineConfigs.config.talos.dev", "nope", node=addrs[1])
                assert err.value.status == "NOT_FOUND"
                listed = await c.list_resources("config", "MachineConfigs.config.talos.dev", node=addrs[1])
                assert sorted(r.metadata.id for r in listed) == ["persistent", "v1alpha1"]
                doc = yaml.safe_load(listed[0].spec.yaml_spec.split("---")[0])
                assert doc["version"] == "v1alpha1"
    run(main())


def test_try_mode_rolls_back_after_its_timeout():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                before, new = await patched(c, addrs[1], {"machine": {"nodeLabels": {"try": "me"}}})
                t0 = clock.now()
                res = await c.apply_configuration(new, mode="try", try_timeout=60, node=addrs[1])
                assert res["mode"] == "try" and res["mode_details"].startswith("Applied configuration without a reboot")
                assert await c.machine_config(node=addrs[1]) == new
                assert await c.machine_config(node=addrs[1], rid="persistent") == before   # never written to disk
                for _ in range(400):
                    if await c.machine_config(node=addrs[1]) == before:
                        break
                    await asyncio.sleep(0.01)
                assert await c.machine_config(node=addrs[1]) == before
                assert clock.now() - t0 >= 60
    run(main())


def test_shutdown_answers_at_once_then_the_node_goes_away_until_powered_on():
    async def main():
        async with talos_lab(controlplanes=1, workers=1, timings=Timings(**SLOW_TIMINGS)) as (twin, clock, addrs):
            w1 = twin.machines["w1"]
            async with client(auth_for(twin, endpoints=[addrs[1]]), retries=0) as c:
                await c.shutdown()
                assert (await c.machine_status())["stage"] == "shutting_down"
                for _ in range(400):
                    if not w1.powered:
                        break
                    await asyncio.sleep(0.01)
                assert not w1.powered
                await twin.settle()
                with pytest.raises(TalosUnreachable):
                    await c.version()
                w1.power_on()                      # the world's hook (Proxmox starts the VM)
                st = await c.wait_ready(timeout=30, poll=0.02)
                assert st["stage"] == "running" and st["ready"]
    run(main())


def test_state_wipe_leads_to_maintenance_mode_and_an_insecure_apply_brings_the_node_back():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            w1 = twin.machines["w1"]
            async with client(auth_for(twin)) as c:
                config = await c.machine_config(node=addrs[1])
                await c.reset(node=addrs[1], graceful=False, reboot=True, wipe_partitions=["STATE", "EPHEMERAL"])
                for _ in range(400):
                    if w1.stage == mm.MAINTENANCE and w1.reachable:
                        break
                    await asyncio.sleep(0.01)
                assert w1.stage == mm.MAINTENANCE
                await twin.settle()
                # mTLS with the OS CA fails: the maintenance service has a self-signed certificate
                async with client(auth_for(twin, endpoints=[addrs[1]]), retries=0) as direct:
                    with pytest.raises(TalosTLSError):
                        await direct.version()
                # through another node's apid it is unavailable (no apid there)
                with pytest.raises(TalosApiError) as err:
                    await c.version(node=addrs[1], retries=0)
                assert err.value.status == "UNAVAILABLE" and "maintenance" in str(err.value)
            async with client(TalosAuth([addrs[1]], insecure=True), retries=0) as insecure:
                assert (await insecure.version()).messages[0].version.tag == "v1.13.9"
                assert (await insecure.machine_status())["stage"] == "maintenance"
                with pytest.raises(TalosApiError) as err:
                    await insecure.reboot()
                assert err.value.status == "UNIMPLEMENTED"
                res = await insecure.apply_configuration(config, mode="reboot")
                assert res["mode"] == "no_reboot"         # 1.13+: REBOOT becomes NO_REBOOT in maintenance
            async with client(auth_for(twin)) as c:
                st = await c.wait_ready(node=addrs[1], timeout=30, poll=0.02)
                assert st["stage"] == "running"
                assert await c.machine_config(node=addrs[1]) == config
    run(main())


def test_graceful_reset_leaves_etcd_and_the_node_rejoins_after_its_boot():
    async def main():
        async with talos_lab(workers=0) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                before = {m["hostname"]: m["id"] for m in await c.etcd_member_list()}
                await c.reset(node=addrs[2], graceful=True, reboot=True, wipe_partitions=["EPHEMERAL"])
                # graceful: cp3 left the cluster before wiping, the others keep quorum
                assert sorted(m["hostname"] for m in await c.etcd_member_list(node=addrs[0])) == ["cp1", "cp2"]
                await c.wait_ready(endpoint=addrs[2], timeout=30, poll=0.02)
                for _ in range(400):
                    members = {m["hostname"]: m for m in await c.etcd_member_list(node=addrs[0])}
                    if "cp3" in members and not members["cp3"]["is_learner"]:
                        break
                    await asyncio.sleep(0.01)
                assert not members["cp3"]["is_learner"]
                assert members["cp3"]["id"] != before["cp3"]          # a new member, not the old one
                assert members["cp1"]["id"] == before["cp1"]
                status = await c.etcd_status(node=addrs[2])
                assert status["member_id"] == members["cp3"]["id"] and not status["errors"]
    run(main())


def test_an_apply_during_try_mode_confirms_it():
    async def main():
        async with talos_lab(controlplanes=1, workers=1) as (twin, clock, addrs):
            async with client(auth_for(twin)) as c:
                before, new = await patched(c, addrs[1], {"machine": {"nodeLabels": {"try": "me"}}})
                t0 = clock.now()
                await c.apply_configuration(new, mode="try", try_timeout=30, node=addrs[1])
                res = await c.apply_configuration(new, mode="no_reboot", node=addrs[1])   # confirm
                assert res["mode"] == "no_reboot"
                while clock.now() - t0 < 45:
                    await asyncio.sleep(0.02)
                assert await c.machine_config(node=addrs[1]) == new
                assert await c.machine_config(node=addrs[1], rid="persistent") == new
    run(main())
