"""The kube-apiserver on a Talos control plane advertises $(POD_IP): a re-created static pod (new
certificate SANs, or a boot) advertises the node's current address; etcd's quorum history is in status()."""

from __future__ import annotations

import asyncio

import yaml


def _kubernetes_endpoints(world):
    ep = world.kube.store.get("endpoints", "default", "kubernetes")
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


def _apply(world, machine, docs):
    from tazlab_lab.talos.machine import NO_REBOOT

    async def apply():
        return await machine.apply("---\n".join(yaml.safe_dump(d) for d in docs).encode(), NO_REBOOT, False, None)
    applying = asyncio.run_coroutine_threadsafe(apply(), world.loop)
    world.advance(2)
    return applying.result(10)


def test_new_apiserver_certsans_recreate_the_apiserver_which_then_advertises_the_new_address(lab_world):
    machine = lab_world.machine("cp-01")
    new = lab_world.addresses["192.168.1.253"]
    docs = list(yaml.safe_load_all(machine.current.decode().replace(machine.address + "/", new + "/")))
    docs[0]["cluster"]["apiServer"] = {"certSANs": [new]}
    _apply(lab_world, machine, docs)
    assert any(e["event"] == "apiserver-restart" for e in lab_world.nodes["cp-01"].history)
    lab_world.advance(30)    # two lease periods: the old lease expired, the new one is written
    assert _kubernetes_endpoints(lab_world) == ["192.168.1.253", "192.168.1.72", "192.168.1.73"]
    node = lab_world.kube.store.get("nodes", None, "cp-01")   # the kubelet reports its new --node-ip
    assert [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"] == ["192.168.1.253"]
    # applying the same SANs again re-creates nothing
    count = sum(1 for e in lab_world.nodes["cp-01"].history if e["event"] == "apiserver-restart")
    _apply(lab_world, machine, list(yaml.safe_load_all(machine.current.decode())))
    assert sum(1 for e in lab_world.nodes["cp-01"].history if e["event"] == "apiserver-restart") == count
    status = lab_world.status()["etcd"]
    assert status["quorum"] is True and status["quorum_events"] == []
    assert sorted(p for m in status["members"] for p in m["peer_urls"])[0] == "https://{0}:2380".format(new)


def test_a_booting_control_plane_advertises_its_current_address(lab_world):
    lab_world.fault("stale-advertise", "cp-02", address="192.168.1.99")
    lab_world.advance(30)
    assert "192.168.1.99" in _kubernetes_endpoints(lab_world)
    lab_world.call(_run(lab_world.machine("cp-02").reboot))
    assert lab_world.run_until(lambda: lab_world.nodes["cp-02"].kubelet, 120)
    lab_world.advance(30)
    assert _kubernetes_endpoints(lab_world) == ["192.168.1.71", "192.168.1.72", "192.168.1.73"]


def test_status_records_every_etcd_quorum_loss(lab_world):
    lab_world.fault("etcd-quorum-loss")
    events = lab_world.status()["etcd"]["quorum_events"]
    assert [e["event"] for e in events] == ["etcd-quorum-lost"]


async def _call(fn):
    return fn()


def _run(fn):
    return _call(fn)
