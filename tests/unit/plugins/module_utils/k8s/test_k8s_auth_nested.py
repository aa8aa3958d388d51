"""The nested k8s_auth dict: one argument spec (k8s_auth_suboptions) and one doc fragment (NESTED, NESTED_AUTH)."""

from __future__ import annotations

import yaml

from ansible_collections.tazlab.resilience.plugins.doc_fragments.k8s_auth import ModuleDocFragment
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import (
    K8S_AUTH_ARG_SPEC, k8s_argument_spec, k8s_auth_suboptions,
)
from ansible_collections.tazlab.resilience.plugins.modules import (
    ip_migration_plan, proxmox_fence, talos_disk_encryption, talos_secretbox,
)


def test_the_suboptions_are_the_connection_options_with_or_without_the_request_bounds():
    assert k8s_auth_suboptions() == k8s_argument_spec()
    assert k8s_auth_suboptions(request_bounds=False) == K8S_AUTH_ARG_SPEC
    spec = k8s_auth_suboptions(request_bounds=False)
    spec['host']['type'] = 'changed'             # a fresh dict each call: the shared spec is untouched
    assert K8S_AUTH_ARG_SPEC['host']['type'] == 'str'


def test_the_modules_nest_the_shared_spec():
    for module in (ip_migration_plan, talos_secretbox, talos_disk_encryption):
        assert module.argument_spec()['k8s_auth'] == dict(
            type='dict', aliases=['kubernetes'], options=k8s_auth_suboptions()), module.__name__
        assert 'kubernetes' not in module.argument_spec()
    assert proxmox_fence.argument_spec()['k8s_auth'] == dict(
        type='dict', default={}, options=k8s_auth_suboptions(request_bounds=False))


def _agree(doc, spec, where):
    assert sorted(doc) == sorted(spec), where
    for name, option in spec.items():
        sub = doc[name]
        assert sub['type'] == option['type'] and sub.get('default') == option.get('default'), (where, name)
        assert sub.get('aliases', []) == option.get('aliases', []) and sub.get('elements') == option.get('elements')
        assert not sub.get('required') and sub['description'], (where, name)
        if 'options' in option:
            _agree(sub['suboptions'], option['options'], '%s.%s' % (where, name))


def test_the_nested_fragments_document_those_specs():
    for fragment, spec in ((ModuleDocFragment.NESTED, k8s_auth_suboptions()),
                           (ModuleDocFragment.NESTED_AUTH, k8s_auth_suboptions(request_bounds=False))):
        doc = yaml.safe_load(fragment)['options']['k8s_auth']
        assert doc['type'] == 'dict'
        _agree(doc['suboptions'], spec, 'k8s_auth')


def test_the_hardening_modules_take_k8s_auth_from_the_environment(monkeypatch):
    """An AWX Kubernetes credential injects K8S_AUTH_*: an empty dict (under the old name too) means them."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://10.0.0.1:6443')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'tok')
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'False')
    for module in (talos_secretbox, talos_disk_encryption):
        result = ArgumentSpecValidator(module.argument_spec()).validate(
            {'control_planes': [], 'node': 'n', 'node_name': 'n', 'role': 'worker', 'state_dir': '/x',
             'kubernetes': {}})
        auth = result.validated_parameters['k8s_auth']
        assert (auth['host'], auth['api_key'], auth['validate_certs']) == ('https://10.0.0.1:6443', 'tok', False)
        assert 'tok' in result._no_log_values
