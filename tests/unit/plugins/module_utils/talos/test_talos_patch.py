"""Talos strategic merge / JSON6902 patching and the reboot rule."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosPatchError

CONFIG = """\
version: v1alpha1
machine:
  type: controlplane
  certSANs: [10.0.0.10]
  network:
    hostname: cp1
    interfaces:
      - interface: eth0
        addresses: [10.0.0.11/24]
        vlans:
          - vlanId: 10
            addresses: [10.10.0.11/24]
      - deviceSelector: {hardwareAddr: "aa:bb:*"}
        dhcp: true
  kubelet:
    extraArgs: {a: b}
cluster:
  network:
    podSubnets: [10.244.0.0/16]
    serviceSubnets: [10.96.0.0/12]
---
apiVersion: v1alpha1
kind: LinkConfig
name: eth1
addresses:
  - address: 192.168.1.5/24
---
apiVersion: v1alpha1
kind: ResolverConfig
nameservers:
  - address: 1.1.1.1
"""


def docs():
    return tp.load_documents(CONFIG)


def test_lists_append_but_interfaces_and_vlans_merge_on_their_keys():
    out = tp.apply_patches(CONFIG, [{"machine": {
        "certSANs": ["10.0.0.99"],
        "network": {"interfaces": [
            {"interface": "eth0", "mtu": 9000, "vlans": [{"vlanId": 10, "mtu": 1400}, {"vlanId": 20}]},
            {"deviceSelector": {"hardwareAddr": "aa:bb:*"}, "dhcp": False},
            {"interface": "eth2", "dhcp": True}]}}}])
    m = out[0]["machine"]
    assert m["certSANs"] == ["10.0.0.10", "10.0.0.99"]
    ifaces = m["network"]["interfaces"]
    assert [i.get("interface") for i in ifaces] == ["eth0", None, "eth2"]
    assert ifaces[0]["mtu"] == 9000 and ifaces[0]["addresses"] == ["10.0.0.11/24"]
    assert ifaces[0]["vlans"] == [{"vlanId": 10, "addresses": ["10.10.0.11/24"], "mtu": 1400}, {"vlanId": 20}]
    assert ifaces[1]["dhcp"] is False
    assert out[1:] == docs()[1:]


def test_subnets_are_replaced_and_delete_directives():
    out = tp.apply_patches(CONFIG, [{
        "cluster": {"network": {"podSubnets": ["10.200.0.0/16"]}},
        "machine": {"kubelet": {"$patch": "delete"},
                    "network": {"interfaces": [{"interface": "eth0", "$patch": "delete"}]}}}])
    assert out[0]["cluster"]["network"]["podSubnets"] == ["10.200.0.0/16"]
    assert out[0]["cluster"]["network"]["serviceSubnets"] == ["10.96.0.0/12"]
    assert "kubelet" not in out[0]["machine"]
    assert [i.get("interface") for i in out[0]["machine"]["network"]["interfaces"]] == [None]


def test_typed_documents_match_on_kind_api_version_name():
    out = tp.apply_patches(CONFIG, ["""\
