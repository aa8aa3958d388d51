"""proxmox_group_defaults: the Proxmox connection a play gives its proxmox action group, for nested proxmox_auth."""

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.defaults import proxmox_group_defaults


def test_later_blocks_win_and_only_connection_options_are_kept():
    defaults = [
        {'group/tazlab.resilience.proxmox': {'api_host': 'pve1', 'validate_certs': False, 'vmid': 106},
         'group/tazlab.resilience.kubernetes': {'kubeconfig': '/k', 'validate_certs': True}},
        {'group/tazlab.resilience.proxmox': {'api_host': 'pve2', 'api_token_id': 'fence'}},
    ]
    assert proxmox_group_defaults(defaults) == {'api_host': 'pve2', 'validate_certs': False, 'api_token_id': 'fence'}


def test_templated_and_absent():
    assert proxmox_group_defaults(None) == {}
    assert proxmox_group_defaults([{'group/tazlab.resilience.kubernetes': {'kubeconfig': '/k'}}]) == {}
    assert proxmox_group_defaults({'group/tazlab.resilience.proxmox': '{{ px }}'},
                                  template=lambda v: {'api_host': 'h'} if v == '{{ px }}' else v) == {'api_host': 'h'}
    # a short group name is another collection's group (community.general has a proxmox group too)
    assert proxmox_group_defaults([{'group/proxmox': {'api_host': 'x'}}]) == {}
