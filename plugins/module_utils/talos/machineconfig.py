# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Machine configs and the admin talosconfig from a secrets bundle (``talosctl gen config`` /
the Terraform provider's talos_machine_configuration and talos_client_configuration).

:func:`render` builds the documents of a control plane or a worker as Talos' ``generate`` package does
for the version contract (talos-provisioning.md, section 2), adds the node's install disk, network and
VIP, then applies the user's patches with the collection's patch code (:mod:`.patch`). :func:`validate`
is the minimum of Talos' own validation. Rendering is deterministic (same inputs, same bytes), so a
rerun writes nothing. :func:`talosconfig` mints the ``os:admin`` client certificate and keeps an
existing one until it expires within :data:`RENEW_BEFORE`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import secrets as ts
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
else:
    HAS_YAML = True

DEFAULT_KUBERNETES_VERSION = "1.36.3"
DEFAULT_INSTALL_DISK = "/dev/sda"
MACHINE_TYPES = ("controlplane", "worker")
RENEW_BEFORE = datetime.timedelta(days=30)
ADMIN_CERT_DAYS = 365
POD_SECURITY = {
    "apiVersion": "pod-security.admission.config.k8s.io/v1alpha1",
    "kind": "PodSecurityConfiguration",
    "defaults": {"audit": "restricted", "audit-version": "latest", "enforce": "baseline",
                 "enforce-version": "latest", "warn": "restricted", "warn-version": "latest"},
    "exemptions": {"namespaces": ["kube-system"], "runtimeClasses": [], "usernames": []},
}


def parse_endpoint(endpoint):
    """``https://host:port`` (Talos' validateClusterEndpoint) -> (host, port)."""
    m = re.match(r"^https://(\[[0-9a-fA-F:.]+\]|[^/:\[\]]+):(\d+)/?$", str(endpoint or "").strip())
    if not m:
        raise TalosConfigError("cluster_endpoint %r must be https://<host>:<port> (e.g. https://10.0.0.10:6443)"
                               % (endpoint,))
    return m.group(1).strip("[]"), int(m.group(2))


def _k8s_version(version):
    v = str(version or DEFAULT_KUBERNETES_VERSION).lstrip("v")
    if not re.match(r"^\d+\.\d+\.\d+$", v):
        raise TalosConfigError("kubernetes_version %r is not like 1.36.3" % (version,))
    return v


def network_block(spec):
    """``machine.network`` from the node's network spec (hostname, interface, addresses, gateway, ...)."""
    spec = dict(spec or {})
    net = {}
    iface = {}
    if spec.get("interface"):
        iface["interface"] = spec["interface"]
    elif spec.get("device_selector"):
        iface["deviceSelector"] = dict(spec["device_selector"])
    addresses = list(spec.get("addresses") or [])
    for a in addresses:
        try:
            ipaddress.ip_interface(str(a))
        except ValueError:
            raise TalosConfigError("network address %r is not an address with a prefix (10.0.0.11/24)" % (a,))
        if "/" not in str(a):
            raise TalosConfigError("network address %r needs a prefix length (10.0.0.11/24)" % (a,))
    if addresses:
        iface["addresses"] = addresses
    if spec.get("gateway"):
        try:
            gw = ipaddress.ip_address(str(spec["gateway"]))
        except ValueError:
            raise TalosConfigError("network gateway %r is not an address" % (spec["gateway"],))
        iface["routes"] = [{"network": "0.0.0.0/0" if gw.version == 4 else "::/0", "gateway": str(gw)}]
    if spec.get("dhcp") is not None:
        iface["dhcp"] = bool(spec["dhcp"])
    if spec.get("vip"):
        try:
            ipaddress.ip_address(str(spec["vip"]))
        except ValueError:
            raise TalosConfigError("vip %r is not an address" % (spec["vip"],))
        iface["vip"] = {"ip": str(spec["vip"])}
    if iface:
        if "interface" not in iface and "deviceSelector" not in iface:
            iface = dict({"deviceSelector": {"physical": True}}, **iface)
        net["interfaces"] = [iface]
    if spec.get("nameservers"):
        net["nameservers"] = list(spec["nameservers"])
    return net


