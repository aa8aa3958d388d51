# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module runner's calls of the two hardening modules (talos_secretbox, talos_disk_encryption).

The Talos client (grpclib) and the hardening runs (``hardening/runner.py``) are imported only when a call
runs. Refusals and failures keep the result fields the modules always had: ``refused`` (and ``reasons``)
for a refusal before any change, ``where`` (and ``steps``) with ``changed: true`` for a failure after
changes began; disk encryption names the node (``node``) in every failure.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import INVALID, is_collection_error

__all__ = ['HardeningModuleError', 'check_secretbox_options', 'run_secretbox_module', 'run_disk_encryption_module']


class HardeningModuleError(Exception):
    """A refusal, a failure or bad input of a hardening run, with the fields its result carries."""

    def __init__(self, message, kind, changed=None, **fields):
        super(HardeningModuleError, self).__init__(message)
        self.kind = kind
        self.changed = changed
        self.fields = fields

    def result_fields(self):
        return dict(self.fields)


def check_secretbox_options(params):
    """talos_secretbox's input checks, before any API call."""
    if not params['control_planes']:
        return ['control_planes must not be empty']
    if params['node'] and params['node'] not in [c['address'] for c in params['control_planes']]:
        return ['node %s is not one of control_planes' % params['node']]
    return []


def run_secretbox_module(run):
    """talos_secretbox: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.disk import HardeningFailed
    from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.runner import secretbox
    from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.secretbox import SecretboxRefused

    try:
        return secretbox(run.params, check_mode=run.check_mode)
    except SecretboxRefused as exc:
        raise HardeningModuleError(str(exc), 'refused', changed=False, refused=True) from exc
    except HardeningFailed as exc:
        raise HardeningModuleError(str(exc), 'failed', changed=True, where=exc.where) from exc
    except ValueError as exc:
        # bad option values found while running (a key, the volumes, the kubernetes options): input errors
        if is_collection_error(exc):
            raise
        raise HardeningModuleError(str(exc), INVALID) from exc


def run_disk_encryption_module(run):
    """talos_disk_encryption: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.disk import (
        HardeningFailed, HardeningRefused)
    from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.runner import disk_encryption

    node = run.params['node_name']
    run.context['node'] = node
    try:
        result = disk_encryption(run.params, check_mode=run.check_mode)
    except HardeningRefused as exc:
        raise HardeningModuleError(str(exc), 'refused', changed=False, refused=True, reasons=exc.reasons,
                                   node=node) from exc
    except HardeningFailed as exc:
        raise HardeningModuleError(str(exc), 'failed', changed=True, where=exc.where, steps=exc.steps,
                                   node=node) from exc
    except ValueError as exc:
        # bad option values found while running (a key, the volumes, the kubernetes options): input errors
        if is_collection_error(exc):
            raise
        raise HardeningModuleError(str(exc), INVALID) from exc
    return result
