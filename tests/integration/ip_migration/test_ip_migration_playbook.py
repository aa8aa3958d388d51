"""playbooks/ip_migrate.yml run by ansible-playbook against the lab world (Talos, Kubernetes and Proxmox twins):
what Molecule does not show - preflight refusals, check mode, and the rollback when a peer dies mid-move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "ip_migrate.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# 0.05 real s per simulated s: lease periods, etcd ticks and boots pass 20 times faster than in reality.
pytestmark = pytest.mark.lab_world(time_scale=0.05)


def run_playbook(world, extra, *args, timeout=240):
    directory = world.directory
    extra = dict({"ip_migration_timeline_dir": os.path.join(directory, "artifacts"), "ip_migration_poll_interval": 1,
                  "ip_migration_stickiness_period": 2, "ip_migration_try_timeout": 1200}, **extra)
    path = os.path.join(directory, "extra-%d.json" % time.monotonic_ns())
    with open(path, "w") as fh:
        json.dump(extra, fh)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("TALOSCONFIG", None)
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", os.path.join(directory, "inventory.yaml"), PLAYBOOK,
                           "-e", "@" + path, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def net(world):
    return world.machine("cp-01").address.rsplit(".", 1)[0]


def configs(world):
    return dict((n, list(yaml.safe_load_all(world.machine(n).current))) for n in ("cp-01", "cp-02", "cp-03"))


def timeline(world):
    with open(os.path.join(world.directory, "artifacts", "ip-migration-timeline.json")) as fh:
        return json.load(fh)


def test_preflight_refusals_change_nothing(lab_world):
    before = configs(lab_world)
    n = net(lab_world)
    # an address in use by another control plane, a broadcast address, and no VIP configured nor planned
    rc, out = run_playbook(lab_world, {"ip_migration_nodes": [
        {"name": "cp-01", "address": n + ".72/8", "kubernetes_address": "192.168.1.253"},
        {"name": "cp-02", "address": "127.255.255.255/8"}]})
    assert rc != 0, out
    assert "preflight refused" in out
    assert "cp-01: %s.72 is in use by cp-02" % n in out
    assert "cp-02: 127.255.255.255 is the broadcast address" in out
    assert "no VIP configured on the control planes and none planned" in out
    assert configs(lab_world) == before
    assert [e["step"] for e in timeline(lab_world)["timeline"]] == ["preflight"]

    # a control plane down: etcd is not whole, the node is not Ready
    lab_world.fault("power-loss", "cp-03")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:      # the node lifecycle controller marks it NotReady (50 s simulated)
        node = lab_world.kube.store.get("nodes", None, "cp-03")
        if any(c["type"] == "Ready" and c["status"] != "True" for c in node["status"]["conditions"]):
            break
        time.sleep(0.2)
    rc, out = run_playbook(lab_world, {"ip_migration_vip": n + ".250", "ip_migration_nodes": [
        {"name": "cp-01", "address": n + ".253/8", "kubernetes_address": "192.168.1.253"}]})
    assert rc != 0, out
    assert "etcd member(s) not healthy: cp-03" in out
    assert "control plane(s) not Ready: cp-03" in out
    assert "cannot read the machine config of cp-03" in out
    assert configs(lab_world) == before


def test_check_mode_prints_the_plan_and_the_nodes_dry_runs_and_changes_nothing(lab_world):
    before = configs(lab_world)
    n = net(lab_world)
    rc, out = run_playbook(lab_world, {"ip_migration_vip": n + ".250", "ip_migration_nodes": [
        {"name": "cp-01", "address": n + ".253/8", "kubernetes_address": "192.168.1.253"}]}, "--check")
    assert rc == 0, out
    assert "steps (in order): cp-02 {0}.72 {0}.72, cp-03 {0}.73 {0}.73, cp-01 {0}.71 {0}.253".format(n) in out
    assert "kubernetes Service endpoints after: 192.168.1.253, 192.168.1.72, 192.168.1.73" in out
    assert out.count("Dry run summary:") == 3
    assert "%s.253/8" % n in out.split("Dry run summary:")[3] and "%s.253/8" % n not in out.split("Dry run summary:")[1]
    assert configs(lab_world) == before
    steps = timeline(lab_world)
    assert steps["check_mode"] is True
    assert [e["step"] for e in steps["timeline"]] == ["preflight", "plan_node", "plan_node", "plan_node"]


def test_a_peer_dying_mid_move_rolls_the_node_back_and_etcd_keeps_quorum(lab_world):
    before = configs(lab_world)
    n = net(lab_world)
    old, new = n + ".71", n + ".253"
    fired = threading.Event()

    def kill_a_peer_once_cp01_moved():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if lab_world.machine("cp-01").address == new:
                lab_world.fault("power-loss", "cp-03")
                fired.set()
                return
            time.sleep(0.02)
    watcher = threading.Thread(target=kill_a_peer_once_cp01_moved, daemon=True)
    watcher.start()
    rc, out = run_playbook(lab_world, {
        "ip_migration_vip": n + ".250", "ip_migration_etcd_timeout": 6, "ip_migration_kubernetes_timeout": 6,
        "ip_migration_nodes": [{"name": "cp-01", "address": new + "/8", "kubernetes_address": "192.168.1.253"}]})
    watcher.join(5)
    assert fired.is_set(), out
    assert rc != 0, out
    assert "moving cp-01 from %s to %s failed" % (old, new) in out
    assert "Rolled back. Control planes now: cp-01 at %s, cp-02 at %s.72, cp-03 at %s.73" % (old, n, n) in out
    # cp-01 is back where it was, with its original network config; the VIP-only steps before it stay
    m = lab_world.machine("cp-01")
    assert m.address == old
    after = configs(lab_world)
    assert after["cp-01"][0]["machine"]["network"] == before["cp-01"][0]["machine"]["network"]
    assert after["cp-01"][0]["machine"]["certSANs"] == before["cp-01"][0]["machine"]["certSANs"]
    assert yaml.safe_load(m.persistent.split(b"---")[0])["machine"]["network"] == before["cp-01"][0]["machine"]["network"]
    assert after["cp-02"][0]["machine"]["network"]["interfaces"][0]["vip"] == {"ip": n + ".250"}
    steps = timeline(lab_world)
    names = [(e["step"], e["node"]) for e in steps["timeline"]]
    assert names[-3:] == [("apply", "cp-01"), ("failed", "cp-01"), ("rollback", "cp-01")]
    assert ("confirm", "cp-01") not in names
    # the wait for etcd to follow failed (cp-03 is down) and said why; its result carried the last readings
    failed = steps["timeline"][-2]["detail"]
    assert "the cluster has not followed cp-01" in failed["msg"] and "not healthy: cp-03" in failed["msg"], failed
    assert sorted(m["name"] for m in failed["etcd"]["members"]) == ["cp-01", "cp-02", "cp-03"], failed
    assert failed["kubernetes_endpoints"] is not None, failed
    # the rollback's own wait (quorum is enough) saw cp-01 back
    assert steps["timeline"][-1]["detail"]["etcd_healthy"]["cp-01"] is True, steps["timeline"][-1]
    assert steps["positions"] == {"cp-01": old, "cp-02": n + ".72", "cp-03": n + ".73"}
    # etcd never lost quorum (the twin's own record), and lists cp-01 at its old address again
    status = lab_world.status()["etcd"]
    assert [e["event"] for e in status["quorum_events"]] == []
    assert sorted(u for mem in status["members"] if mem["hostname"] == "cp-01" for u in mem["peer_urls"]) == \
        ["https://%s:2380" % old]
