"""talos_provision's run against a scripted Talos cluster: maintenance -> apply -> install -> bootstrap once ->
etcd -> ready -> kubeconfig -> Kubernetes; reruns, pinning, a run after a failure, a joining control plane."""

import asyncio
import base64
import gzip
import os
import tarfile

import pytest
import yaml

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import secrets as ts
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosConfigError, TalosError, TalosTimeout, TalosTLSError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import common_pb2
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.provision import (
    Provisioner, kubeconfig_ok, make_plan, normalise_nodes, poll, run_provision)
from fake_clock import FakeClock

BUNDLE = ts.generate_bundle()
K8S_CRT = ts.pem_of(BUNDLE, 'k8s', 'crt')
K8S_KEY = ts.pem_of(BUNDLE, 'k8s', 'key')


def config(role):
    doc = {'version': 'v1alpha1', 'machine': {'type': role}, 'cluster': {'ca': {'crt': ts.b64(K8S_CRT)}}}
    return yaml.safe_dump(doc)


def kubeconfig_text(server='https://10.0.0.250:6443', days=365, ca=K8S_CRT, key=K8S_KEY):
    crt, k = ts.issue_client_cert(ca, key, org='system:masters', cn='admin', days=days)
    return yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Config',
                           'clusters': [{'name': 'c', 'cluster': {'server': server,
                                                                  'certificate-authority-data': ts.b64(ca)}}],
                           'users': [{'name': 'admin@c', 'user': {'client-certificate-data': ts.b64(crt),
                                                                  'client-key-data': ts.b64(k)}}],
                           'contexts': [{'name': 'admin@c', 'context': {'cluster': 'c', 'user': 'admin@c'}}],
                           'current-context': 'admin@c'})


def archive(content):
    info = tarfile.TarInfo('kubeconfig')
    info.size = len(content)
    info.mode = 0o600
    return gzip.compress(info.tobuf(tarfile.USTAR_FORMAT) + content)


class World(object):
    """Nodes by address; install takes `install_polls` probes; a control plane sits in Booting until etcd runs."""

    def __init__(self, cps=3, workers=2, install_polls=2):
        self.nodes = {}
        for i in range(cps):
            self.add('cp-%02d' % (i + 1), 'controlplane')
        for i in range(workers):
            self.add('worker-%02d' % (i + 1), 'worker')
        self.install_polls = install_polls
        self.bootstraps = []
        self.applies = []
        self.calls = []
        self.kubeconfig_calls = 0

    def add(self, name, role, stage='maintenance'):
        address = '10.0.0.%d' % (len(self.nodes) + 10)
        self.nodes[address] = dict(name=name, role=role, stage=stage, polls=0, etcd=False, data=False)

    def node(self, endpoint):
        n = self.nodes.get(endpoint)
        if n is None or n['stage'] == 'off':
            raise TalosUnreachable('Talos endpoint %s is unreachable' % endpoint)
        return n

    def cp_running(self):
        return any(n['etcd'] for n in self.nodes.values())

    def tick(self, n):
        if n['stage'] == 'installing':
            n['polls'] += 1
            if n['polls'] > self.install_polls:
                n['stage'] = 'booting'
        if n['stage'] == 'booting' and n['role'] == 'controlplane' and self.cp_running() and not n['etcd']:
            n['etcd'] = n['data'] = True   # joins as learner, promoted (collapsed)
        if n['stage'] == 'booting' and (n['etcd'] or (n['role'] == 'worker' and self.cp_running())):
            n['stage'] = 'running'

    def spec(self):
        return [dict(name=n['name'], role=n['role'], address=a, config=config(n['role']))
                for a, n in self.nodes.items()]


