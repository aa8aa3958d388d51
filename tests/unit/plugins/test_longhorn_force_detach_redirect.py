"""longhorn_force_detach is a redirect (meta/runtime.yml) to csi_force_detach: the module and its action.

Resolved the way ansible-core resolves a task's action (its plugin loaders with the collection finder), in a
separate interpreter so the finder does not touch this test process's imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

RESOLVE = r'''
import json
from ansible.plugins.loader import action_loader, init_plugin_loader, module_loader
init_plugin_loader()
out = {}
for name in ('longhorn_force_detach', 'csi_force_detach'):
    fqcn = 'tazlab.resilience.' + name
    mod = module_loader.find_plugin_with_context(fqcn)
    act = action_loader.find_plugin_with_context(fqcn)
    out[name] = {'resolved': mod.resolved, 'module': mod.resolved_fqcn, 'module_path': mod.plugin_resolved_path,
                 'deprecated': mod.deprecated, 'warnings': mod.deprecation_warnings,
                 'action': act.resolved_fqcn, 'action_path': act.plugin_resolved_path,
                 'async': action_loader.get(fqcn, None, None, None, None, None, class_only=True)._supports_async}
print(json.dumps(out))
'''


def resolve(tmp_path):
    cfg = tmp_path / 'ansible.cfg'
    cfg.write_text('[defaults]\n')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'collections'), ANSIBLE_CONFIG=str(cfg))
    proc = subprocess.run([sys.executable, '-c', RESOLVE], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_old_name_runs_the_new_module_and_action(tmp_path):
    found = resolve(tmp_path)
    old, new = found['longhorn_force_detach'], found['csi_force_detach']
    assert new['resolved'] and new['module'] == 'tazlab.resilience.csi_force_detach'
    assert new['module_path'].endswith('plugins/modules/csi_force_detach.py')
    assert new['action_path'].endswith('plugins/action/csi_force_detach.py')
    # without plugin_routing the old name finds no module (the file is gone) and the normal action (no
    # proxmox group defaults): here it finds the very same files
    assert old['resolved'] and old['module'] == new['module'] and old['module_path'] == new['module_path']
    assert old['action'] == new['action'] and old['action_path'] == new['action_path']
    assert old['async'] is True and new['async'] is True       # parallel frees of dead workers run as async jobs
    assert old['deprecated'] and not new['deprecated']
    assert any('csi_force_detach' in w for w in old['warnings']), old['warnings']


def test_runtime_metadata_routes_both_and_keeps_the_group():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml'), encoding='utf-8') as fh:
        meta = yaml.safe_load(fh)
    routing = meta['plugin_routing']
    for kind in ('modules', 'action'):
        assert routing[kind]['longhorn_force_detach']['redirect'] == 'tazlab.resilience.csi_force_detach'
    assert routing['modules']['longhorn_force_detach']['deprecation']['removal_version'] == '2.0.0'
    assert {'csi_force_detach', 'longhorn_force_detach'} <= set(meta['action_groups']['kubernetes'])
    assert not os.path.exists(os.path.join(ROOT, 'plugins', 'modules', 'longhorn_force_detach.py'))
    assert not os.path.exists(os.path.join(ROOT, 'plugins', 'action', 'longhorn_force_detach.py'))


def test_the_action_runs_the_new_module():
    from ansible_collections.tazlab.resilience.plugins.action import csi_force_detach
    assert csi_force_detach.MODULE == 'tazlab.resilience.csi_force_detach'
    assert csi_force_detach.ActionModule._supports_async is True
