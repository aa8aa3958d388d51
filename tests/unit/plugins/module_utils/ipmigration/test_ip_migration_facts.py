"""ip_migration facts: Kubernetes' view (nodes, the kubernetes Service endpoints, CoreDNS and kube-proxy) and
the Talos view (etcd members, health, configs) read through small stand-ins of the clients."""

from __future__ import annotations

import asyncio

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration import facts
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosUnreachable

CP = {'node-role.kubernetes.io/control-plane': ''}


def node(name, ip, ready=True, labels=None):
    return {'metadata': {'name': name, 'labels': labels or {}},
            'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}],
                       'addresses': [{'type': 'InternalIP', 'address': ip}, {'type': 'Hostname', 'address': name}]}}


def pod(name, node_name, ready, owner=None, labels=None, terminating=False):
    md = {'name': name, 'namespace': 'kube-system', 'labels': labels or {},
          'ownerReferences': [{'uid': owner}] if owner else []}
    if terminating:
        md['deletionTimestamp'] = '2026-01-25T20:45:28Z'
    return {'metadata': md, 'spec': {'nodeName': node_name},
            'status': {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


class FakeKube(object):
    def __init__(self, nodes, endpoints, slices, workloads, pods):
        self.nodes, self.endpoints, self.slices, self.workloads, self.pods = nodes, endpoints, slices, workloads, pods

    def list_nodes(self):
        return self.nodes

    def get_endpoints(self, namespace, name):
        if self.endpoints is None:
            raise K8sError('not_found', 'endpoints not found', status=404)
        return self.endpoints

    def list_endpoint_slices(self, namespace, label_selector=None):
        assert label_selector == 'kubernetes.io/service-name=kubernetes'
        return self.slices

    def get_workload(self, kind, namespace, name):
        if (kind, name) not in self.workloads:
            raise K8sError('not_found', '%s not found' % name, status=404)
        return self.workloads[(kind, name)]

    def list_pods(self, namespace=None, label_selector=None):
        want = dict(p.split('=') for p in label_selector.split(','))
        return [p for p in self.pods if all(p['metadata']['labels'].get(k) == v for k, v in want.items())]


def seed_cluster(coredns_ready=2, proxy_missing=()):
    nodes = [node('cp-01', '192.168.1.253', labels=CP), node('cp-02', '192.168.1.72', labels=CP),
             node('worker-new-01', '192.168.1.81'), node('worker-new-03', '192.168.1.83', ready=False)]
    dns = {'metadata': {'uid': 'd'}, 'spec': {'replicas': 2, 'selector': {'matchLabels': {'k8s-app': 'kube-dns'}}}}
    proxy = {'metadata': {'uid': 'p'}, 'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy'}}}}
    pods = [pod('coredns-%d' % i, 'worker-new-01', i < coredns_ready, labels={'k8s-app': 'kube-dns'}) for i in range(2)]
    pods.append(pod('coredns-old', 'cp-01', True, labels={'k8s-app': 'kube-dns'}, terminating=True))
    for n in ('cp-01', 'cp-02', 'worker-new-01', 'worker-new-03'):
        pods.append(pod('kube-proxy-' + n, n, n not in proxy_missing and n != 'worker-new-03', owner='p',
                        labels={'k8s-app': 'kube-proxy'}))
    ep = {'subsets': [{'addresses': [{'ip': '192.168.1.72'}, {'ip': '192.168.1.71'}]}]}
    slices = [{'metadata': {'name': 'kubernetes'}, 'addressType': 'IPv4',
               'endpoints': [{'addresses': ['192.168.1.253']}, {'addresses': ['192.168.1.72']}]}]
    return FakeKube(nodes, ep, slices, {('Deployment', 'coredns'): dns, ('DaemonSet', 'kube-proxy'): proxy}, pods)


