"""playbooks/audit.yml on the lab's seed cluster: it finds the Traefik problem of Phase 4, the naive fix
(2 replicas on the RWO acme.json volume) is its own finding, and the real fix (certificates in a Secret,
2 replicas spread over nodes, a PDB) clears it, so `audit_fail_on=high` passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from k8s_lab import ROOT, TIME_SCALE, Lab

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)
BIN = os.path.dirname(sys.executable)


def run_audit(lab, tmp_path, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), PATH=BIN + os.pathsep + os.environ['PATH'])
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), 'playbooks/audit.yml',
                           '-i', lab.world.paths()['inventory'], '-e', 'audit_report_dir=' + str(tmp_path), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads((tmp_path / 'audit.json').read_text()) if (tmp_path / 'audit.json').exists() else None
    return proc, report


def traefik(report):
    return sorted((f['code'], f['severity']) for f in report['findings'] if 'traefik/traefik' in f['object'])


def apps_api(lab):
    from kubernetes import client, config
    api = config.new_client_from_config(lab.world.paths()['kubeconfig'])
    return client.AppsV1Api(api), client.CoreV1Api(api), client.PolicyV1Api(api)


def test_the_seed_cluster_shows_the_traefik_finding_and_the_fix_clears_it(lab_world, tmp_path):
    lab = Lab(lab_world)
    before = lab.requests()
    proc, report = run_audit(lab, tmp_path, '-e', 'audit_fail_on=high')
    # CI gate: the seed's Traefik finding is high, so the playbook fails, and it has still written the reports.
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert 'finding(s) at or above high' in proc.stdout
    assert traefik(report) == [('critical-single-replica', 'high')]
    finding = next(f for f in report['findings'] if f['code'] == 'critical-single-replica')
    assert 'ReadWriteOnce claim traefik' in finding['why'] and 'cert-manager' in finding['fix']
    assert lab.writes_since(before) == {}, 'the audit wrote to the cluster'
    md, page = (tmp_path / 'audit.md').read_text(), (tmp_path / 'audit.html').read_text()
    for f in report['findings']:
        assert f['object'] in md and f['code'] in page
    # The rest of what the seed cluster really has: Longhorn found, its do-nothing policy, no fencing gap.
    codes = set(f['code'] for f in report['findings'])
    assert {'longhorn-found', 'longhorn-node-down-policy', 'secretbox-off', 'disk-encryption-off'} <= codes
    assert not codes & {'unfenceable-node', 'control-planes-same-host', 'kubernetes-endpoints-mismatch',
                        'kubeconfig-one-node', 'even-control-planes'}

    apps, core, policy = apps_api(lab)
    # Phase 4's naive attempt: 2 replicas on the RWO volume. The audit names exactly that.
    apps.patch_namespaced_deployment('traefik', 'traefik', {'spec': {'replicas': 2}})
    report = run_audit(lab, tmp_path)[1]
    assert ('rwo-multi-replica', 'high') in traefik(report)

    # The real fix: certificates in a Secret (cert-manager's output), no PVC, 2 replicas spread over nodes, a PDB.
    core.create_namespaced_secret('traefik', {'metadata': {'name': 'traefik-certs'}, 'type': 'kubernetes.io/tls',
                                              'data': {'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5'}})
    dep = apps.read_namespaced_deployment('traefik', 'traefik').to_dict()
    body = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment('traefik', 'traefik'))
    spec = body['spec']['template']['spec']
    spec.pop('initContainers', None)
    spec['volumes'] = [{'name': 'data', 'secret': {'secretName': 'traefik-certs'}}]
    labels = body['spec']['selector']['matchLabels']
    spec['affinity'] = {'podAntiAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': [
        {'labelSelector': {'matchLabels': labels}, 'topologyKey': 'kubernetes.io/hostname'}]}}
    body['spec']['replicas'] = 2
    body['spec']['strategy'] = {'type': 'RollingUpdate', 'rollingUpdate': {'maxUnavailable': 1, 'maxSurge': 0}}
    apps.replace_namespaced_deployment('traefik', 'traefik', body)
    policy.create_namespaced_pod_disruption_budget('traefik', {
        'metadata': {'name': 'traefik'}, 'spec': {'minAvailable': 1, 'selector': {'matchLabels': labels}}})
    assert dep['spec']['replicas'] == 2
    proc, report = run_audit(lab, tmp_path, '-e', 'audit_fail_on=high')
    assert traefik(report) == []
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_check_mode_is_the_same_read_only_run(lab_world, tmp_path):
    lab = Lab(lab_world)
    before = lab.requests()
    proc, report = run_audit(lab, tmp_path, '--check')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ('critical-single-replica', 'high') in traefik(report)
    assert lab.writes_since(before) == {}
