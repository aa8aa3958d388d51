"""Run a module's main() in-process with given arguments, as AnsibleModule receives them."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_main(module, args, capsys, check_mode=False, diff=False):
    """(exit code, result dict) of module.main() with `args` (check and diff mode as Ansible passes them)."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            module.main()
    return info.value.code, json.loads(capsys.readouterr().out)
