# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox connection a play gives through ``module_defaults: {group/tazlab.resilience.proxmox: ...}``.

Modules outside the proxmox action group that also talk to Proxmox (csi_force_detach, whose own
top-level connection options are Kubernetes ones) take it nested, as ``proxmox_auth``; their action plugin
reads it here from the task's module_defaults.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import proxmox_auth_argument_spec

__all__ = ['PROXMOX_GROUP', 'proxmox_group_defaults']

PROXMOX_GROUP = 'group/tazlab.resilience.proxmox'


def proxmox_group_defaults(module_defaults, template=None):
    """The connection options of the proxmox group defaults (later blocks win), templated; {} when none.

    ``module_defaults`` is a task's module_defaults (a list of dicts, outermost first, or one dict).
    Keys that are not connection options (a default meant for one module of the group) are left out.
    """
    if not module_defaults:
        return {}
    layers = module_defaults if isinstance(module_defaults, list) else [module_defaults]
    merged = {}
    for layer in layers:
        group = (layer or {}).get(PROXMOX_GROUP)
        if template is not None:
            group = template(group)
        if isinstance(group, dict):
            merged.update(group)
    known = set(proxmox_auth_argument_spec())
    return dict((k, v) for k, v in merged.items() if k in known)