class Secure(object):
    def __init__(self, world):
        self.w = world

    async def machine_status(self, endpoint=None, retries=None):
        n = self.w.node(endpoint)
        self.w.calls.append(('secure.MachineStatus', n['name']))
        if n['stage'] == 'maintenance':
            raise TalosTLSError('TLS verification of Talos endpoint %s failed: self-signed certificate' % endpoint)
        if n['stage'] == 'installing':
            self.w.tick(n)
            raise TalosUnreachable('rebooting')
        if n['role'] == 'worker' and not self.w.cp_running():
            raise TalosTLSError('worker has no certificate yet (trustd)')
        self.w.tick(n)
        return dict(stage=n['stage'], ready=n['stage'] == 'running', unmet_conditions=[])

    async def bootstrap(self, endpoint=None):
        n = self.w.node(endpoint)
        self.w.bootstraps.append(n['name'])
        if n['data']:
            raise TalosApiError('etcd data directory is not empty', status='ALREADY_EXISTS')
        n['etcd'] = n['data'] = True

    def _members(self):
        return [dict(id=i + 1, hostname=n['name'], peer_urls=[], client_urls=['https://%s:2379' % a], is_learner=False)
                for i, (a, n) in enumerate(self.w.nodes.items()) if n['etcd']]

    async def etcd_member_list(self, endpoint=None, query_local=False):
        n = self.w.node(endpoint)
        for other in self.w.nodes.values():  # time passes: booted control planes join on their own
            if other['stage'] == 'booting':
                self.w.tick(other)
        if not n['etcd']:
            raise TalosApiError('etcd is not running', status='UNAVAILABLE')
        return self._members()

    async def etcd_status(self, endpoint=None, retries=None):
        n = self.w.node(endpoint)
        if not n['etcd']:
            raise TalosApiError('etcd is not running', status='UNAVAILABLE')
        return dict(member_id=1, errors=[])

    async def server_stream(self, path, request, reply_type, endpoint=None, **kw):
        n = self.w.node(endpoint)
        assert path.endswith('/Kubeconfig') and n['role'] == 'controlplane'
        self.w.kubeconfig_calls += 1
        return [common_pb2.Data(bytes=archive(kubeconfig_text(server='https://127.0.0.1:6443').encode()))]


class Insecure(object):
    def __init__(self, world):
        self.w = world

    async def machine_status(self, endpoint=None, retries=None):
        n = self.w.node(endpoint)
        if n['stage'] != 'maintenance':
            raise TalosTLSError('client certificate required')
        return dict(stage='maintenance', ready=False, unmet_conditions=[])

    async def apply_configuration(self, data, mode='auto', endpoint=None, **kw):
        n = self.w.node(endpoint)
        assert n['stage'] == 'maintenance' and mode == 'auto'
        assert yaml.safe_load(data)['machine']['type'] == n['role']
        self.w.applies.append(n['name'])
        n['stage'], n['polls'] = 'installing', 0
        return dict(mode='reboot', mode_details='', warnings=[])


class K8s(object):
    def __init__(self, world):
        self.w = world

    def list_nodes(self):
        return {'items': [{'metadata': {'name': n['name']},
                           'status': {'conditions': [{'type': 'Ready', 'status': 'True'}]}}
                          for n in self.w.nodes.values() if n['stage'] == 'running']}

    def get_endpoints(self, namespace, name):
        return {'subsets': [{'addresses': [{'ip': a} for a, n in self.w.nodes.items() if n['etcd']]}]}


def params(world, tmp_path, **kw):
    p = dict(nodes=world.spec(), kubeconfig_dest=str(tmp_path / 'kubeconfig'),
             kubeconfig_server='https://10.0.0.250:6443', poll_interval=0.001, maintenance_timeout=1,
             install_timeout=5, etcd_timeout=5, ready_timeout=5, kubernetes_timeout=5, wait_kubernetes=True)
    p.update(kw)
    return p


def run(world, p, check_mode=False, fingerprint=None):
    return asyncio.run(run_provision(p, Secure(world), Insecure(world), lambda path: K8s(world),
                                     check_mode=check_mode, fingerprint=fingerprint or (lambda ep: 'FP-' + ep)))


def test_from_maintenance_to_cluster_then_rerun_changes_nothing(tmp_path):
    w = World()
    p = params(w, tmp_path)
    first = run(w, p)
    assert first['changed'] is True
    assert sorted(w.applies) == ['cp-01', 'cp-02', 'cp-03', 'worker-01', 'worker-02']
    assert w.bootstraps == ['cp-01']
    assert first['etcd_members'] == ['cp-01', 'cp-02', 'cp-03']
    assert first['nodes_ready'] == sorted(n['name'] for n in w.nodes.values())
    assert len(first['kubernetes_endpoints']) == 3
    assert first['fingerprints']['cp-01'] == 'FP-10.0.0.10'
    dest = p['kubeconfig_dest']
    assert os.stat(dest).st_mode & 0o777 == 0o600
    doc = yaml.safe_load(open(dest).read())
    assert doc['clusters'][0]['cluster']['server'] == 'https://10.0.0.250:6443'

    second = run(w, params(w, tmp_path))
    assert second['changed'] is False
    assert w.bootstraps == ['cp-01'] and len(w.applies) == 5
    assert w.kubeconfig_calls == 1  # the file is still good: no new certificate minted


def test_check_mode_is_the_plan_without_any_write(tmp_path):
    w = World()
    out = run(w, params(w, tmp_path), check_mode=True)
    assert out['changed'] is True
    assert out['plan']['apply'] == ['cp-01', 'cp-02', 'cp-03', 'worker-01', 'worker-02']
    assert out['plan']['bootstrap'] == 'cp-01'
    assert out['plan']['kubeconfig']['write'] is True
    assert w.applies == [] and w.bootstraps == [] and not os.path.exists(str(tmp_path / 'kubeconfig'))


