"""`tazlab-lab up / status / fault / down` from a shell, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from proxmoxer import ProxmoxAPI

SCENARIO = "tazlab"
CLI = shutil.which("tazlab-lab", path=os.path.dirname(sys.executable)) or shutil.which("tazlab-lab")


def lab(*args, timeout=90):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/{0}/stat".format(pid)) as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def read_env(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip("'")
    return out


@pytest.fixture
def lab_dir(tmp_path):
    directory = tmp_path / "lab"
    yield str(directory)
    # Whatever happened, leave nothing running.
    if (directory / "lab.pid").exists():
        lab("down", "--dir", str(directory))


def test_up_status_fault_down(lab_dir):
    assert CLI, "the tazlab-lab console script is not installed in this venv"
    t0 = time.monotonic()
    up = lab("up", "--scenario", SCENARIO, "--dir", lab_dir, "--time-scale", "0.05", "--isolated")
    up_secs = time.monotonic() - t0
    print("tazlab-lab up of {0}: {1:.2f}s".format(SCENARIO, up_secs))
    assert up.returncode == 0, up.stdout + up.stderr
    assert up_secs < 30, "generous bound; the target is < 10 s"

    state = json.load(open(os.path.join(lab_dir, "state.json")))
    pid = int(open(os.path.join(lab_dir, "lab.pid")).read())
    assert state["pid"] == pid and state["pids"] == [pid] and alive(pid)
    assert state["ready"] and state["control_url"].startswith("http://127.")
    # Everything it wrote is there.
    for name in ("proxmox.env", "inventory.yaml", "ca.crt"):
        assert os.path.exists(os.path.join(lab_dir, name)), name
    # proxmox.env works with a real client, verifying TLS with the lab CA.
    env = read_env(os.path.join(lab_dir, "proxmox.env"))
    assert set(env) >= {"PROXMOX_HOST", "PROXMOX_PORT", "PROXMOX_USER", "PROXMOX_PASSWORD", "PROXMOX_TOKEN_ID",
                        "PROXMOX_TOKEN_SECRET", "PROXMOX_CA_PATH"}
    assert env["PROXMOX_HOST"].startswith("127.")
    api = ProxmoxAPI(env["PROXMOX_HOST"], port=int(env["PROXMOX_PORT"]), user=env["PROXMOX_USER"],
                     token_name=env["PROXMOX_TOKEN_ID"], token_value=env["PROXMOX_TOKEN_SECRET"],
                     verify_ssl=env["PROXMOX_CA_PATH"], timeout=10)
    vms = {v["name"]: v for v in api.cluster.resources.get(type="vm")}
    assert len({v["node"] for v in vms.values()}) >= 2
    pw = ProxmoxAPI(env["PROXMOX_HOST"], port=int(env["PROXMOX_PORT"]), user=env["PROXMOX_USER"],
                    password=env["PROXMOX_PASSWORD"], verify_ssl=env["PROXMOX_CA_PATH"], timeout=10)
    assert sorted(v["name"] for v in pw.cluster.resources.get(type="vm")) == sorted(vms)
    # The inventory carries the connection settings as group vars and every node as a host.
    inv = yaml.safe_load(open(os.path.join(lab_dir, "inventory.yaml")))
    allvars = inv["all"]["vars"]
    assert allvars["proxmox_api_host"] == env["PROXMOX_HOST"]
    assert int(allvars["proxmox_api_port"]) == int(env["PROXMOX_PORT"])
    assert allvars["proxmox_api_token_secret"] == env["PROXMOX_TOKEN_SECRET"]
    assert allvars["proxmox_ca_path"] == env["PROXMOX_CA_PATH"]
    assert allvars["k8s_kubeconfig"] == os.path.join(lab_dir, "kubeconfig")
    hosts = {h for g in inv["all"]["children"].values() for h in g["hosts"]}
    assert hosts == set(vms)
    # ... and in the runbooks' shape (roles/disaster_recovery/README.md), which ansible-inventory reads.
    assert allvars["tazlab_proxmox"]["api_token_secret"] == env["PROXMOX_TOKEN_SECRET"]
    assert allvars["tazlab_kubernetes"]["kubeconfig"] == os.path.join(lab_dir, "kubeconfig")
    assert allvars["tazlab_talos"]["talosconfig"] == os.path.join(lab_dir, "talosconfig")
    inventory_bin = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    listed = subprocess.run([inventory_bin, "-i", os.path.join(lab_dir, "inventory.yaml"), "--host", "localhost"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["tazlab_proxmox"]["api_host"] == env["PROXMOX_HOST"]

    status = lab("status", "--dir", lab_dir, "--json")
    assert status.returncode == 0, status.stderr
    before = json.loads(status.stdout)
    assert before["clock"]["iso"]
    victim = next(m["name"] for m in before["machines"] if m["role"] != "control-plane")
    assert next(m for m in before["machines"] if m["name"] == victim)["state"] == "running"

    # The kubeconfig works with the Kubernetes client (TLS verified with the twin's CA).
    from kubernetes import client, config
    counts_url = state["control_url"] + "/requests"

    def list_node_count():
        data = json.load(urllib.request.urlopen(counts_url, timeout=10))
        assert data["total"] == sum(c["count"] for c in data["counts"])
        return sum(c["count"] for c in data["counts"] if (c["verb"], c["resource"]) == ("list", "nodes"))

    lists_before = list_node_count()
    kube = client.CoreV1Api(config.new_client_from_config(config_file=os.path.join(lab_dir, "kubeconfig")))
    assert sorted(n.metadata.name for n in kube.list_node().items) == sorted(vms)
    # The control endpoint exposes the API twin's request counter to other processes (benchmarks).
    assert list_node_count() == lists_before + 1
    assert next(n for n in before["nodes"] if n["name"] == victim)["ready"] == "True"
    # The talosconfig names the control planes' Talos endpoints, which answer.
    talosconfig = yaml.safe_load(open(os.path.join(lab_dir, "talosconfig")))
    ctx = talosconfig["contexts"][talosconfig["context"]]
    assert sorted(e.split(":")[0] for e in ctx["endpoints"]) == sorted(allvars["talos_endpoints"])
    assert all(e.endswith(":{0}".format(state["ports"]["talos"])) for e in ctx["endpoints"])
    assert all(m["talos"]["reachable"] for m in before["machines"])

    fault = lab("fault", "--dir", lab_dir, "power-loss", victim)
    assert fault.returncode == 0, fault.stderr
    # Proxmox (the power owner) sees it stopped; the world's machine is off.
    assert api.nodes(vms[victim]["node"]).qemu(vms[victim]["vmid"]).status.current.get()["status"] == "stopped"
    after = json.loads(lab("status", "--dir", lab_dir, "--json").stdout)
    machine = next(m for m in after["machines"] if m["name"] == victim)
    assert machine["state"] == "off" and not machine["talos"]["reachable"]
    assert after["clock"]["now"] >= before["clock"]["now"]

    def ready():
        st = json.loads(lab("status", "--dir", lab_dir, "--json").stdout)
        return next(n for n in st["nodes"] if n["name"] == victim)["ready"]

    # At time scale 0.05 the 50 s grace period is 2.5 s of wall time.
    deadline = time.monotonic() + 20
    while ready() == "True" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready() == "Unknown"

    text = lab("status", "--dir", lab_dir)
    assert text.returncode == 0 and victim in text.stdout and "clock" in text.stdout
    assert any(victim in line and "off" in line for line in text.stdout.splitlines())

    bad = lab("fault", "--dir", lab_dir, "no-such-fault", victim)
    assert bad.returncode != 0 and "unknown fault" in bad.stderr

    # Power back on: the node boots and the kubelet posts Ready again.
    assert lab("fault", "--dir", lab_dir, "power-on", victim).returncode == 0
    deadline = time.monotonic() + 20
    while ready() != "True" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready() == "True"

    down = lab("down", "--dir", lab_dir)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not alive(pid)
    assert not os.path.exists(os.path.join(lab_dir, "lab.pid"))
    # Nothing of the lab is left: no process whose command line names this directory.
    leftovers = subprocess.run(["pgrep", "-f", lab_dir], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    # And the ports are free again.
    import socket
    with socket.socket() as sock:
        assert sock.connect_ex((env["PROXMOX_HOST"], int(env["PROXMOX_PORT"]))) != 0
    assert lab("status", "--dir", lab_dir).returncode != 0


def test_up_refuses_a_second_lab_in_the_same_dir_and_down_is_idempotent(lab_dir):
    # A manual clock (--time-scale 0): simulated time moves only with `tazlab-lab advance`.
    assert lab("up", "--scenario", SCENARIO, "--dir", lab_dir, "--isolated", "--time-scale", "0").returncode == 0
    pid = int(open(os.path.join(lab_dir, "lab.pid")).read())
    state = json.load(open(os.path.join(lab_dir, "state.json")))
    assert all(state["ports"][k] for k in ("proxmox", "kubernetes", "talos", "control"))
    t0 = json.loads(lab("status", "--dir", lab_dir, "--json").stdout)["clock"]["now"]
    time.sleep(0.3)
    assert json.loads(lab("status", "--dir", lab_dir, "--json").stdout)["clock"]["now"] == t0
    assert lab("advance", "--dir", lab_dir, "90").returncode == 0
    assert json.loads(lab("status", "--dir", lab_dir, "--json").stdout)["clock"]["now"] == t0 + 90
    assert lab("advance", "--dir", lab_dir, "--", "-5").returncode != 0
    again = lab("up", "--scenario", SCENARIO, "--dir", lab_dir, "--isolated")
    assert again.returncode == 1 and "already running" in again.stderr
    assert lab("down", "--dir", lab_dir).returncode == 0
    assert not alive(pid)
    second = lab("down", "--dir", lab_dir)
    assert second.returncode == 0 and "no lab running" in second.stdout


def test_a_killed_lab_is_reported_and_cleaned_up(lab_dir):
    assert lab("up", "--scenario", SCENARIO, "--dir", lab_dir, "--isolated").returncode == 0
    pid = int(open(os.path.join(lab_dir, "lab.pid")).read())
    os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = lab("status", "--dir", lab_dir)
    assert status.returncode != 0 and "no lab running" in status.stderr
    assert lab("down", "--dir", lab_dir).returncode == 0
    assert not os.path.exists(os.path.join(lab_dir, "lab.pid"))


def test_scale_re_scales_the_running_clock_without_a_jump(lab_dir):
    up = lab("up", "--scenario", SCENARIO, "--dir", lab_dir, "--time-scale", "0.05", "--isolated")
    assert up.returncode == 0, up.stdout + up.stderr

    def sim_now():
        status = json.loads(lab("status", "--dir", lab_dir, "--json").stdout)
        return status["clock"]["now"], status["clock"]["time_scale"]

    scaled = lab("scale", "--dir", lab_dir, "1.0")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert "(time scale 1.0)" in scaled.stdout
    t1, scale = sim_now()
    time.sleep(1.0)
    t2, _ = sim_now()
    assert scale == 1.0
    assert 0.5 < t2 - t1 < 3.0, "about one simulated second per real second at scale 1.0"
    assert lab("scale", "--dir", lab_dir, "0.05").returncode == 0
    t3, scale = sim_now()
    time.sleep(1.0)
    t4, _ = sim_now()
    assert scale == 0.05 and t3 >= t2
    assert 10.0 < t4 - t3 < 40.0, "about twenty simulated seconds per real second at scale 0.05"
    bad = lab("scale", "--dir", lab_dir, "0")
    assert bad.returncode != 0