apiVersion: v1alpha1
kind: LinkConfig
name: eth1
mtu: 1500
---
apiVersion: v1alpha1
kind: LinkConfig
name: eth3
addresses: [{address: 192.168.3.5/24}]
---
apiVersion: v1alpha1
kind: ResolverConfig
$patch: delete
"""])
    kinds = [(d.get("kind"), d.get("name")) for d in out]
    assert kinds == [(None, None), ("LinkConfig", "eth1"), ("LinkConfig", "eth3")]
    assert out[1]["mtu"] == 1500 and out[1]["addresses"] == [{"address": "192.168.1.5/24"}]
    # a delete selector for a document that is not there is skipped, as Talos skips it (strategic.go)
    assert tp.apply_patches(CONFIG, [{"apiVersion": "v1alpha1", "kind": "Nope", "$patch": "delete"}]) == docs()


def test_json6902_only_on_single_v1alpha1_document():
    single = tp.dump_documents(docs()[:1])
    out = tp.apply_patches(single, [[
        {"op": "replace", "path": "/machine/network/interfaces/0/addresses/0", "value": "10.0.0.12/24"},
        {"op": "add", "path": "/machine/certSANs/-", "value": "10.0.0.12"},
        {"op": "remove", "path": "/machine/kubelet"},
        {"op": "test", "path": "/machine/type", "value": "controlplane"}]])
    assert out[0]["machine"]["network"]["interfaces"][0]["addresses"] == ["10.0.0.12/24"]
    assert out[0]["machine"]["certSANs"] == ["10.0.0.10", "10.0.0.12"]
    assert "kubelet" not in out[0]["machine"]
    with pytest.raises(TalosPatchError, match="single-document"):
        tp.apply_patches(CONFIG, [[{"op": "remove", "path": "/machine/kubelet"}]])
    with pytest.raises(TalosPatchError, match="non-existent"):
        tp.apply_patches(single, [[{"op": "replace", "path": "/machine/nope", "value": 1}]])
    # YAML text holding a list of ops is JSON6902 too
    out = tp.apply_patches(single, ["- op: replace\n  path: /machine/type\n  value: worker\n"])
    assert out[0]["machine"]["type"] == "worker"


def test_reboot_rule():
    old = docs()
    no_reboot = [
        {"machine": {"network": {"hostname": "x"}}}, {"machine": {"certSANs": ["1.1.1.1"]}},
        {"machine": {"kubelet": {"extraArgs": {"c": "d"}}}}, {"machine": {"sysctls": {"a": "1"}}},
        {"machine": {"nodeLabels": {"a": "b"}}}, {"machine": {"kernel": {"modules": [{"name": "drbd"}]}}},
        {"cluster": {"network": {"podSubnets": ["10.1.0.0/16"]}}}, {"debug": True},
        {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth9"},
    ]
    for p in no_reboot:
        assert not tp.needs_reboot(old, tp.apply_patches(old, [p])), p
    for p in ({"machine": {"env": {"A": "1"}}}, {"machine": {"features": {"kubePrism": {"enabled": True}}}},
              {"machine": {"features": {"rbac": False}}}, {"machine": {"type": "worker"}}):
        assert tp.needs_reboot(old, tp.apply_patches(old, [p])), p


def test_patch_errors_and_diff():
    with pytest.raises(TalosPatchError, match="kind and apiVersion must be both set"):
        tp.apply_patches(CONFIG, [{"apiVersion": "v1alpha1", "name": "eth1"}])
    with pytest.raises(TalosPatchError, match="can't delete the root of the legacy document"):
        tp.apply_patches(CONFIG, [{"version": "v1alpha1", "$patch": "delete"}])
    new = tp.apply_patches(CONFIG, [{"machine": {"nodeLabels": {"zone": "a"}}}])
    diff = tp.diff_documents(docs(), new)
    assert "+  nodeLabels:" in diff and "+    zone: a" in diff
    assert tp.diff_documents(docs(), docs()) == ""


def test_diff_masks_secrets_but_shows_that_they_changed():
    old = tp.apply_patches(CONFIG, [{"machine": {"token": "abc.def", "ca": {"crt": "CRT", "key": "PRIVATE"}}}])
    new = tp.apply_patches(old, [{"machine": {"token": "new.tok", "nodeLabels": {"a": "b"}}}])
    diff = tp.diff_documents(old, new)
    assert "abc.def" not in diff and "new.tok" not in diff and "PRIVATE" not in diff
    assert "-  token: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in diff and "+  token: VALUE_SPECIFIED" in diff
    assert "+    a: b" in diff


def test_reapplying_a_patch_to_the_patched_config_is_a_no_op():
    patches = [{"machine": {"certSANs": ["10.0.0.99"], "network": {"interfaces": [
        {"interface": "eth0", "addresses": ["10.0.0.12/24"], "vlans": [{"vlanId": 20, "addresses": ["10.20.0.1/24"]}]}]}}},
        "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth1\naddresses: [{address: 192.168.1.6/24}]\n"]
    once = tp.apply_patches(CONFIG, patches)
    assert once[0]["machine"]["certSANs"] == ["10.0.0.10", "10.0.0.99"]
    assert once[0]["machine"]["network"]["interfaces"][0]["addresses"] == ["10.0.0.11/24", "10.0.0.12/24"]
    assert once[1]["addresses"] == [{"address": "192.168.1.5/24"}, {"address": "192.168.1.6/24"}]
    assert tp.apply_patches(once, patches) == once
