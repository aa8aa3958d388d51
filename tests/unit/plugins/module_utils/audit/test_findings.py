"""The audit's judgement over hand-built facts (no I/O)."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.audit import findings as F
from ansible_collections.tazlab.resilience.plugins.module_utils.audit.collect import (
    kubeconfig_server, parse_machine_config, volume_status_encrypted,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.audit.report import render_html, render_markdown


def node(name, uuid, role='worker', ip='10.0.0.1'):
    labels = {'node-role.kubernetes.io/control-plane': ''} if role == 'control-plane' else {}
    return {'metadata': {'name': name, 'labels': labels},
            'status': {'nodeInfo': {'systemUUID': uuid}, 'addresses': [{'type': 'InternalIP', 'address': ip}]}}


def deployment(name, ns='apps', replicas=1, claims=(), annotations=None, anti=False, labels=None):
    labels = labels or {'app': name}
    spec = {'volumes': [{'name': c, 'persistentVolumeClaim': {'claimName': c}} for c in claims]}
    if anti:
        spec['affinity'] = {'podAntiAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': [
            {'weight': 1, 'podAffinityTerm': {'topologyKey': 'kubernetes.io/hostname',
                                              'labelSelector': {'matchLabels': labels}}}]}}
    return {'metadata': {'name': name, 'namespace': ns, 'annotations': annotations or {}},
            'spec': {'replicas': replicas, 'selector': {'matchLabels': labels},
                     'template': {'metadata': {'labels': labels}, 'spec': spec}}}


def pvc(name, ns='apps', modes=('ReadWriteOnce',)):
    return {'metadata': {'name': name, 'namespace': ns}, 'spec': {'accessModes': list(modes)}}


def codes(found, obj=None):
    return sorted((f['code'], f['severity']) for f in found if obj is None or obj in f['object'])


def test_traefik_single_replica_on_rwo_is_high_and_names_the_claim():
    k8s = {'deployments': [deployment('traefik', 'traefik', 1, ['acme'])], 'pvcs': [pvc('acme', 'traefik')]}
    found = F.check_workloads(k8s, {})
    assert codes(found) == [('critical-single-replica', 'high')]
    assert 'ReadWriteOnce claim acme' in found[0]['why'] and 'cert-manager' in found[0]['fix']


def test_two_replicas_or_an_hpa_on_rwo_is_the_multi_attach_finding():
    k8s = {'deployments': [deployment('web', replicas=2, claims=['data'], anti=True)], 'pvcs': [pvc('data')],
           'pdbs': [{'metadata': {'namespace': 'apps'}, 'spec': {'selector': {'matchLabels': {'app': 'web'}}}}]}
    assert codes(F.check_workloads(k8s, {})) == [('rwo-multi-replica', 'high')]
    k8s['deployments'][0]['spec']['replicas'] = 1
    assert codes(F.check_workloads(k8s, {})) == [('rwo-deployment', 'low')]
    k8s['hpas'] = [{'metadata': {'namespace': 'apps'},
                    'spec': {'scaleTargetRef': {'kind': 'Deployment', 'name': 'web'}, 'maxReplicas': 4}}]
    found = F.check_workloads(k8s, {})
    assert ('rwo-multi-replica', 'high') in codes(found)
    assert '(HPA max)' in next(f['why'] for f in found if f['code'] == 'rwo-multi-replica')


def test_rwx_claims_and_statefulsets_are_not_multi_attach_findings():
    k8s = {'deployments': [deployment('web', replicas=3, claims=['shared'], anti=True)],
           'pvcs': [pvc('shared', modes=['ReadWriteMany'])],
           'pdbs': [{'metadata': {'namespace': 'apps'}, 'spec': {'selector': {'matchLabels': {'app': 'web'}}}}]}
    assert codes(F.check_workloads(k8s, {})) == []
    sts = deployment('pg', replicas=3, claims=['data'], anti=True)
    k8s = {'statefulsets': [sts], 'pvcs': [pvc('data')],
           'pdbs': [{'metadata': {'namespace': 'apps'}, 'spec': {'selector': {'matchLabels': {'app': 'pg'}}}}]}
    assert codes(F.check_workloads(k8s, {})) == []


def test_marked_critical_single_replica_is_critical_and_an_option_marks_too():
    k8s = {'deployments': [deployment('pay', annotations={F.CRITICAL_ANNOTATION: 'true'}), deployment('api')]}
    assert codes(F.check_workloads(k8s, {})) == [('critical-single-replica', 'critical')]
    assert codes(F.check_workloads(k8s, {'critical_workloads': ['apps/api']}), 'apps/api') == [
        ('critical-single-replica', 'critical')]


def test_a_workload_marked_critical_the_older_way_still_counts():
    assert F.CRITICAL_ANNOTATION == 'remediation.tazlab.io/critical'
    k8s = {'deployments': [deployment('pay', annotations={F.LEGACY_CRITICAL_ANNOTATION: 'True'})]}
    assert codes(F.check_workloads(k8s, {})) == [('critical-single-replica', 'critical')]


def test_replicas_without_pdb_or_spread_and_all_on_one_node_is_high():
    k8s = {'deployments': [deployment('whoami', replicas=3)],
           'pods': [{'metadata': {'namespace': 'apps', 'labels': {'app': 'whoami'}}, 'spec': {'nodeName': 'w1'}}] * 3}
    found = F.check_workloads(k8s, {})
    assert codes(found) == [('no-anti-affinity', 'high'), ('no-pdb', 'low')]
    assert next(f for f in found if f['code'] == 'no-anti-affinity')['node'] == 'w1'


def test_a_pdb_with_an_empty_selector_covers_every_pod_of_its_namespace_and_none_covers_nothing():
    k8s = {'deployments': [deployment('whoami', replicas=3, anti=True)],
           'pdbs': [{'metadata': {'namespace': 'apps'}, 'spec': {'selector': {}}}]}
    assert codes(F.check_workloads(k8s, {})) == []
    k8s['pdbs'] = [{'metadata': {'namespace': 'apps'}, 'spec': {}}]
    assert codes(F.check_workloads(k8s, {})) == [('no-pdb', 'low')]


def test_owned_replicasets_are_judged_through_their_deployment_only():
    rs = deployment('web-abc', replicas=2, claims=['data'])
    rs['metadata']['ownerReferences'] = [{'kind': 'Deployment', 'name': 'web'}]
    assert F.check_workloads({'replicasets': [rs], 'pvcs': [pvc('data')]}, {}) == []
    del rs['metadata']['ownerReferences']
    assert ('rwo-multi-replica', 'high') in codes(F.check_workloads({'replicasets': [rs], 'pvcs': [pvc('data')]}, {}))


def test_longhorn_volumes_and_settings():
    lh = {'namespace': 'longhorn-system', 'volumes': [
        {'metadata': {'name': 'v1'}, 'spec': {'numberOfReplicas': 2}, 'status': {'robustness': 'healthy'}},
        {'metadata': {'name': 'v2'}, 'spec': {'numberOfReplicas': 3}, 'status': {'robustness': 'degraded'}},
        {'metadata': {'name': 'v3'}, 'spec': {'numberOfReplicas': 3}, 'status': {'robustness': 'faulted'}}],
        'settings': {'node-down-pod-deletion-policy': 'do-nothing'}}
    found = F.check_longhorn(lh, {})
    assert codes(found) == [('longhorn-auto-balance', 'low'), ('longhorn-degraded', 'critical'),
                            ('longhorn-faulted', 'critical'), ('longhorn-few-replicas', 'medium'),
                            ('longhorn-found', 'info'), ('longhorn-node-down-policy', 'medium')]
    assert "not set: Longhorn's default" in next(f['why'] for f in found if f['code'] == 'longhorn-auto-balance')
    lh['settings'] = {'node-down-pod-deletion-policy': 'delete-both-statefulset-and-deployment-pod',
                      'replica-auto-balance': 'best-effort'}
    lh['volumes'] = []
    assert codes(F.check_longhorn(lh, {})) == [('longhorn-found', 'info')]
    assert codes(F.check_longhorn({'namespace': None, 'searched': ['x']}, {})) == [('longhorn-not-found', 'info')]


def test_fencing_by_smbios_uuid_none_or_several_and_control_plane_layout():
    k8s = {'nodes': [node('cp1', 'AAA', 'control-plane'), node('cp2', 'BBB', 'control-plane'),
                     node('w1', 'CCC'), node('w2', 'DDD')]}
    vms = [{'vmid': 1, 'name': 'cp1', 'node': 'pve1', 'hastate': 'started', 'smbios_uuid': 'aaa'},
           {'vmid': 2, 'name': 'cp2', 'node': 'pve1', 'hastate': None, 'smbios_uuid': 'bbb'},
           {'vmid': 3, 'name': 'w1', 'node': 'pve2', 'smbios_uuid': 'ccc'},
           {'vmid': 4, 'name': 'w1-copy', 'node': 'pve2', 'smbios_uuid': 'CCC'}]
    found = F.check_fencing(k8s, {'vms': vms})
    assert codes(found) == [('control-plane-not-ha', 'medium'), ('control-planes-same-host', 'high'),
                            ('even-control-planes', 'medium'), ('unfenceable-node', 'critical'),
                            ('unfenceable-node', 'critical')]
    unfenceable = {f['node']: f['why'] for f in found if f['code'] == 'unfenceable-node'}
    assert 'several VMs' in unfenceable['w1'] and 'no VM' in unfenceable['w2']
    assert codes(F.check_fencing(k8s, None)) == [('proxmox-unread', 'info')]


def test_clients_one_node_vip_and_endpoints():
    k8s = {'nodes': [node('cp1', 'a', 'control-plane', '10.0.0.71'), node('cp2', 'b', 'control-plane', '10.0.0.72'),
                     node('cp3', 'c', 'control-plane', '10.0.0.73')],
           'endpoints': {'subsets': [{'addresses': [{'ip': '10.0.0.71'}, {'ip': '10.0.0.99'}]}]}}
    clients = {'kubeconfig_server': 'https://10.0.0.71:6443', 'talosconfig_endpoints': ['10.0.0.250:50000'],
               'vip': '10.0.0.250', 'node_addresses': {'10.0.0.71': 'cp1'}}
    assert codes(F.check_clients(k8s, clients)) == [
        ('kubeconfig-one-node', 'high'), ('kubernetes-endpoints-mismatch', 'high'), ('talosconfig-vip', 'medium')]
    k8s['endpoints'] = {'subsets': [{'addresses': [{'ip': '10.0.0.7' + str(i)} for i in (1, 2, 3)]}]}
    clients.update(kubeconfig_server='https://10.0.0.250:6443', talosconfig_endpoints=['10.0.0.71:50000'])
    assert F.check_clients(k8s, clients) == []


def test_talos_secretbox_and_disk_encryption():
    k8s = {'nodes': [node('cp1', 'a', 'control-plane'), node('w1', 'b')]}
    plain = parse_machine_config('machine: {type: controlplane}\ncluster: {aescbcEncryptionSecret: x}\n')
    enc = parse_machine_config('''machine: {type: worker}
cluster: {}
---
apiVersion: v1alpha1
kind: VolumeConfig
name: EPHEMERAL
encryption: {provider: luks2, keys: [{slot: 0, nodeID: {}}]}
''')
    found = F.check_talos({'cp1': plain, 'w1': enc, '10.0.0.9': {'error': 'unreachable'}}, k8s)
    assert codes(found) == [('disk-encryption-off', 'medium'), ('disk-encryption-off', 'medium'),
                            ('secretbox-off', 'medium'), ('talos-unreachable', 'info')]
    assert 'aescbc only' in next(f['why'] for f in found if f['code'] == 'secretbox-off')
    assert next(f['object'] for f in found if f['node'] == 'w1') == 'Node w1 volume(s) STATE'
    assert volume_status_encrypted('phase: ready\nencryptionProvider: luks2\n')
    assert not volume_status_encrypted('phase: ready\nencryptionProvider: luks2\nencryptionFailedSyncs: [tpm]\n')
    assert not volume_status_encrypted('phase: ready\n')


def test_machine_config_vip_and_legacy_disk_encryption():
    cfg = parse_machine_config('''machine:
  network: {interfaces: [{interface: eth0, vip: {ip: 192.168.1.250}}]}
  systemDiskEncryption: {state: {provider: luks2}}
cluster: {secretboxEncryptionSecret: s, controlPlane: {endpoint: "https://192.168.1.250:6443"}}
''')
    assert cfg['vip'] == '192.168.1.250' and cfg['secretbox']
    assert cfg['volumes']['STATE']['encrypted'] and not cfg['volumes']['EPHEMERAL']['encrypted']


def test_kubeconfig_server_from_a_dict_and_context():
    config = {'current-context': 'a',
              'contexts': [{'name': 'a', 'context': {'cluster': 'c1'}}, {'name': 'b', 'context': {'cluster': 'c2'}}],
              'clusters': [{'name': 'c1', 'cluster': {'server': 'https://1.1.1.1:6443'}},
                           {'name': 'c2', 'cluster': {'server': 'https://2.2.2.2:6443'}}]}
    assert kubeconfig_server({'kubeconfig': config}) == 'https://1.1.1.1:6443'
    assert kubeconfig_server({'kubeconfig': config, 'context': 'b'}) == 'https://2.2.2.2:6443'
    assert kubeconfig_server({'host': 'https://h:1'}) == 'https://h:1'


def test_audit_sorts_by_severity_and_the_reports_carry_every_finding():
    facts = {'kubernetes': {'deployments': [deployment('traefik', 'traefik', 1, ['acme'])],
                            'pvcs': [pvc('acme', 'traefik')]},
             'longhorn': {'namespace': 'longhorn-system', 'volumes': [], 'settings': {}}}
    found = F.audit(facts)
    ranks = [F.severity_rank(f['severity']) for f in found]
    assert ranks == sorted(ranks, reverse=True)
    summary = F.summarize(found)
    assert summary['max_severity'] == 'high' and summary['counts']['info'] == 3  # longhorn found, no proxmox, no talos
    assert [f['code'] for f in F.at_or_above(found, 'medium')] == [
        'critical-single-replica', 'longhorn-node-down-policy']
    md, page = render_markdown(found, summary), render_html(found, summary)
    for f in found:
        assert f['code'] in md and f['code'] in page
    assert '<tr class="high">' in page and '| high | critical-single-replica |' in md
    with pytest.raises(ValueError):
        F.severity_rank('urgent')
