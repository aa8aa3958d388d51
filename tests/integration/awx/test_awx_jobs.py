"""The job templates run the way AWX runs them (awx_harness: credentials injected, the private data dir laid out,
ansible-runner transmit -> worker -> process) against the lab twin, with the collection installed from its
tarball as in the execution environment."""

from __future__ import annotations

import os

import pytest
import yaml

from awx_harness import KUBERNETES_BEARER_TOKEN
from k8s_lab import Lab

pytestmark = pytest.mark.lab_world(time_scale=0.05)
PROXMOX = 'Proxmox VE API token (tazlab.resilience)'
TALOS = 'Talos talosconfig (tazlab.resilience)'
KUBECONFIG = 'Kubernetes kubeconfig (tazlab.resilience)'
TRAEFIK = 'app.kubernetes.io/name=traefik'


def kubeconfig_credential(world):
    return (KUBECONFIG, {'kubeconfig': open(world.paths()['kubeconfig']).read()})


def proxmox_credential(world):
    px = world.proxmox
    return (PROXMOX, {'host': px.host, 'port': str(px.port), 'user': px.user, 'token_id': px.token_name,
                      'token_secret': px.token_secret, 'ca': open(px.cafile).read()})


def bearer_token_credential(world):
    api = world.kube.api
    return (KUBERNETES_BEARER_TOKEN['name'], {'host': api.url, 'bearer_token': api.admin_token, 'verify_ssl': True,
                                              'ssl_ca_cert': open(api.ca_path).read()})


def traefik_nodes(lab):
    return sorted(p['spec'].get('nodeName') for p in lab.running_pods('traefik', TRAEFIK))


def test_power_loss_then_the_dr_recover_job_template_brings_traefik_back(lab_world, controller):
    lab = Lab(lab_world)
    node = 'worker-new-03'
    assert traefik_nodes(lab) == [node]
    lab_world.fault('power-loss', node)
    job = controller.launch('tazlab dr_recover', [kubeconfig_credential(lab_world.world),
                                                  proxmox_credential(lab_world.world)],
                            answers={'tazlab_nodes': node, 'disaster_recovery_unhealthy_seconds': 0,
                                     'disaster_recovery_strategy': 'out_of_service'},
                            extra_vars={'disaster_recovery_allow_running': True})
    assert job.status == 'successful', job.stdout[-4000:]
    # the launch var outside the survey was dropped, as AWX does (ignored_fields)
    assert job.ignored_fields == {'disaster_recovery_allow_running': True}
    # the artifact AWX keeps: the set_stats timeline, each step of the recovery of that node
    timeline = job.artifacts['disaster_recovery_timeline']
    steps = [(e['step'], e['node']) for e in timeline]
    assert steps[0] == ('detect', '') and timeline[0]['detail']['remediate'] == [node]
    assert [s for s, n in steps if n == node][:1] == ['claim'] and ('fence', node) in steps, steps
    assert steps[-1][1] == node
    fence = next(e for e in timeline if e['step'] == 'fence')
    # proven off through the Proxmox credential, on the VM that carries the node's SMBIOS UUID
    uuid = lab.get('nodes', None, node)['status']['nodeInfo']['systemUUID']
    assert fence['detail']['fenced'] is True and fence['detail']['power_state_after'] == 'stopped'
    assert fence['detail']['smbios_uuid'].lower() == uuid.lower()
    # Traefik runs again, elsewhere; the dead node's VM is off (fenced through the Proxmox credential)
    assert traefik_nodes(lab) and node not in traefik_nodes(lab)
    assert lab_world.world.vm(node).status == 'stopped'
    # what AWX stores: secrets masked in job_env, no env/envvars on disk, credential files 0600
    assert job.job_env['PROXMOX_TOKEN_SECRET'] == '**********'
    assert job.job_env['K8S_AUTH_KUBECONFIG'].endswith(tuple('0123456789abcdefghijklmnopqrstuvwxyz_'))
    env_dir = os.path.join(job.private_data_dir, 'env')
    assert 'envvars' not in os.listdir(env_dir)
    for name in os.listdir(env_dir):
        assert os.stat(os.path.join(env_dir, name)).st_mode & 0o077 == 0, name
    extravars = open(os.path.join(env_dir, 'extravars')).read()
    assert "tazlab_nodes: !unsafe 'worker-new-03'" in extravars
    assert lab_world.world.proxmox.token_secret not in extravars
    assert os.path.exists(os.path.join(job.private_data_dir, 'artifacts', '1', 'job_events'))


