# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Collecting the facts the resilience audit judges (reads only: GET/LIST, Talos reads).

Each collector returns plain dicts in the APIs' own shape; ``findings.audit`` judges them. A part that
cannot be read comes back as ``None`` (with the reason in ``errors``) so the audit says it was not
checked rather than passing silently.
"""

from __future__ import annotations

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
else:
    HAS_YAML = True

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError

__all__ = ['collect_kubernetes', 'collect_longhorn', 'collect_proxmox', 'collect_talos', 'kubeconfig_server',
           'parse_machine_config']

VOLUME_STATUS_TYPE = 'VolumeStatuses.block.talos.dev'


def _items(client, what, func, **kwargs):
    return client.items(client.call(what, func, **kwargs))


def _optional(client, what, func, **kwargs):
    """A listing of an API the cluster may not serve (404 -> [])."""
    try:
        return _items(client, what, func, **kwargs)
    except K8sError as exc:
        if exc.kind == 'not_found' or getattr(exc, 'status', None) == 404:
            return []
        raise


def collect_kubernetes(client):
    policy = client.policy
    autoscaling = client.autoscaling
    out = {
        'nodes': _items(client, 'list nodes', client.core.list_node),
        'deployments': _items(client, 'list deployments', client.apps.list_deployment_for_all_namespaces),
        'statefulsets': _items(client, 'list statefulsets', client.apps.list_stateful_set_for_all_namespaces),
        'replicasets': _items(client, 'list replicasets', client.apps.list_replica_set_for_all_namespaces),
        'pods': _items(client, 'list pods', client.core.list_pod_for_all_namespaces),
        'pvcs': _items(client, 'list persistentvolumeclaims',
                       client.core.list_persistent_volume_claim_for_all_namespaces),
        'pdbs': _optional(client, 'list poddisruptionbudgets', policy.list_pod_disruption_budget_for_all_namespaces),
        'hpas': _optional(client, 'list horizontalpodautoscalers',
                          autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces),
        'namespaces': [((n.get('metadata') or {}).get('name')) for n in
                       _items(client, 'list namespaces', client.core.list_namespace)],
    }
    try:
        out['endpoints'] = client.get_endpoints('default', 'kubernetes')
    except K8sError as exc:
        if exc.kind != 'not_found':
            raise
        out['endpoints'] = {'subsets': []}
    return out


def collect_longhorn(client, namespaces, candidates):
    """Longhorn's volumes and settings from the first candidate namespace that exists and serves them."""
    searched = []
    for ns in candidates:
        if not ns or ns in searched:
            continue
        searched.append(ns)
        if ns not in namespaces:
            continue
        try:
            volumes = client.list_custom('volumes', namespace=ns)
            settings = client.list_custom('settings', namespace=ns)
        except K8sError as exc:
            if exc.kind == 'not_found':
                continue
            raise
        return {'namespace': ns, 'searched': searched, 'volumes': volumes,
                'settings': dict(((s.get('metadata') or {}).get('name'), str(s.get('value')))
                                 for s in settings)}
    return {'namespace': None, 'searched': searched, 'volumes': [], 'settings': {}}


