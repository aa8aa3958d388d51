"""Machine configs and the admin talosconfig rendered from a secrets bundle."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import socket
import ssl
import stat
import threading

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import machineconfig as mc
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import secrets as ts
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import auth_from_talosconfig

EP = "https://192.168.1.70:6443"
NET = {"interface": "eth0", "addresses": ["192.168.1.71/24"], "gateway": "192.168.1.1", "vip": "192.168.1.70",
       "nameservers": ["192.168.1.1"]}


@pytest.fixture(scope="module")
def bundle():
    return ts.generate_bundle("v1.13.9")


@pytest.fixture(scope="module")
def secrets_file(bundle, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("s") / "secrets.yaml")
    ts.write_private(path, yaml.safe_dump(bundle))
    return path


def v1(docs):
    return next(d for d in docs if "kind" not in d)


def test_control_plane_config_carries_the_cluster_pki_and_the_node(bundle):
    docs = mc.render(bundle, "controlplane", "tazlab", EP, network=NET, hostname="cp1", install_disk="/dev/vda")
    c = v1(docs)
    assert c["version"] == "v1alpha1" and c["persist"] is True and c["debug"] is False
    m, cl = c["machine"], c["cluster"]
    assert m["type"] == "controlplane" and m["token"] == bundle["trustdinfo"]["token"]
    assert m["ca"] == {"crt": bundle["certs"]["os"]["crt"], "key": bundle["certs"]["os"]["key"]}
    assert m["install"] == {"disk": "/dev/vda", "image": "ghcr.io/siderolabs/installer:v1.13.9", "wipe": False}
    assert m["kubelet"]["image"] == "ghcr.io/siderolabs/kubelet:v1.36.3"
    assert m["network"]["interfaces"] == [{"interface": "eth0", "addresses": ["192.168.1.71/24"],
                                           "routes": [{"network": "0.0.0.0/0", "gateway": "192.168.1.1"}],
                                           "vip": {"ip": "192.168.1.70"}}]
    assert m["network"]["nameservers"] == ["192.168.1.1"]
    assert m["features"]["kubePrism"] == {"enabled": True, "port": 7445}
    assert "rbac" not in m["features"]                      # contract >= 1.12
    assert m["nodeLabels"] == {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    assert cl["controlPlane"]["endpoint"] == EP and cl["clusterName"] == "tazlab"
    assert cl["ca"]["key"] == bundle["certs"]["k8s"]["key"]
    assert cl["etcd"]["ca"]["key"] == bundle["certs"]["etcd"]["key"]
    assert cl["serviceAccount"]["key"] == bundle["certs"]["k8sserviceaccount"]["key"]
    assert cl["aggregatorCA"]["crt"] == bundle["certs"]["k8saggregator"]["crt"]
    assert cl["secretboxEncryptionSecret"] == bundle["secrets"]["secretboxencryptionsecret"]
    assert cl["token"] == bundle["secrets"]["bootstraptoken"]
    assert cl["network"]["podSubnets"] == ["10.244.0.0/16"] and cl["network"]["serviceSubnets"] == ["10.96.0.0/12"]
    assert cl["discovery"]["registries"]["kubernetes"]["disabled"] is True
    assert cl["apiServer"]["admissionControl"][0]["name"] == "PodSecurity"
    assert {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "cp1"} in docs


def test_worker_config_has_no_keys_etcd_or_encryption_secret(bundle):
    docs = mc.render(bundle, "worker", "tazlab", EP, network={"interface": "eth0", "dhcp": True})
    c = v1(docs)
    assert c["machine"]["type"] == "worker"
    assert c["machine"]["ca"] == {"crt": bundle["certs"]["os"]["crt"], "key": ""}
    cl = c["cluster"]
    assert cl["ca"] == {"crt": bundle["certs"]["k8s"]["crt"], "key": ""}
    for absent in ("etcd", "serviceAccount", "secretboxEncryptionSecret", "aggregatorCA", "apiServer"):
        assert absent not in cl
    assert cl["token"] == bundle["secrets"]["bootstraptoken"] and cl["controlPlane"]["endpoint"] == EP
    text = mc.dump(docs)
    for secret in (bundle["certs"]["os"]["key"], bundle["certs"]["k8s"]["key"], bundle["certs"]["etcd"]["key"],
                   bundle["certs"]["k8sserviceaccount"]["key"], bundle["secrets"]["secretboxencryptionsecret"]):
        assert secret not in text
    assert {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"} in docs


def test_the_keys_in_the_config_chain_to_the_cas_in_it(bundle):
    c = v1(mc.render(bundle, "controlplane", "tazlab", EP))
    for block in (c["machine"]["ca"], c["cluster"]["ca"], c["cluster"]["etcd"]["ca"], c["cluster"]["aggregatorCA"]):
        crt = x509.load_pem_x509_certificate(base64.b64decode(block["crt"]))
        key = ts.load_key(base64.b64decode(block["key"]))
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        assert crt.public_key().public_bytes(serialization.Encoding.DER, spki) == \
            key.public_key().public_bytes(serialization.Encoding.DER, spki)


def test_patches_use_the_collection_patch_code(bundle):
    docs = mc.render(bundle, "worker", "tazlab", EP, network={"interface": "eth0", "addresses": ["10.0.0.21/24"]},
                     patches=[{"machine": {"time": {"servers": ["ntp.lan"]},
                                           "network": {"interfaces": [{"interface": "eth0", "mtu": 9000}]}}},
                              "machine:\n  sysctls:\n    vm.nr_hugepages: '128'\n",
                              {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "$patch": "delete"}])
    m = v1(docs)["machine"]
    assert m["time"]["servers"] == ["ntp.lan"] and m["sysctls"] == {"vm.nr_hugepages": "128"}
    assert m["network"]["interfaces"] == [{"interface": "eth0", "addresses": ["10.0.0.21/24"], "mtu": 9000}]
    assert not any(d.get("kind") == "HostnameConfig" for d in docs)


def test_old_contracts_render_the_old_fields(bundle):
    c = v1(mc.render(bundle, "controlplane", "tazlab", EP, talos_version="v1.11.6", hostname="cp1"))
    assert c["machine"]["features"]["rbac"] is True and c["machine"]["features"]["apidCheckExtKeyUsage"] is True
    assert c["machine"]["features"]["stableHostname"] is True
    assert c["cluster"]["apiServer"]["certSANs"] == ["192.168.1.70"]
    assert c["machine"]["network"]["hostname"] == "cp1"
    assert c["machine"]["install"]["image"] == "ghcr.io/siderolabs/installer:v1.11.6"


def test_rendering_is_deterministic(bundle):
    a = mc.dump(mc.render(bundle, "controlplane", "tazlab", EP, network=NET, hostname="cp1"))
    b = mc.dump(mc.render(bundle, "controlplane", "tazlab", EP, network=NET, hostname="cp1"))
    assert a == b


@pytest.mark.parametrize("kwargs,match", [
    (dict(machine_type="worker", network={"vip": "10.0.0.10"}), "VIP"),
    (dict(cluster_endpoint="192.168.1.70:6443"), "https://"),
    (dict(cluster_endpoint="https://192.168.1.70"), "https://"),
    (dict(machine_type="init2"), "machine_type"),
    (dict(network={"addresses": ["10.0.0.5"]}), "prefix"),
    (dict(kubernetes_version="latest"), "kubernetes_version"),
    (dict(cluster_name="bad name"), "cluster_name"),
    # an empty string in a patch is skipped as talosctl patch skips zero values: delete the key instead
    (dict(patches=[{"machine": {"ca": {"key": {"$patch": "delete"}}}}]), "machine.ca.key"),
    (dict(machine_type="worker", patches=[{"machine": {"ca": {"key": "abc"}}}]), "must not carry"),
    (dict(patches=[{"persist": False}]), "persist"),
])
def test_bad_input_is_refused(bundle, kwargs, match):
    args = dict(machine_type="controlplane", cluster_name="tazlab", cluster_endpoint=EP)
    args.update(kwargs)
    with pytest.raises(TalosConfigError, match=match):
        mc.render(bundle, **args)


# -- talosconfig ----------------------------------------------------------------------------------
def test_admin_client_cert_is_ed25519_os_admin_signed_by_the_os_ca(bundle):
    doc, renewed = mc.talosconfig(bundle, "tazlab", ["192.168.1.71", "192.168.1.72"])
    assert renewed and doc["context"] == "tazlab"
    ctx = doc["contexts"]["tazlab"]
    assert ctx["endpoints"] == ["192.168.1.71", "192.168.1.72"] and "nodes" not in ctx
    assert ctx["ca"] == bundle["certs"]["os"]["crt"]
    crt = x509.load_pem_x509_certificate(base64.b64decode(ctx["crt"]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(ctx["ca"]))
    crt.verify_directly_issued_by(ca)
    assert crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "os:admin"
    assert list(crt.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert isinstance(crt.public_key(), ed25519.Ed25519PublicKey)
    assert 364 <= (crt.not_valid_after_utc - crt.not_valid_before_utc).days <= 365
    assert base64.b64decode(ctx["key"]).startswith(b"-----BEGIN ED25519 PRIVATE KEY-----")


def _server_ctx(bundle, tmp_path):
    """An apid-like server: cert from the OS CA for 127.0.0.1, client certs from the OS CA required."""
    ca_cert = x509.load_pem_x509_certificate(ts.pem_of(bundle, "os"))
    ca_key = ts.load_key(ts.pem_of(bundle, "os", "key"))
    key = ed25519.Ed25519PrivateKey.generate()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(ca_key, None))
    crt_path, key_path = str(tmp_path / "srv.crt"), str(tmp_path / "srv.key")
    open(crt_path, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    open(key_path, "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt_path, key_path)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ts.pem_of(bundle, "os").decode())
    ctx.set_alpn_protocols(["h2"])
    return ctx


def test_the_talosconfig_does_mutual_tls_with_a_server_of_the_os_ca(bundle, tmp_path):
    """The collection's own TalosAuth loads the talosconfig and completes an Ed25519 mTLS handshake."""
    doc, dummy = mc.talosconfig(bundle, "tazlab", ["127.0.0.1"])
    auth = auth_from_talosconfig(yaml.safe_load(yaml.safe_dump(doc)))
    client_ctx = auth.ssl_context()
    server_ctx = _server_ctx(bundle, tmp_path)
    seen = {}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, dummy_addr = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
        except ssl.SSLError as exc:
            seen["error"] = exc
    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection(listener.getsockname(), timeout=5) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    t.join(5)
    listener.close()
    assert "error" not in seen
    orgs = [x for x in seen["peer"]["subject"] if x[0][0] == "organizationName"]
    assert orgs == [(("organizationName", "os:admin"),)]