def _base_machine(bundle, machine_type, contract, k8s, install_disk, install_image, cert_sans):
    os_ca = {"crt": bundle["certs"]["os"]["crt"],
             "key": bundle["certs"]["os"]["key"] if machine_type == "controlplane" else ""}
    features = {}
    if contract < (1, 12):
        features["rbac"] = True
        features["apidCheckExtKeyUsage"] = True
    if (1, 5) <= contract < (1, 12):
        features["stableHostname"] = True
    if contract >= (1, 5):
        features["diskQuotaSupport"] = True
    if contract >= (1, 6):
        features["kubePrism"] = {"enabled": True, "port": 7445}
    if contract >= (1, 7):
        features["hostDNS"] = {"enabled": True, "forwardKubeDNSToHost": True}
    machine = {
        "type": machine_type,
        "token": bundle["trustdinfo"]["token"],
        "ca": os_ca,
        "certSANs": list(cert_sans),
        "kubelet": {"image": "ghcr.io/siderolabs/kubelet:v%s" % k8s,
                    "defaultRuntimeSeccompProfileEnabled": True, "disableManifestsDirectory": True},
        "network": {},
        "install": {"disk": install_disk, "image": install_image, "wipe": False},
        "features": features,
    }
    if machine_type == "controlplane" and contract >= (1, 8):
        machine["nodeLabels"] = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    return machine


def _cluster(bundle, machine_type, contract, cluster_name, endpoint, host, k8s, cert_sans):
    network = {"dnsDomain": "cluster.local"}
    if ":" in host:
        network.update(podSubnets=["fc00:db8:10::/56"], serviceSubnets=["fc00:db8:20::/112"])
    else:
        network.update(podSubnets=["10.244.0.0/16"], serviceSubnets=["10.96.0.0/12"])
    discovery = {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}}
    if machine_type == "worker":
        cluster = {"id": bundle["cluster"]["id"], "secret": bundle["cluster"]["secret"],
                   "controlPlane": {"endpoint": endpoint}}
        if contract >= (1, 8):
            cluster["clusterName"] = cluster_name
        cluster.update(network=network, token=bundle["secrets"]["bootstraptoken"],
                       ca={"crt": bundle["certs"]["k8s"]["crt"], "key": ""}, discovery=discovery)
        return cluster
    api_sans = list(cert_sans)
    if contract < (1, 12) and host not in api_sans:
        api_sans.insert(0, host)
    cluster = {"id": bundle["cluster"]["id"], "secret": bundle["cluster"]["secret"],
               "controlPlane": {"endpoint": endpoint}, "clusterName": cluster_name, "network": network,
               "token": bundle["secrets"]["bootstraptoken"]}
    sec = bundle["secrets"]
    if sec.get("secretboxencryptionsecret"):
        cluster["secretboxEncryptionSecret"] = sec["secretboxencryptionsecret"]
    else:
        cluster["aescbcEncryptionSecret"] = sec["aescbcencryptionsecret"]
    cluster.update(
        ca={"crt": bundle["certs"]["k8s"]["crt"], "key": bundle["certs"]["k8s"]["key"]},
        aggregatorCA={"crt": bundle["certs"]["k8saggregator"]["crt"], "key": bundle["certs"]["k8saggregator"]["key"]},
        serviceAccount={"key": bundle["certs"]["k8sserviceaccount"]["key"]},
        apiServer={"image": "registry.k8s.io/kube-apiserver:v%s" % k8s, "certSANs": api_sans,
                   "disablePodSecurityPolicy": True,
                   "admissionControl": [{"name": "PodSecurity", "configuration": POD_SECURITY}],
                   "auditPolicy": {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}},
        controllerManager={"image": "registry.k8s.io/kube-controller-manager:v%s" % k8s},
        proxy={"image": "registry.k8s.io/kube-proxy:v%s" % k8s},
        scheduler={"image": "registry.k8s.io/kube-scheduler:v%s" % k8s},
        discovery=discovery,
        etcd={"ca": {"crt": bundle["certs"]["etcd"]["crt"], "key": bundle["certs"]["etcd"]["key"]}},
        extraManifests=[], inlineManifests=[])
    if contract >= (1, 12):
        cluster["apiServer"].pop("disablePodSecurityPolicy")
    return cluster


