# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""csi_force_detach's action: its nested ``proxmox_auth`` also comes from the proxmox group defaults.

``longhorn_force_detach`` (the former name) is routed here by ``meta/runtime.yml`` (``plugin_routing.action``), so
a task that still uses it gets these defaults and async too.

The module belongs to the kubernetes action group (its top-level connection options are Kubernetes ones,
``validate_certs`` included). Its Proxmox connection is nested in ``proxmox_auth``, so that the two
``validate_certs`` never mix; this action fills ``proxmox_auth`` from the ``module_defaults`` of
``group/tazlab.resilience.proxmox``, the way a play already gives them to proxmox_fence and
proxmox_vm_status. Keys given in the task's ``proxmox_auth`` win over the defaults.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.defaults import proxmox_group_defaults

MODULE = 'tazlab.resilience.csi_force_detach'


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True  # the role frees several dead workers at once as async jobs

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        defaults = proxmox_group_defaults(self._task.module_defaults, self._templar.template)
        if defaults:
            given = args.get('proxmox_auth') or {}
            if isinstance(given, dict):
                args['proxmox_auth'] = dict(defaults, **given)
        wrap_async = self._task.async_val  # as ansible.builtin.normal does
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars,
                                           wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
