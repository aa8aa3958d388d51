"""playbooks/vars/awx_configuration.yml as AWX would take it: every credential type, survey, reference and
schedule accepted by AWX's own rules; the credential types inject what the modules read; surveys refuse bad
answers before anything runs."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from awx_harness import (KUBERNETES_BEARER_TOKEN, LaunchRefused, by_name, inject_credential, launch_extra_vars,
                         safe_dump, validate_credential_type, validate_survey_spec)
from conftest import ROOT

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import AUTH_ENV
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (ConnectionSettings,
                                                                                     proxmox_auth_argument_spec)

PROXMOX = 'Proxmox VE API token (tazlab.resilience)'
TALOS = 'Talos talosconfig (tazlab.resilience)'
KUBECONFIG = 'Kubernetes kubeconfig (tazlab.resilience)'


def env_names(spec):
    return set(n for opt in spec.values() if opt.get('fallback') for n in opt['fallback'][1])


def test_every_credential_type_is_accepted_by_awx(awx_configuration):
    types = awx_configuration['controller_credential_types']
    assert sorted(t['name'] for t in types) == sorted([PROXMOX, TALOS, KUBECONFIG])
    for ctype in types:
        assert validate_credential_type(ctype) == [], ctype['name']
    # secrets are marked secret
    secrets = dict((t['name'], sorted(f['id'] for f in t['inputs']['fields'] if f.get('secret'))) for t in types)
    assert secrets == {PROXMOX: ['token_secret'], TALOS: ['talosconfig'], KUBECONFIG: ['kubeconfig']}


def test_the_validator_refuses_what_awx_refuses(awx_configuration):
    bad = yaml.safe_load('''
name: bad
kind: ssh
inputs:
  fields:
    - {id: tower, label: x}
    - {id: 1x, label: y}
    - {id: flag, label: f, type: boolean, secret: true}
  required: [nope]
injectors:
  env: {ANSIBLE_CONFIG: x, PATH: y, X: "{{ undefined_field }}"}
  file: {template: a, template.b: c}
''')
    errors = ' | '.join(validate_credential_type(bad))
    for expected in ("Must be 'cloud' or 'net'", "'tower' is a reserved field name", '1x is an invalid variable name',
                     'secret is only allowed on string fields', "'nope' is not a field",
                     'ANSIBLE_CONFIG may affect Ansible configuration', 'PATH is not allowed',
                     'uses an undefined field', 'Must use multi-file syntax'):
        assert expected in errors, expected


def test_credential_types_inject_exactly_what_the_modules_read(awx_configuration, tmp_path):
    proxmox_env = env_names(proxmox_auth_argument_spec())
    k8s_env = set(n for names in AUTH_ENV.values() for n in names)
    px = awx_configuration['controller_credential_types']
    injected = dict((t['name'], set(t['injectors']['env'])) for t in px)
    assert injected[PROXMOX] <= proxmox_env
    assert injected[PROXMOX] >= {'PROXMOX_HOST', 'PROXMOX_PORT', 'PROXMOX_USER', 'PROXMOX_TOKEN_ID',
                                 'PROXMOX_TOKEN_SECRET', 'PROXMOX_CA_PATH', 'PROXMOX_VALIDATE_CERTS'}
    assert injected[KUBECONFIG] == {'K8S_AUTH_KUBECONFIG'} and injected[KUBECONFIG] <= k8s_env
    assert injected[TALOS] == {'TALOSCONFIG'}
    # AWX's own Kubernetes bearer-token credential injects names the modules read too
    assert {'K8S_AUTH_HOST', 'K8S_AUTH_API_KEY', 'K8S_AUTH_VERIFY_SSL', 'K8S_AUTH_SSL_CA_CERT'} <= k8s_env
    assert KUBERNETES_BEARER_TOKEN['kind'] == 'kubernetes'

    ctype = by_name(px, PROXMOX)
    base = {'host': 'pve1.example.org', 'user': 'fence@pve', 'token_id': 'dr', 'token_secret': 's3cr3t-uuid'}
    # no CA and nothing else: TLS verified with the system CAs, PVE's default port
    out = inject_credential(ctype, dict(base), str(tmp_path / 'a'))
    assert out.env['PROXMOX_CA_PATH'] == '' and out.env['PROXMOX_VALIDATE_CERTS'] == 'true'
    assert out.env['PROXMOX_PORT'] == '8006' and out.env['PROXMOX_TOKEN_SECRET'] == 's3cr3t-uuid'
    assert out.safe_env['PROXMOX_TOKEN_SECRET'] == '**********'
    settings = ConnectionSettings(api_host=out.env['PROXMOX_HOST'], api_user=out.env['PROXMOX_USER'],
                                  api_token_id=out.env['PROXMOX_TOKEN_ID'],
                                  api_token_secret=out.env['PROXMOX_TOKEN_SECRET'],
                                  ca_path=out.env['PROXMOX_CA_PATH'], validate_certs=True)
    assert settings.verify is True and settings.token_id == 'fence@pve!dr'
    # a CA: a 0600 file under env/, named by its path inside the execution environment
    out = inject_credential(ctype, dict(base, ca='-----BEGIN CERTIFICATE-----\n...', port='443'),
                            str(tmp_path / 'b'), container_root='/runner')
    path = out.files['template.ca']
    assert oct(os.stat(path).st_mode & 0o777) == '0o600' and open(path).read().startswith('-----BEGIN')
    assert out.env['PROXMOX_CA_PATH'] == '/runner/env/' + os.path.basename(path)
    assert out.env['PROXMOX_PORT'] == '443'
    out = inject_credential(ctype, dict(base, skip_tls_verify=True), str(tmp_path / 'c'))
    assert out.env['PROXMOX_VALIDATE_CERTS'] == 'false'
    with pytest.raises(LaunchRefused, match='token_secret required'):
        inject_credential(ctype, {'host': 'h', 'user': 'u', 'token_id': 't'}, str(tmp_path / 'd'))


def test_every_survey_is_accepted_and_every_reference_resolves(awx_configuration):
    cfg = awx_configuration

    def names(key):
        return set(i['name'] for i in cfg[key])
    credentials = set(cfg['tazlab_awx_credentials'].values())
    for jt in cfg['controller_templates']:
        if jt.get('survey_enabled'):
            assert validate_survey_spec(jt['survey_spec']) == [], jt['name']
        assert jt['inventory'] in names('controller_inventories')
        assert jt['project'] in names('controller_projects')
        assert jt['execution_environment'] in names('controller_execution_environments')
        assert set(jt['credentials']) <= credentials, jt['name']
        assert os.path.isfile(os.path.join(ROOT, jt['playbook'])), jt['playbook']
        assert jt['job_type'] in ('run', 'check')
        # no launch-time variables outside the survey (EDA's ansible_eda and anything else are dropped)
        assert jt.get('ask_variables_on_launch') is False
    for wf in cfg['controller_workflows']:
        assert validate_survey_spec(wf['survey_spec']) == []
        idents = set(n['identifier'] for n in wf['workflow_nodes'])
        for node in wf['workflow_nodes']:
            ujt = node['unified_job_template']
            if ujt['type'] == 'job_template':
                assert ujt['name'] in names('controller_templates')
            else:
                assert ujt['type'] == 'workflow_approval' and ujt['timeout'] > 0
            for edge in (node.get('related') or {}).values():
                assert set(c['identifier'] for c in edge) <= idents
    # recover -> (success) approval -> restore; recover or restore failing -> notify
    wf = by_name(cfg['controller_workflows'], 'tazlab recover and restore')
    nodes = dict((n['identifier'], n) for n in wf['workflow_nodes'])
    assert nodes['recover']['related'] == {'success_nodes': [{'identifier': 'node repaired'}],
                                           'failure_nodes': [{'identifier': 'notify'}]}
    assert nodes['node repaired']['related'] == {'success_nodes': [{'identifier': 'restore'}]}
    assert nodes['restore']['related'] == {'failure_nodes': [{'identifier': 'notify'}]}
    activation = cfg['eda_rulebook_activations'][0]
    assert activation['rulebook'] == 'auto_recover.yml'
    assert activation['decision_environment'] in names('eda_decision_environments')
    assert activation['project'] in names('eda_projects')
    rulebook = os.path.join(ROOT, 'extensions', 'eda', 'rulebooks', activation['rulebook'])
    if os.path.exists(rulebook):   # the rulebook's job templates must be ours, with an organization
        for ruleset in yaml.safe_load(open(rulebook)):
            for rule in ruleset['rules']:
                for action in rule.get('actions') or [rule.get('action')]:
                    for kind in ('run_job_template', 'run_workflow_template'):
                        if kind in (action or {}):
                            key = 'controller_templates' if kind == 'run_job_template' else 'controller_workflows'
                            assert action[kind]['name'] in names(key), action[kind]['name']
                            assert action[kind].get('organization') == cfg['tazlab_awx_organization']


def rrule_problems(rrule):
    """SchedulePreviewSerializer.validate_rrule (the checks this data can trip)."""
    problems = []
    if len(re.findall(r'DTSTART', rrule)) != 1:
        problems.append('exactly one DTSTART')
    if not re.search(r'DTSTART;TZID=[^:]+:\d{8}T\d{6}Z?\b|DTSTART:\d{8}T\d{6}Z\b', rrule):
        problems.append('DTSTART needs a TZID or Z')
    rules = re.findall(r'RRULE:(\S+)', rrule)
    if not rules:
        problems.append('at least one RRULE')
    for rule in rules:
        if 'INTERVAL=' not in rule:
            problems.append('INTERVAL in every rule')
        if 'FREQ=SECONDLY' in rule or re.search(r'BYDAY=[+-]?\d', rule) or ('COUNT=' in rule and 'UNTIL=' in rule):
            problems.append('unsupported rule ' + rule)
    if 'EXDATE' in rrule or 'RDATE' in rrule:
        problems.append('EXDATE/RDATE')
    return problems


def test_the_schedule_runs_the_read_only_health_check(awx_configuration):
    naive = rrule_problems('DTSTART:20260101T030000 RRULE:FREQ=DAILY')
    assert naive == ['DTSTART needs a TZID or Z', 'INTERVAL in every rule']
    (schedule,) = awx_configuration['controller_schedules']
    assert rrule_problems(schedule['rrule']) == []
    jt = by_name(awx_configuration['controller_templates'], schedule['unified_job_template'])
    assert jt['job_type'] == 'check' and jt['playbook'] == 'playbooks/dr_recover.yml'


def test_out_of_range_and_missing_answers_are_refused_before_launch(awx_configuration, controller):
    cfg = awx_configuration
    with pytest.raises(LaunchRefused) as info:
        controller.launch('tazlab dr_recover', [], answers={'disaster_recovery_unhealthy_seconds': -5,
                                                            'disaster_recovery_strategy': 'force'})
    assert info.value.errors == [
        "'disaster_recovery_unhealthy_seconds' value -5 is too small (must be at least 0).",
        "Value force for 'disaster_recovery_strategy' expected to be one of ['out_of_service', 'direct'].",
    ]
    with pytest.raises(LaunchRefused) as info:
        controller.launch('tazlab dr_recover', [], answers={'disaster_recovery_unhealthy_seconds': '300',
                                                            'disaster_recovery_strategy': 'direct'})
    assert info.value.errors == ["Value 300 for 'disaster_recovery_unhealthy_seconds' expected to be an integer."]
    with pytest.raises(LaunchRefused) as info:
        controller.launch('tazlab ip_migrate', [], answers={'tazlab_vip': '192.168.1.250'})
    assert info.value.errors == ["'tazlab_moves' value missing"]
    with pytest.raises(LaunchRefused, match='is too large'):
        controller.launch('tazlab dr_restore', [], answers={'disaster_recovery_restore_timeout': 7201})
    with pytest.raises(LaunchRefused) as info:
        controller.launch('tazlab dr_recover', [], answers={'disaster_recovery_strategy': 'direct'})
    assert info.value.errors == ["'disaster_recovery_unhealthy_seconds' value missing"]
    # refused before anything: no job, no private data dir
    assert controller.jobs == 0 and os.listdir(controller.workdir) == []

    # defaults fill what is not answered; variables outside the survey are dropped (ignored_fields)
    extra, ignored = launch_extra_vars(by_name(cfg['controller_templates'], 'tazlab dr_recover'),
                                       {'tazlab_nodes': 'worker-new-03', 'disaster_recovery_unhealthy_seconds': 300,
                                        'disaster_recovery_strategy': 'out_of_service'},
                                       {'disaster_recovery_allow_running': True})
    assert ignored == {'disaster_recovery_allow_running': True}
    assert extra['disaster_recovery_max_unhealthy'] == '40%' and extra['tazlab_nodes'] == 'worker-new-03'
    assert 'disaster_recovery_allow_running' not in extra
    # survey answers are written !unsafe (never templated); the template's own Jinja is not
    dumped = safe_dump(dict(extra, tazlab_nodes="{{ lookup('pipe', 'id') }}"),
                       by_name(cfg['controller_templates'], 'tazlab dr_recover')['extra_vars'])
    assert "tazlab_nodes: !unsafe '{{ lookup(''pipe'', ''id'') }}'" in dumped
    assert "disaster_recovery_nodes: '{{ tazlab_nodes" in dumped
