"""Hardening in the lab world: Secrets at rest follow the serving apiserver's encryption config
(secretbox from the control planes' Talos config), an unchanged PUT re-encrypts a stale Secret, the
etcd view answers as etcdctl get; a Reset wiping EPHEMERAL on a worker fails its Longhorn replicas,
which are rebuilt once it is back."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.parse
import urllib.request

import nacl.secret
import yaml

SECRETBOX = base64.b64encode(bytes(range(32))).decode()
PREFIX = b"k8s:enc:secretbox:v1:key2:"


def _core(world):
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(config_file=world.paths()["kubeconfig"]))


def _secret(name):
    from kubernetes import client
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name, namespace="apps"),
                           data={"password": base64.b64encode(b"hunter2").decode()})


def _etcdctl_get(world, key, prefix=False):
    q = urllib.parse.urlencode({"key": key, "prefix": "1" if prefix else "0"})
    data = json.load(urllib.request.urlopen(world.control_url + "/etcd?" + q, timeout=10))
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]) for kv in data["kvs"]}


def _apply_no_reboot(world, machine, docs):
    from tazlab_lab.talos.machine import NO_REBOOT

    async def apply():
        return await machine.apply("---\n".join(yaml.safe_dump(d) for d in docs).encode(), NO_REBOOT, False, None)
    applying = asyncio.run_coroutine_threadsafe(apply(), world.loop)
    world.advance(2)
    return applying.result(10)


def test_secretbox_on_every_control_plane_encrypts_new_and_rewritten_secrets(lab_world):
    core = _core(lab_world)
    core.create_namespaced_secret("apps", _secret("before"))
    stored = _etcdctl_get(lab_world, "/registry/secrets/apps/before")["/registry/secrets/apps/before"]
    assert stored.startswith(b"k8s\x00")            # identity: the plain envelope, the value readable in it
    assert base64.b64decode(json.loads(stored[stored.index(b"{"):])["data"]["password"]) == b"hunter2"
    for name in ("cp-01", "cp-02", "cp-03"):
        machine = lab_world.machine(name)
        docs = [d for d in yaml.safe_load_all(machine.current.decode()) if d]
        docs[0]["cluster"]["secretboxEncryptionSecret"] = SECRETBOX
        _apply_no_reboot(lab_world, machine, docs)
        assert any(e["event"] == "apiserver-restart" for e in lab_world.nodes[name].history)
    core.create_namespaced_secret("apps", _secret("after"))
    view = _etcdctl_get(lab_world, "/registry/secrets/apps/", prefix=True)
    assert view["/registry/secrets/apps/after"].startswith(PREFIX)
    assert view["/registry/secrets/apps/before"].startswith(b"k8s\x00")      # stored before: still plaintext
    # the decrypted value is the identity bytes (magic + the object)
    body = view["/registry/secrets/apps/after"][len(PREFIX):]
    plain = nacl.secret.SecretBox(base64.b64decode(SECRETBOX)).decrypt(body)
    assert plain.startswith(b"k8s\x00") and b'"name":"after"' in plain
    # kubectl get secret -o json | kubectl replace -f -: unchanged, but stale, so it is written again
    before = core.read_namespaced_secret("before", "apps")
    replaced = core.replace_namespaced_secret("before", "apps", before)
    assert replaced.metadata.resource_version != before.metadata.resource_version
    assert _etcdctl_get(lab_world, "/registry/secrets/apps/before")["/registry/secrets/apps/before"].startswith(PREFIX)
    # a second unchanged PUT is a no-op again (nothing stale left)
    again = core.replace_namespaced_secret("before", "apps", replaced)
    assert again.metadata.resource_version == replaced.metadata.resource_version
    core.delete_namespaced_secret("after", "apps")
    assert "/registry/secrets/apps/after" not in _etcdctl_get(lab_world, "/registry/secrets/apps/", prefix=True)


def test_reset_wiping_ephemeral_on_a_worker_fails_its_longhorn_replicas_until_they_are_rebuilt(lab_world):
    store = lab_world.kube.store
    reps = [r for r in store.list("replicas.longhorn.io") if r["spec"]["nodeID"] == "worker-new-01"]
    if not reps:   # the scenario's volume has no replica there: take a node that has one
        node = store.list("replicas.longhorn.io")[0]["spec"]["nodeID"]
    else:
        node = "worker-new-01"
    mine = [r["metadata"]["name"] for r in store.list("replicas.longhorn.io") if r["spec"]["nodeID"] == node]
    assert mine
    vol = store.get("replicas.longhorn.io", "longhorn-system", mine[0])["spec"]["volumeName"]
    assert store.get("volumes.longhorn.io", "longhorn-system", vol)["status"]["robustness"] == "healthy"
    machine = lab_world.machine(node)
    lab_world.call(_reset(machine, ["EPHEMERAL"]))
    lab_world.advance(25)       # the reset's shutdown phase: the partition is wiped
    for rname in mine:
        r = store.get("replicas.longhorn.io", "longhorn-system", rname)
        assert r["spec"]["failedAt"] and r["spec"]["healthyAt"] == ""
    assert any(e["event"] == "longhorn-disk-wiped" for e in lab_world.nodes[node].history)
    lab_world.advance(5)
    assert store.get("volumes.longhorn.io", "longhorn-system", vol)["status"]["robustness"] in ("degraded", "unknown")
    assert lab_world.run_until(lambda: lab_world.nodes[node].kubelet, 120)
    assert lab_world.run_until(
        lambda: store.get("volumes.longhorn.io", "longhorn-system", vol)["status"]["robustness"] == "healthy", 400)
    healthy = [r for r in store.list("replicas.longhorn.io") if r["spec"]["volumeName"] == vol
               and not r["spec"]["failedAt"] and r["spec"]["healthyAt"]]
    assert len(healthy) >= 3


async def _reset(machine, labels):
    machine.reset(True, True, labels, False)


def test_every_node_knows_its_smbios_uuid_for_nodeid_keys(lab_world):
    for node in lab_world.cluster_nodes():
        assert lab_world.machine(node["name"]).system_uuid == node["system_uuid"]
    assert os.path.exists(lab_world.paths()["kubeconfig"])