def render(bundle, machine_type, cluster_name, cluster_endpoint, talos_version=ts.DEFAULT_TALOS_VERSION,
           kubernetes_version=None, install_disk=None, install_image=None, network=None, hostname=None,
           cert_sans=None, patches=None):
    """The documents of one machine's config (a list of dicts), validated."""
    if machine_type not in MACHINE_TYPES:
        raise TalosConfigError("machine_type must be one of %s" % ", ".join(MACHINE_TYPES))
    if not cluster_name or not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$", str(cluster_name)):
        raise TalosConfigError("cluster_name %r is not a valid name" % (cluster_name,))
    contract = ts.parse_contract(talos_version)
    host, dummy = parse_endpoint(cluster_endpoint)
    k8s = _k8s_version(kubernetes_version)
    ts.validate_bundle(bundle)
    version = str(talos_version) if str(talos_version).startswith("v") else "v" + str(talos_version)
    if re.match(r"^v\d+\.\d+$", version):
        version += ".0"
    install_image = install_image or "ghcr.io/siderolabs/installer:%s" % version
    if (network or {}).get("vip") and machine_type != "controlplane":
        raise TalosConfigError("a VIP is only valid on control planes")
    sans = [str(s) for s in (cert_sans or [])]
    v1 = {"version": "v1alpha1", "debug": False, "persist": True,
          "machine": _base_machine(bundle, machine_type, contract, k8s, install_disk or DEFAULT_INSTALL_DISK,
                                   install_image, sans),
          "cluster": _cluster(bundle, machine_type, contract, cluster_name, cluster_endpoint, host, k8s, sans)}
    v1["machine"]["network"] = network_block(network)
    docs = [v1]
    if contract >= (1, 12):
        docs.append({"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": hostname} if hostname
                    else {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"})
    elif hostname:
        v1["machine"]["network"]["hostname"] = hostname
    docs = tp.apply_patches(docs, patches or [])
    validate(docs)
    return docs


def validate(docs):
    """The minimum of Talos' v1alpha1 validation (talos-provisioning.md, section 2)."""
    v1 = next((d for d in docs if tp.is_v1alpha1(d)), None)
    if v1 is None:
        raise TalosConfigError("config has no v1alpha1 document")
    machine, cluster = v1.get("machine"), v1.get("cluster")
    if not isinstance(machine, dict) or not isinstance(cluster, dict):
        raise TalosConfigError("config needs machine and cluster")
    if v1.get("persist") is not True:
        raise TalosConfigError("persist must be true")
    mtype = machine.get("type")
    if mtype not in MACHINE_TYPES + ("init",):
        raise TalosConfigError("unknown machine.type %r" % (mtype,))
    parse_endpoint((cluster.get("controlPlane") or {}).get("endpoint"))
    install = machine.get("install") or {}
    if not install.get("disk") and not install.get("diskSelector"):
        raise TalosConfigError("machine.install needs disk or diskSelector")
    ca = machine.get("ca") or {}
    if not ca.get("crt"):
        raise TalosConfigError("machine.ca.crt is missing")
    if mtype in ("controlplane", "init") and not ca.get("key"):
        raise TalosConfigError("a control plane needs machine.ca.key")
    if mtype == "worker":
        if ca.get("key") or (cluster.get("ca") or {}).get("key"):
            raise TalosConfigError("a worker must not carry the OS CA key or the Kubernetes CA key")
        for iface in (machine.get("network") or {}).get("interfaces") or []:
            if iface.get("vip"):
                raise TalosConfigError("a VIP is only valid on control planes")
    for d in docs:
        if d.get("kind") == "Layer2VIPConfig" and mtype == "worker":
            raise TalosConfigError("a VIP is only valid on control planes")
    return True


def dump(docs):
    return tp.dump_documents(docs)


# -- talosconfig ------------------------------------------------------------------------------------
def _admin_ok(existing, os_crt_pem, now):
    """The existing talosconfig context, if its admin cert is from this CA and not expiring soon."""
    from cryptography import x509
    try:
        crt = x509.load_pem_x509_certificate(ts.unb64(existing["crt"], "crt"))
        ca = x509.load_pem_x509_certificate(os_crt_pem)
        crt.verify_directly_issued_by(ca)
    except (KeyError, TypeError, ValueError, TalosConfigError, Exception):  # noqa: BLE001 - any doubt: renew
        return False
    if existing.get("ca") != ts.b64(os_crt_pem):
        return False
    return crt.not_valid_after_utc - now > RENEW_BEFORE


def talosconfig(bundle, context, endpoints, nodes=None, existing=None, now=None):
    """(talosconfig mapping, renewed?) for the admin: endpoints are node addresses, never the VIP."""
    if not endpoints:
        raise TalosConfigError("talosconfig needs endpoints (the control planes' addresses)")
    ts.validate_bundle(bundle)
    now = (now or datetime.datetime.now(datetime.timezone.utc))
    os_crt = ts.pem_of(bundle, "os", "crt")
    old = ((existing or {}).get("contexts") or {}).get(context) if isinstance(existing, dict) else None
    renewed = False
    if old and _admin_ok(old, os_crt, now):
        crt, key = old["crt"], old["key"]
    else:
        c, k = ts.issue_client_cert(os_crt, ts.pem_of(bundle, "os", "key"), org="os:admin", cn="admin",
                                    days=ADMIN_CERT_DAYS, now=now)
        crt, key, renewed = ts.b64(c), ts.b64(k), True
    ctx = {"endpoints": [str(e) for e in endpoints], "ca": ts.b64(os_crt), "crt": crt, "key": key}
    if nodes:
        ctx["nodes"] = [str(n) for n in nodes]
    doc = {"context": context, "contexts": {context: ctx}}
    return doc, renewed


# -- the files --------------------------------------------------------------------------------------
def _read(path):
    try:
        with open(path, "r") as f:
            return f.read()
    except OSError:
        return None


def plan_file(path, text):
    """``{changed, diff}``: does ``path`` need ``text`` (content or a mode wider than 0600)."""
    current = _read(path)
    too_open = current is not None and os.stat(path).st_mode & 0o077
    return {"changed": current != text or bool(too_open), "exists": current is not None,
            "content_changed": current != text}


def ensure_file(path, text, check_mode=False):
    plan = plan_file(path, text)
    if plan["changed"] and not check_mode:
        ts.write_private(path, text)
    return plan


def run(params, check_mode=False):
    """The talos_machine_config module's work: render everything first (bad input fails before any write),
    compare with the files, then write what differs (mode 0600)."""
    if not params.get("dest") and not params.get("talosconfig_dest"):
        raise TalosConfigError("give dest (a machine config) and/or talosconfig_dest")
    bundle = ts.load_bundle(params["secrets"])
    result = {"changed": False}
    writes = []
    diff = {"before": "", "after": ""}
    if params.get("dest"):
        if not params.get("machine_type"):
            raise TalosConfigError("machine_type is required with dest")
        if not params.get("cluster_endpoint"):
            raise TalosConfigError("cluster_endpoint is required with dest")
        docs = render(bundle, params["machine_type"], params["cluster_name"], params["cluster_endpoint"],
                      talos_version=params.get("talos_version") or ts.DEFAULT_TALOS_VERSION,
                      kubernetes_version=params.get("kubernetes_version"), install_disk=params.get("install_disk"),
                      install_image=params.get("install_image"), network=params.get("network"),
                      hostname=params.get("hostname"), cert_sans=params.get("cert_sans"),
                      patches=params.get("config_patches"))
        text = dump(docs)
        old = _read(params["dest"])
        writes.append((params["dest"], text))
        result.update(dest=params["dest"], machine_type=params["machine_type"])
        if old != text:
            try:
                before = tp.dump_documents(tp.masked(tp.load_documents(old))) if old else ""
            except Exception:  # noqa: BLE001 - an unreadable old file: show it as replaced
                before = "(unreadable)\n"
            diff["before"] += before
            diff["after"] += tp.dump_documents(tp.masked(docs))
    if params.get("talosconfig_dest"):
        existing = None
        raw = _read(params["talosconfig_dest"])
        if raw:
            try:
                existing = yaml.safe_load(raw)
            except yaml.YAMLError:
                existing = None
        doc, renewed = talosconfig(bundle, params.get("context") or params["cluster_name"],
                                   params.get("talosconfig_endpoints") or [], params.get("talosconfig_nodes"),
                                   existing=existing)
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
        writes.append((params["talosconfig_dest"], text))
        result.update(talosconfig_dest=params["talosconfig_dest"], client_cert_renewed=renewed)
        if raw != text:
            diff["before"] += "# talosconfig %s\n" % ("present" if raw else "absent")
            diff["after"] += "# talosconfig written (context %s, endpoints %s)\n" % (
                params.get("context") or params["cluster_name"], ", ".join(doc["contexts"][
                    params.get("context") or params["cluster_name"]]["endpoints"]))
    for path, text in writes:
        result["changed"] |= ensure_file(path, text, check_mode)["changed"]
    if result["changed"]:
        result["diff"] = diff
    return result


def run_machine_config_module(module_run):
    """talos_machine_config: the module runner's one call (the diff only in diff mode)."""
    result = run(module_run.params, check_mode=module_run.check_mode)
    if not module_run.diff:
        result.pop('diff', None)
    return result
