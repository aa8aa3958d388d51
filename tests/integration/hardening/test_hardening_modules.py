"""talos_secretbox and talos_disk_encryption (module main() in-process) against the lab world in scaled real time.

The world's clock runs at 0.01 real seconds per simulated second; waits in the modules are real seconds."""

from __future__ import annotations

import base64
import time

import pytest
from k8s_lab import run_module

from ansible_collections.tazlab.resilience.plugins.modules import talos_disk_encryption, talos_secretbox

pytestmark = pytest.mark.lab_world(time_scale=0.01)
SECRET = base64.b64encode(bytes(range(32))).decode()


def _cps(world):
    return [dict(address=world.nodes[n['name']].address, name=n['name']) for n in world.cluster_nodes()
            if n['role'] == 'control-plane']


def _disk_args(world, name, tmp_path, **extra):
    node = next(n for n in world.cluster_nodes() if n['name'] == name)
    args = dict(talosconfig=world.paths()['talosconfig'], node=world.nodes[name].address, node_name=name,
                role='controlplane' if node['role'] == 'control-plane' else 'worker',
                control_planes=[c['address'] for c in _cps(world)], encryption_key={'type': 'nodeID'},
                state_dir=str(tmp_path), maintenance_endpoint='%s:%s' % (world.nodes[name].address, world.talos.port),
                kubernetes={'kubeconfig': world.paths()['kubeconfig']}, poll_interval=0.05, wait_timeout=60,
                drain_timeout=30, timeout=10, connect_timeout=2)
    args.update(extra)
    return args


def _stored(world):
    view = world.secrets_at_rest
    return dict(world.call(_get(view)))


async def _get(view):
    return view.get('/registry/secrets/', prefix=True)


def test_secretbox_check_mode_rollout_idempotence_and_refusal(lab_world, tmp_path):
    from kubernetes import client, config
    core = client.CoreV1Api(config.new_client_from_config(config_file=lab_world.paths()['kubeconfig']))
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name='db'), data={'password': base64.b64encode(b'x').decode()})
    core.create_namespaced_secret('apps', secret)
    args = dict(talosconfig=lab_world.paths()['talosconfig'], control_planes=_cps(lab_world), secret=SECRET,
                kubernetes={'kubeconfig': lab_world.paths()['kubeconfig']}, poll_interval=0.05, wait_timeout=30)
    failed, res = run_module(talos_secretbox, args, check_mode=True)
    assert not failed and res['changed'] and [s['action'] for s in res['plan']] == ['set', 'set', 'set'], res
    assert all(s['dry_run_summary'].startswith('Dry run summary:') for s in res['plan'])
    assert SECRET not in str(res)
    assert all(v.startswith(b'k8s\x00') for v in _stored(lab_world).values())
    first = dict(args, node=_cps(lab_world)[0]['address'])          # one control plane alone: no rewrite yet
    failed, res = run_module(talos_secretbox, first)
    assert not failed and [a['node'] for a in res['applied']] == ['cp-01'] and res['rewritten'] == [], res
    assert res['verified_config'] == {'cp-01': True}
    failed, res = run_module(talos_secretbox, args)
    assert not failed and res['changed'], res
    assert [s['action'] for s in res['plan']] == ['keep', 'set', 'set']
    assert [a['node'] for a in res['applied']] == ['cp-02', 'cp-03']
    assert 'apps/db' in res['rewritten'] and all(res['verified_config'].values())
    stored = _stored(lab_world)
    assert stored and all(v.startswith(b'k8s:enc:secretbox:v1:key2:') for v in stored.values()), stored.keys()
    failed, res = run_module(talos_secretbox, args)
    assert not failed and not res['changed'] and res['rewritten'] == [], res          # idempotent
    other = dict(args, secret=base64.b64encode(b'z' * 32).decode())
    failed, res = run_module(talos_secretbox, other)
    assert failed and res['refused'] and 'siderolabs/talos#8702' in res['msg'], res


def test_a_worker_whose_replicas_have_no_healthy_copy_elsewhere_is_refused(lab_world, tmp_path):
    store = lab_world.kube.store
    reps = lab_world.call(_list(store, 'replicas.longhorn.io'))
    by_node = sorted({r['spec']['nodeID'] for r in reps})
    assert len(by_node) >= 3
    victim, others = by_node[0], by_node[1:]
    for name in others:                                # every other copy's node dies
        lab_world.fault('power-loss', name)
    assert lab_world.run_until(lambda: all(r['spec']['failedAt'] for r in store.list('replicas.longhorn.io')
                                           if r['spec']['nodeID'] in others), 300)
    before = lab_world.machine(victim).current
    failed, res = run_module(talos_disk_encryption, _disk_args(lab_world, victim, tmp_path))
    assert failed and res['refused'] and not res['changed'], res
    assert any('0 healthy replica(s) outside %s' % victim in r and 'without a healthy copy' in r
               for r in res['reasons']), res['reasons']
    assert lab_world.machine(victim).current == before                      # nothing applied
    assert not lab_world.kube.store.get('nodes', None, victim).get('spec', {}).get('unschedulable')


async def _list(store, res):
    return store.list(res)


def test_disk_encryption_check_mode_then_a_control_plane_and_a_worker_then_idempotent(lab_world, tmp_path):
    failed, res = run_module(talos_disk_encryption, _disk_args(lab_world, 'cp-02', tmp_path), check_mode=True)
    assert not failed and res['changed'] and res['dry_run_summary'].startswith('Dry run summary:'), res
    assert 'leave etcd' in res['plan'] and lab_world.machine('cp-02').volumes['EPHEMERAL'].fs == 'xfs'
    for name in ('cp-02', 'worker-new-02'):
        t0 = time.monotonic()
        failed, res = run_module(talos_disk_encryption, _disk_args(lab_world, name, tmp_path))
        assert not failed and res['changed'], res
        assert all(v['provider'] == 'luks2' and v['phase'] == 'ready' for v in res['volumes'].values())
        assert res['invariant_violations'] == []
        assert time.monotonic() - t0 < 60
        failed, res = run_module(talos_disk_encryption, _disk_args(lab_world, name, tmp_path))
        assert not failed and not res['changed'] and res.get('already_encrypted'), res
    status = lab_world.status()['etcd']
    assert status['quorum'] is True and status['quorum_events'] == []
    assert sum(1 for m in status['members'] if not m['is_learner']) == 3