def test_admin_cert_is_kept_then_renewed_a_month_before_expiry(bundle):
    first, renewed = mc.talosconfig(bundle, "tazlab", ["10.0.0.11"])
    again, renewed2 = mc.talosconfig(bundle, "tazlab", ["10.0.0.11", "10.0.0.12"], existing=first)
    assert renewed and not renewed2
    assert again["contexts"]["tazlab"]["crt"] == first["contexts"]["tazlab"]["crt"]
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=340)
    renewed_doc, renewed3 = mc.talosconfig(bundle, "tazlab", ["10.0.0.11"], existing=first, now=later)
    assert renewed3 and renewed_doc["contexts"]["tazlab"]["crt"] != first["contexts"]["tazlab"]["crt"]
    other, renewed4 = mc.talosconfig(ts.generate_bundle("v1.13"), "tazlab", ["10.0.0.11"], existing=first)
    assert renewed4 and other["contexts"]["tazlab"]["ca"] != first["contexts"]["tazlab"]["ca"]


def test_talosconfig_needs_endpoints(bundle):
    with pytest.raises(TalosConfigError, match="endpoints"):
        mc.talosconfig(bundle, "tazlab", [])


# -- run (the module's work) ----------------------------------------------------------------------
def test_run_writes_0600_files_once_and_masks_the_diff(bundle, secrets_file, tmp_path):
    params = dict(secrets=secrets_file, cluster_name="tazlab", cluster_endpoint=EP, machine_type="controlplane",
                  dest=str(tmp_path / "cp1.yaml"), network=NET, hostname="cp1",
                  talosconfig_dest=str(tmp_path / "talosconfig"), talosconfig_endpoints=["192.168.1.71"])
    planned = mc.run(params, check_mode=True)
    assert planned["changed"] and not os.path.exists(params["dest"])
    res = mc.run(params)
    assert res["changed"] and res["client_cert_renewed"]
    for p in (params["dest"], params["talosconfig_dest"]):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert bundle["certs"]["os"]["key"] not in res["diff"]["after"]
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in res["diff"]["after"]
    cfg = open(params["dest"]).read()
    tc = open(params["talosconfig_dest"]).read()
    again = mc.run(params)
    assert not again["changed"] and "diff" not in again and not again["client_cert_renewed"]
    assert open(params["dest"]).read() == cfg and open(params["talosconfig_dest"]).read() == tc
    params["network"] = dict(NET, addresses=["192.168.1.81/24"])
    moved = mc.run(params)
    assert moved["changed"] and "192.168.1.81/24" in moved["diff"]["after"]
    assert open(params["talosconfig_dest"]).read() == tc


def test_run_fails_before_writing_anything_on_bad_input(secrets_file, tmp_path):
    params = dict(secrets=secrets_file, cluster_name="tazlab", cluster_endpoint=EP, machine_type="worker",
                  dest=str(tmp_path / "w1.yaml"), talosconfig_dest=str(tmp_path / "tc"), talosconfig_endpoints=[])
    with pytest.raises(TalosConfigError):
        mc.run(params)
    assert os.listdir(str(tmp_path)) == []