def test_the_ip_migrate_job_template_end_to_end_with_the_built_in_kubernetes_credential(lab_world, controller,
                                                                                        tmp_path):
    world = lab_world.world
    n = world.machine('cp-01').address.rsplit('.', 1)[0]
    kept = tmp_path / 'kept'
    kept.mkdir()
    template = controller.config['controller_templates'][2]
    assert template['name'] == 'tazlab ip_migrate'
    # the admin's knobs for the lab (20 times faster than real time), and a volume for the full files
    overrides = {'extra_vars': dict(template['extra_vars'], ip_migration_poll_interval=1,
                                    ip_migration_stickiness_period=2, ip_migration_try_timeout=1200,
                                    ip_migration_client_files_dir=str(kept))}
    job = controller.launch(
        'tazlab ip_migrate',
        [(TALOS, {'talosconfig': open(world.paths()['talosconfig']).read()}), bearer_token_credential(world)],
        answers={'tazlab_moves': '# the seed move\ncp-01 {0}.253/8 kubernetes_address=192.168.1.253\n'.format(n),
                 'tazlab_vip': n + '.250'},
        template_overrides=overrides)
    assert job.status == 'successful', job.stdout[-5000:]
    assert world.machine('cp-01').address == n + '.253'
    assert job.job_env['K8S_AUTH_API_KEY'] == '**********' and job.job_env['K8S_AUTH_VERIFY_SSL'] == 'True'
    timeline = job.artifacts['ip_migration_timeline']
    assert ('confirm', 'cp-01') in [(e['step'], e['node']) for e in timeline]
    assert job.artifacts['ip_migration_positions']['cp-01'] == n + '.253'
    # the rewritten talosconfig, kept as the job's artifact without its keys ...
    (client,) = job.artifacts['ip_migration_client_files']
    assert client['kind'] == 'talosconfig'
    ctx = client['content']['contexts'][client['content']['context']]
    assert sorted(e.rsplit(':', 1)[0] for e in ctx['endpoints']) == sorted([n + '.253', n + '.72', n + '.73'])
    assert not set(ctx) & {'ca', 'crt', 'key'}
    secret_key = yaml.safe_load(open(world.paths()['talosconfig']))['contexts']
    assert all(c['key'] not in str(job.artifacts) for c in secret_key.values())
    # ... and in full in the directory the admin named (it outlives the execution environment)
    (written,) = os.listdir(kept)
    full = yaml.safe_load((kept / written).read_text())
    assert full['contexts'][full['context']]['endpoints'] == ctx['endpoints']
    assert {'ca', 'crt', 'key'} <= set(full['contexts'][full['context']])
    assert oct((kept / written).stat().st_mode & 0o777) == '0o600'


def test_check_mode_health_check_reads_only_and_a_missing_credential_fails_clearly(lab_world, controller):
    lab = Lab(lab_world)
    world = lab_world.world
    before = lab.requests()
    health = controller.launch('tazlab health check', [kubeconfig_credential(world), proxmox_credential(world)])
    assert health.status == 'successful', health.stdout[-3000:]
    assert [e['step'] for e in health.artifacts['disaster_recovery_timeline']] == ['detect']
    assert lab.writes_since(before) == {}

    # the Proxmox credential is not attached: the first Proxmox read fails and says what is missing,
    # nothing is changed, and the workflow's failure branch reports it
    node = 'worker-new-03'
    lab_world.fault('power-loss', node)
    before = lab.requests()
    steps = controller.run_workflow('tazlab recover and restore', {
        'tazlab dr_recover': [kubeconfig_credential(world)], 'tazlab notify': []},
        answers={'tazlab_nodes': node})
    assert [step[0] for step in steps] == ['recover', 'notify']
    recover, notify = steps[0][1], steps[1][1]
    assert recover.status == 'failed'
    failure = recover.failed_tasks()[0]
    assert len(recover.failed_tasks()) == 1, [(f['task'], f['res'].get('msg')) for f in recover.failed_tasks()]
    assert failure['task'] == 'Read the power state of every VM (one listing)'
    assert 'missing required arguments: api_host' in failure['res']['msg']
    assert lab.writes_since(before) == {}
    # the report says what state the failure left: nothing done, nothing refused (no plan was made)
    assert recover.artifacts == {'disaster_recovery_timeline': [], 'disaster_recovery_refused': [],
                                 'disaster_recovery_refused_count': 0}
    assert notify.status == 'successful', notify.stdout[-3000:]
    assert 'tazlab.resilience: a run of tazlab recover and restore failed' in notify.stdout
    assert 'steps done: none; last: none recorded' in notify.stdout