def collect_proxmox(client):
    """Every QEMU VM with its PVE host, HA state and SMBIOS UUID (one listing + one config read per VM)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import parse_smbios_uuid
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.inventory import vm_power_states

    state = vm_power_states(client)
    vms = []
    for vm in state['vms']:
        entry = dict(vm)
        try:
            entry['smbios_uuid'] = parse_smbios_uuid(client.vm_config(vm['node'], vm['vmid']).get('smbios1'))
            entry['identity_readable'] = True
        except ProxmoxError as exc:
            entry['smbios_uuid'] = None
            entry['identity_readable'] = False
            entry['config_error'] = str(exc)
        vms.append(entry)
    return {'vms': vms, 'pve_nodes': state['pve_nodes'], 'quorate': state['quorate']}


# ----------------------------------------------------------------------------------------- Talos
def parse_machine_config(text):
    """{secretbox, aescbc, vip, endpoint, volumes: {STATE|EPHEMERAL: {encrypted, source}}} from a config."""
    docs = [d for d in yaml.safe_load_all(text or '') if isinstance(d, dict)]
    v1 = next((d for d in docs if 'machine' in d or 'cluster' in d), {})
    cluster = v1.get('cluster') or {}
    machine = v1.get('machine') or {}
    vip = None
    for iface in ((machine.get('network') or {}).get('interfaces') or []):
        if (iface.get('vip') or {}).get('ip'):
            vip = iface['vip']['ip']
    for doc in docs:
        if doc.get('kind') in ('Layer2VIPConfig',) and doc.get('name'):
            vip = doc['name']
    volumes = {}
    legacy = machine.get('systemDiskEncryption') or {}
    for name in ('STATE', 'EPHEMERAL'):
        enc = legacy.get(name.lower())
        if enc:
            volumes[name] = {'encrypted': bool(enc.get('provider')), 'source': 'machine config'}
    for doc in docs:
        if doc.get('kind') == 'VolumeConfig' and doc.get('name') in ('STATE', 'EPHEMERAL'):
            enc = doc.get('encryption') or {}
            volumes[doc['name']] = {'encrypted': bool(enc.get('provider')), 'source': 'machine config'}
    for name in ('STATE', 'EPHEMERAL'):
        volumes.setdefault(name, {'encrypted': False, 'source': 'machine config'})
    return {'secretbox': bool(cluster.get('secretboxEncryptionSecret')),
            'aescbc': bool(cluster.get('aescbcEncryptionSecret')),
            'vip': vip, 'endpoint': (cluster.get('controlPlane') or {}).get('endpoint'), 'volumes': volumes}


def volume_status_encrypted(yaml_spec):
    """Encrypted and healthy per a VolumeStatus spec (phase ready, provider luks2, no failed syncs)."""
    spec = yaml.safe_load(yaml_spec or '') or {}
    provider = str(spec.get('encryptionProvider') or '').lower()
    return provider == 'luks2' and not spec.get('encryptionFailedSyncs')


async def _talos_node(client, address):
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError

    name = await client.hostname(node=address)
    config = await client.machine_config(node=address)
    info = parse_machine_config(config.decode() if isinstance(config, bytes) else config)
    for volume in ('STATE', 'EPHEMERAL'):
        try:
            res = await client.get_resource('runtime', VOLUME_STATUS_TYPE, volume, node=address, retries=0)
        except TalosError:
            continue   # not served (older Talos, or the lab twin): the machine config says it
        info['volumes'][volume] = {'encrypted': volume_status_encrypted(res.spec.yaml_spec),
                                   'source': 'VolumeStatus'}
    return name, info


def collect_talos(auth, addresses, client_kwargs):
    """{node name: facts} for each Talos node address (hostname names it); errors per address."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import run
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError

    out, names = {}, {}

    async def every(client):
        for address in addresses:
            try:
                name, info = await _talos_node(client, address)
            except TalosError as exc:
                out[address] = {'error': str(exc)}
                continue
            names[address] = name
            out[name] = info
        return out

    run(auth, every, **client_kwargs)
    return out, names


def kubeconfig_server(params):
    """The API server URL clients of this kubeconfig use (host option wins)."""
    if params.get('host'):
        return params['host']
    config = params.get('kubeconfig')
    if not config:
        return None
    if not isinstance(config, dict):
        try:
            with open(config, encoding='utf-8') as fh:
                config = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError):
            return None
    config = config or {}
    ctx_name = params.get('context') or config.get('current-context')
    ctx = next((c.get('context') or {} for c in config.get('contexts') or [] if c.get('name') == ctx_name), {})
    cluster = next((c.get('cluster') or {} for c in config.get('clusters') or []
                    if c.get('name') == ctx.get('cluster')), {})
    return cluster.get('server')
