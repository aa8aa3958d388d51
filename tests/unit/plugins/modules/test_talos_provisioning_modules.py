"""The talos_secrets and talos_machine_config module entries (argument spec, check mode, idempotence)."""

from __future__ import annotations

import os
import stat

from ansible_collections.tazlab.resilience.plugins.modules import talos_machine_config, talos_secrets
from module_harness import run_main


def test_talos_secrets_generates_once(tmp_path):
    path = str(tmp_path / "secrets.yaml")
    rc, res = run_main(talos_secrets, dict(path=path), check_mode=True)
    assert rc == 0 and res["changed"] and not os.path.exists(path)
    rc, res = run_main(talos_secrets, dict(path=path))
    assert rc == 0 and res["changed"] and res["generated"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "key" not in str(res.get("certs")).lower().replace("key_type", "")
    rc, again = run_main(talos_secrets, dict(path=path))
    assert rc == 0 and not again["changed"] and again["os_ca_fingerprint"] == res["os_ca_fingerprint"]


def test_talos_secrets_bad_version_fails(tmp_path):
    rc, res = run_main(talos_secrets, dict(path=str(tmp_path / "s.yaml"), talos_version="latest"))
    assert rc == 1 and "talos_version" in res["msg"] and not os.listdir(str(tmp_path))


def test_talos_machine_config_module(tmp_path):
    secrets = str(tmp_path / "secrets.yaml")
    run_main(talos_secrets, dict(path=secrets))
    args = dict(secrets=secrets, cluster_name="tazlab", cluster_endpoint="https://10.0.0.10:6443",
                machine_type="worker", dest=str(tmp_path / "w1.yaml"), hostname="w1",
                network=dict(interface="eth0", addresses=["10.0.0.21/24"], gateway="10.0.0.1"),
                talosconfig_dest=str(tmp_path / "talosconfig"), talosconfig_endpoints=["10.0.0.11"])
    rc, res = run_main(talos_machine_config, args, check_mode=True, diff=True)
    assert rc == 0 and res["changed"] and "10.0.0.21/24" in res["diff"]["after"]
    assert not os.path.exists(args["dest"])
    rc, res = run_main(talos_machine_config, args)
    assert rc == 0 and res["changed"] and "diff" not in res
    assert "config" not in res          # the content (keys) is never returned
    rc, res = run_main(talos_machine_config, args, diff=True)
    assert rc == 0 and not res["changed"]


def test_talos_machine_config_requires_its_companions(tmp_path):
    rc, res = run_main(talos_machine_config, dict(secrets=str(tmp_path / "s"), cluster_name="x",
                                                  dest=str(tmp_path / "c.yaml")))
    assert rc == 1 and "machine_type" in res["msg"]
    rc, res = run_main(talos_machine_config, dict(secrets=str(tmp_path / "s"), cluster_name="x"))
    assert rc == 1 and "dest" in res["msg"]
    rc, res = run_main(talos_machine_config, dict(
        secrets=str(tmp_path / "s"), cluster_name="x", talosconfig_dest=str(tmp_path / "t"),
        talosconfig_endpoints=["1.2.3.4"]))
    assert rc == 1 and "cannot read secrets bundle" in res["msg"]
