"""The shipped ClusterRole grants what the runbooks' writes need, and no wildcard."""

import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rules():
    with open(os.path.join(ROOT, 'meta', 'kubernetes', 'clusterrole.yaml')) as f:
        role = yaml.safe_load(f)
    assert role['kind'] == 'ClusterRole' and role['apiVersion'] == 'rbac.authorization.k8s.io/v1'
    return role['rules']


def allowed(group, resource, verb):
    return any(group in r['apiGroups'] and resource in r['resources'] and verb in r['verbs'] for r in rules())


def test_the_writes_of_a_recovery_are_granted():
    for group, resource, verb in [('', 'nodes', 'patch'), ('', 'nodes/status', 'patch'), ('', 'pods', 'delete'),
                                  ('storage.k8s.io', 'volumeattachments', 'delete'),
                                  ('longhorn.io', 'volumeattachments', 'patch'),
                                  ('coordination.k8s.io', 'leases', 'create'), ('', 'namespaces', 'get')]:
        assert allowed(group, resource, verb), (group, resource, verb)


def test_no_wildcards_and_no_secrets():
    for rule in rules():
        assert '*' not in rule['apiGroups'] + rule['resources'] + rule['verbs']
        assert 'secrets' not in rule['resources']