def test_kubernetes_facts_read_nodes_endpoints_and_the_in_cluster_clients():
    out = facts.kubernetes_facts(None, client=seed_cluster())
    assert [(n['name'], n['control_plane'], n['ready'], n['internal_ip']) for n in out['nodes']] == [
        ('cp-01', True, True, '192.168.1.253'), ('cp-02', True, True, '192.168.1.72'),
        ('worker-new-01', False, True, '192.168.1.81'), ('worker-new-03', False, False, '192.168.1.83')]
    assert out['endpoints'] == ['192.168.1.71', '192.168.1.72']          # the stale one, as read
    assert out['slice_addresses'] == ['192.168.1.253', '192.168.1.72'] and out['slices'] == ['kubernetes']
    assert out['coredns'] == {'ready': True, 'ready_pods': 2, 'want': 2}
    # a NotReady node needs no kube-proxy; every Ready one does
    assert out['kube_proxy'] == {'ready': True, 'ready_pods': 3, 'ready_nodes': 3, 'missing_on': []}


def test_dual_stack_secondary_slice_does_not_count_for_the_primary_family():
    kube = seed_cluster()
    kube.slices.append({'metadata': {'name': 'kubernetes-ipv6'}, 'addressType': 'IPv6',
                        'endpoints': [{'addresses': ['fd00::71']}]})
    out = facts.kubernetes_facts(None, client=kube)
    assert out['slice_addresses'] == ['192.168.1.253', '192.168.1.72'] and out['family'] == 'IPv4'
    assert out['slices'] == ['kubernetes', 'kubernetes-ipv6']


def test_coredns_short_of_replicas_and_kube_proxy_missing_on_a_ready_node_are_not_ready():
    out = facts.kubernetes_facts(None, client=seed_cluster(coredns_ready=1, proxy_missing=('cp-02',)))
    assert out['coredns']['ready'] is False and out['coredns']['ready_pods'] == 1
    assert out['kube_proxy']['ready'] is False and out['kube_proxy']['missing_on'] == ['cp-02']


def test_missing_endpoints_and_workloads_are_reported_not_raised():
    kube = seed_cluster()
    kube.endpoints, kube.workloads = None, {}
    out = facts.kubernetes_facts(None, client=kube)
    assert out['endpoints'] == [] and 'coredns' not in out and 'kube_proxy' not in out


class FakeTalos(object):
    def __init__(self, down=()):
        self.down = set(down)

    async def etcd_member_list(self, node=None):
        return [{'hostname': 'cp-01', 'peer_urls': ['https://192.168.1.253:2380'], 'is_learner': False},
                {'hostname': 'cp-02', 'peer_urls': ['https://192.168.1.72:2380'], 'is_learner': False},
                {'hostname': 'cp-03', 'peer_urls': ['https://192.168.1.73:2380'], 'is_learner': True}]

    async def etcd_status(self, node=None, retries=None):
        if node in self.down:
            raise TalosUnreachable('%s is unreachable' % node)
        return {'errors': ['no leader'] if node == '192.168.1.73' else []}

    async def machine_config(self, node=None):
        if node in self.down:
            raise TalosUnreachable('%s is unreachable' % node)
        return b'version: v1alpha1\nmachine: {type: controlplane}\n'


def test_talos_facts_find_control_planes_through_etcd_with_health_and_configs():
    out = asyncio.run(facts.talos_facts(FakeTalos(down=('192.168.1.72',))))
    cps = dict((c['name'], c) for c in out['control_planes'])
    assert cps['cp-01']['address'] == '192.168.1.253' and cps['cp-01']['etcd_healthy'] is True
    assert cps['cp-01']['docs'] == [{'version': 'v1alpha1', 'machine': {'type': 'controlplane'}}]
    assert cps['cp-02']['etcd_healthy'] is False and cps['cp-02']['docs'] is None
    assert cps['cp-03']['is_learner'] is True and cps['cp-03']['etcd_healthy'] is False
    # voters cp-01 (healthy) and cp-02 (down): 1 of 2 is no majority
    assert out['etcd_quorum'] is False
    assert asyncio.run(facts.talos_facts(FakeTalos()))['etcd_quorum'] is True