def test_a_run_after_a_failure_carries_on_and_bootstraps_once(tmp_path):
    w = World()
    # The previous run applied every config and died before Bootstrap.
    for n in w.nodes.values():
        n['stage'] = 'booting'
    out = run(w, params(w, tmp_path))
    assert w.applies == [] and w.bootstraps == ['cp-01']
    # Workers cannot answer before a control plane's trustd signs their certificate: pending, not down.
    assert out['plan']['states'] == {'cp-01': 'configured', 'cp-02': 'configured', 'cp-03': 'configured',
                                     'worker-01': 'pending', 'worker-02': 'pending'}
    assert out['nodes_ready'] == ['cp-01', 'cp-02', 'cp-03', 'worker-01', 'worker-02']


def test_already_exists_is_done(tmp_path):
    w = World()
    for n in w.nodes.values():
        n['stage'] = 'booting'
    first_cp = next(n for n in w.nodes.values() if n['name'] == 'cp-01')
    first_cp['data'] = True   # etcd has data but does not answer yet
    # A member list needs etcd running: nobody answers, so the plan bootstraps; Talos answers AlreadyExists, which
    # is taken as done (the run goes on to wait for etcd, which this scripted etcd never starts).
    with pytest.raises(TalosError, match='etcd with 3 voting members'):
        run(w, params(w, tmp_path, etcd_timeout=0.2))
    assert w.bootstraps == ['cp-01']


def test_scale_out_applies_only_the_new_worker_and_a_new_cp_joins_without_bootstrap(tmp_path):
    w = World()
    run(w, params(w, tmp_path))
    w.add('worker-03', 'worker')
    out = run(w, params(w, tmp_path))
    assert out['plan']['apply'] == ['worker-03'] and out['plan']['bootstrap'] is None
    assert w.bootstraps == ['cp-01']
    # A replacement control plane (its etcd member removed before): joins, no second bootstrap.
    dead = next(a for a, n in w.nodes.items() if n['name'] == 'cp-02')
    del w.nodes[dead]
    w.nodes['10.0.0.99'] = dict(name='cp-02', role='controlplane', stage='maintenance', polls=0, etcd=False, data=False)
    out = run(w, params(w, tmp_path))
    assert out['plan']['apply'] == ['cp-02'] and w.bootstraps == ['cp-01']
    assert out['etcd_members'] == ['cp-01', 'cp-02', 'cp-03']


def test_pinned_fingerprint_mismatch_sends_no_config(tmp_path):
    w = World(cps=1, workers=0)
    p = params(w, tmp_path, maintenance_fingerprints={'cp-01': 'expected='})
    with pytest.raises(TalosTLSError, match='not the pinned expected='):
        run(w, p)
    assert w.applies == []
    run(w, params(w, tmp_path, maintenance_fingerprints={'cp-01': 'FP-10.0.0.10'}))
    assert w.applies == ['cp-01']


def test_a_node_that_never_answers_stops_the_run_before_any_change(tmp_path):
    w = World(cps=3, workers=1)
    w.nodes['10.0.0.11']['stage'] = 'off'   # cp-02
    with pytest.raises(TalosError, match='cp-02 answer neither'):
        run(w, params(w, tmp_path))
    assert w.applies == [] and w.bootstraps == []
    # On a running cluster a worker that does not answer stops the run before the new one gets its config.
    w.nodes['10.0.0.11']['stage'] = 'maintenance'
    run(w, params(w, tmp_path))
    w.add('worker-02', 'worker')
    w.nodes['10.0.0.13']['stage'] = 'off'   # worker-01
    applies = list(w.applies)
    with pytest.raises(TalosError, match='worker-01 answer neither'):
        run(w, params(w, tmp_path))
    assert w.applies == applies


def test_a_worker_that_stays_down_before_bootstrap_fails_at_its_wait(tmp_path):
    w = World(cps=1, workers=1)
    w.nodes['10.0.0.11']['stage'] = 'off'   # worker-01: before etcd it cannot answer anyway
    with pytest.raises(TalosError, match='worker-01 RUNNING and ready not reached'):
        run(w, params(w, tmp_path, ready_timeout=0.2))
    assert w.bootstraps == ['cp-01']


