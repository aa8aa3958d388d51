"""The nested proxmox_auth dict: one argument spec (proxmox_auth_suboptions) and one doc fragment (NESTED)."""

from __future__ import annotations

import yaml

from ansible_collections.tazlab.resilience.plugins.doc_fragments.proxmox_auth import ModuleDocFragment
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (
    proxmox_auth_argument_spec, proxmox_auth_suboptions,
)
from ansible_collections.tazlab.resilience.plugins.modules import csi_force_detach, node_replace


def test_the_suboptions_are_the_connection_options_with_an_optional_host():
    nested, top = proxmox_auth_suboptions(), proxmox_auth_argument_spec()
    assert sorted(nested) == sorted(top) and nested['api_host']['required'] is False
    assert top['api_host']['required'] is True   # a fresh dict each call: the top-level spec is untouched
    assert dict(nested, api_host=None) == dict(top, api_host=None)
    assert nested['api_host']['fallback'] == top['api_host']['fallback']


def test_both_modules_nest_the_same_spec():
    for module in (csi_force_detach, node_replace):
        option = module.argument_spec()['proxmox_auth']
        assert option == dict(type='dict', default={}, options=proxmox_auth_suboptions()), module.__name__


def test_the_nested_fragment_documents_that_spec():
    doc = yaml.safe_load(ModuleDocFragment.NESTED)['options']['proxmox_auth']
    assert doc['type'] == 'dict' and doc['default'] == {}
    spec = proxmox_auth_suboptions()
    assert sorted(doc['suboptions']) == sorted(spec)
    for name, option in spec.items():
        sub = doc['suboptions'][name]
        assert sub['type'] == option['type'] and sub.get('default') == option.get('default'), name
        assert not sub.get('required') and sub['description'], name


def test_the_proxmox_dict_fragment_repeats_the_proxmox_auth_text_with_its_references_in_the_dict():
    """Doc fragments must be string literals (ansible-test's yamllint), so the text stands twice: kept equal here."""
    from ansible_collections.tazlab.resilience.plugins.doc_fragments.proxmox_connection import (
        ModuleDocFragment as Connection,
    )

    top = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    nested = yaml.safe_load(Connection.DOCUMENTATION)
    subs = nested['options']['proxmox']['suboptions']
    assert sorted(subs) == sorted(top['options'])
    for name, option in top['options'].items():
        expected = yaml.safe_load(yaml.safe_dump(option).replace('O(', 'O(proxmox.'))
        assert subs[name] == expected, name
    assert nested['requirements'] == top['requirements']
