"""Run a module's main() in-process with given arguments, as AnsibleModule receives them.

Shared by the unit tests (tests/unit) and the integration tests against the lab twin (tests/integration);
both trees' conftests put this folder on sys.path.
"""

from __future__ import annotations

import contextlib
import io
import json
from unittest import mock

import pytest
from ansible.module_utils import _internal
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args


@contextlib.contextmanager
def as_on_a_target():
    """The module's warnings and deprecations recorded for its result, as in the module process on a target.

    In the test process (the controller's code is loaded) ``module.warn`` only displays; on a target it
    records the warning, and the result carries it under ``warnings``. Each run starts with none recorded.
    """
    with mock.patch.object(_internal, 'is_controller', False), \
            mock.patch.object(_warnings, '_global_warnings', {}), \
            mock.patch.object(_warnings, '_global_deprecations', {}):
        yield


def registered(result):
    """The module's result as ``register`` keeps it: each warning its message (ansible-core 2.21)."""
    if result.get('warnings'):
        result['warnings'] = [w['event']['msg'] if isinstance(w, dict) and 'event' in w else w
                              for w in result['warnings']]
    return result


def run_main(module, args, check_mode=False, diff=False):
    """(exit code, result dict) of module.main() with `args` (check and diff mode as Ansible passes them)."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    out = io.StringIO()
    with patch_module_args(args), as_on_a_target(), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit) as info:
            module.main()
    return info.value.code, registered(json.loads(out.getvalue()))