def test_no_bootstrap_while_a_control_plane_is_down_even_if_check_reports(tmp_path):
    w = World(cps=3, workers=0)
    w.nodes['10.0.0.12']['stage'] = 'off'
    states = {'cp-01': 'maintenance', 'cp-02': 'maintenance', 'cp-03': 'down'}
    nodes, boot = normalise_nodes(w.spec())
    plan = make_plan(nodes, states, boot, {}, dict(write=False))
    assert plan['bootstrap'] is None and 'cp-03' in plan['bootstrap_reason']


def test_input_is_checked_first():
    with pytest.raises(TalosConfigError, match='no control plane'):
        normalise_nodes([dict(name='w', role='worker', address='10.0.0.1', config=config('worker'))])
    with pytest.raises(TalosConfigError, match='its config has machine.type worker'):
        normalise_nodes([dict(name='c', role='controlplane', address='10.0.0.1', config=config('worker'))])
    with pytest.raises(TalosConfigError, match='bootstrap_node w'):
        normalise_nodes([dict(name='c', role='controlplane', address='10.0.0.1', config=config('controlplane')),
                         dict(name='w', role='worker', address='10.0.0.2', config=config('worker'))], 'w')


def test_kubeconfig_ok_rules():
    good = kubeconfig_text()
    assert kubeconfig_ok(good, K8S_CRT, 'https://10.0.0.250:6443')[0] is True
    assert 'server is' in kubeconfig_ok(good, K8S_CRT, 'https://10.0.0.251:6443')[1]
    assert kubeconfig_ok(kubeconfig_text(days=10), K8S_CRT)[0] is False
    other = ts.generate_bundle()
    assert 'another cluster CA' in kubeconfig_ok(good, ts.pem_of(other, 'k8s', 'crt'))[1]
    assert kubeconfig_ok('not: [a kubeconfig', K8S_CRT)[0] is False
    assert base64.b64decode(yaml.safe_load(good)['clusters'][0]['cluster']['certificate-authority-data']) == K8S_CRT


# -- the waits ---------------------------------------------------------------------------------------------

def test_poll_times_out_with_the_last_value():
    calls = []

    async def never():
        calls.append(1)
        return 'stage booting %d' % len(calls), False

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TalosTimeout) as info:
            await poll('etcd', never, 0.2, 0.05)
        return info.value, loop.time() - t0
    err, took = asyncio.run(main())
    assert str(err) == 'etcd not reached within 0.2s (last: stage booting %d)' % len(calls)
    assert 0.2 <= took < 2 and 3 <= len(calls) <= 6


class _Kube(object):
    """Ready nodes and kubernetes endpoints from a script of rounds; an exception in the script is raised."""

    def __init__(self, rounds):
        self.rounds = list(rounds)
        self.current = None

    def list_nodes(self):
        self.current = self.rounds.pop(0) if self.rounds else self.current
        if isinstance(self.current, Exception):
            raise self.current
        return {'items': [{'metadata': {'name': n}, 'status': {'conditions': [{'type': 'Ready', 'status': 'True'}]}}
                          for n in self.current[0]]}

    def get_endpoints(self, namespace, name):
        return {'subsets': [{'addresses': [{'ip': a} for a in self.current[1]]}]}


def _wait_kubernetes(rounds, timeout=10):
    nodes = [{'name': 'cp-01'}, {'name': 'w-01'}]
    kube = _Kube(rounds)
    prov = Provisioner({'kubeconfig_dest': '/nowhere', 'kubernetes_timeout': timeout, 'poll_interval': 2}, None, None,
                       lambda path: kube)
    clock = FakeClock()
    return prov, clock, lambda: prov.wait_kubernetes(nodes, [{'name': 'cp-01'}], clock.sleep, clock)


def test_wait_kubernetes_rides_out_api_errors_until_ready():
    prov, clock, wait = _wait_kubernetes([K8sError('unavailable', 'connection refused'), (['cp-01'], []),
                                          (['cp-01', 'w-01'], ['10.0.0.10'])])
    assert wait() == (['cp-01', 'w-01'], ['10.0.0.10'])
    assert clock.now == 4 and prov.steps[-1]['step'] == 'kubernetes'


def test_wait_kubernetes_times_out_with_the_last_reading_or_error():
    prov, clock, wait = _wait_kubernetes([(['cp-01'], ['10.0.0.10'])], timeout=5)
    with pytest.raises(TalosTimeout) as info:
        wait()
    assert str(info.value) == "Kubernetes not ready within 5s (last: not Ready: ['w-01']; kubernetes endpoints: " \
        "['10.0.0.10'])"
    assert clock.now == 5
    prov, clock, wait = _wait_kubernetes([(['cp-01'], []), K8sError('unavailable', 'connection refused')], timeout=5)
    with pytest.raises(TalosTimeout, match=r'within 5s \(last: connection refused\)'):
        wait()
