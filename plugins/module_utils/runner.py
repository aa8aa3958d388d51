# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one module runner of the collection (as kubernetes.core's AnsibleK8SModule or community.proxmox's
``create_proxmox_module``): every module file reads docs, argument spec, one call::

    def main():
        run_module(argument_spec(), run_endpoint_fix, requires=[k8s_libraries],
                   bounds={'api_retries': at_least(1), 'port': between(1, 65535)}, check=check_params)

``run_module`` builds the AnsibleModule, then in this order, each step before any API call:

1. option bounds (``bounds``: option -> a bound from ``at_least``, ``positive``, ``non_negative``,
   ``between``; the same words everywhere: "api_retries must be at least 1"), then ``check(params)``
   (a list of reasons, or a raised ``ValueError`` or collection error): bad input fails with
   ``error.kind`` ``invalid``;
2. dependency checks (``requires``: functions of the params that return ``(library, present, import
   traceback)`` triples; they import lazily, so a module that does not need a library does not load it);
3. ``call(run)`` with a :class:`ModuleRun` (params, check mode, diff) returning the result dict.

Warnings have one key in the whole collection: ``warnings``, a list of strings. A call puts what it warns of
in its result's (or its error's result fields') ``warnings``, or calls ``run.warn``; the runner passes each to
``module.warn``, and Ansible shows it and keeps it in the registered result under ``warnings`` (checked with
ansible-core 2.21: kept by ``register``, after a failure and by ``async_status`` too). The key itself is never
passed to ``exit_json``/``fail_json``: that is deprecated in ansible-core (removed in 2.23).

Every error of the collection's own classes (K8sError, ProxmoxError, TalosError, plan and drill errors:
anything whose class is defined under ``ansible_collections.tazlab.resilience``) becomes ``fail_json``
with one shape: ``msg``, ``changed`` and ``error: {kind, message, ...}`` (the error's ``as_dict()`` when
it has one; else its ``kind`` attribute, or ``invalid`` for a ValueError subclass, or its class name),
plus the fields the error carries for the result (``result_fields()``) and what the call put in
``run.context``. Anything else is a bug and keeps its traceback.

Nothing third-party is imported here.
"""

from __future__ import annotations

import contextlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

__all__ = ['ModuleRun', 'run_module', 'at_least', 'positive', 'non_negative', 'between', 'bound_errors',
           'error_dict', 'failure', 'is_collection_error', 'warn_all', 'INVALID']

INVALID = 'invalid'
_OWN = 'ansible_collections.tazlab.resilience.'


# -- option bounds ------------------------------------------------------------------------------------------

def at_least(minimum):
    """Bound: the option, when set, is >= minimum."""
    return lambda key, value: None if value >= minimum else '{0} must be at least {1}'.format(key, minimum)


def positive():
    """Bound: the option, when set, is > 0."""
    return lambda key, value: None if value > 0 else '{0} must be positive'.format(key)


def non_negative():
    """Bound: the option, when set, is >= 0."""
    return lambda key, value: None if value >= 0 else '{0} must not be negative'.format(key)


def between(low, high):
    """Bound: the option, when set, is in [low, high]."""
    return lambda key, value: None if low <= value <= high else '{0} must be between {1} and {2}'.format(
        key, low, high)


def bound_errors(params, bounds):
    """The reasons (in the order of ``bounds``) why params break their bounds; options left unset pass."""
    errors = []
    for key, bound in (bounds or {}).items():
        value = params.get(key)
        if value is None:
            continue
        reason = bound(key, value)
        if reason:
            errors.append(reason)
    return errors


# -- errors -------------------------------------------------------------------------------------------------

def is_collection_error(exc):
    """Is this exception of a class the collection defines (anywhere in its class hierarchy)?"""
    return any((getattr(cls, '__module__', '') or '').startswith(_OWN) for cls in type(exc).__mro__)


def error_dict(exc):
    """``{kind, message, ...}`` for any error of the collection."""
    as_dict = getattr(exc, 'as_dict', None)
    if callable(as_dict):
        out = dict(as_dict())
    else:
        kind = getattr(exc, 'kind', None)
        if not isinstance(kind, str):
            kind = INVALID if isinstance(exc, ValueError) else type(exc).__name__
        out = {'kind': kind}
        for key in ('status', 'code', 'node', 'rpc'):
            if getattr(exc, key, None) is not None:
                out[key] = getattr(exc, key)
    out.setdefault('kind', type(exc).__name__)
    out['message'] = out.get('message') or str(exc)
    return out


def failure(exc, run=None):
    """The fail_json keyword arguments for a collection error raised during ``run``."""
    out = dict(run.context) if run is not None else {}
    fields = getattr(exc, 'result_fields', None)
    if callable(fields):
        out.update(fields())
    changed = getattr(exc, 'changed', None)
    if changed is None:
        changed = bool(run.changed()) if run is not None else False
    msg = str(exc)
    if run is not None and run.stage_failed:
        msg = '{0}: {1}'.format(run.stage_failed, msg)
    out.update(msg=msg, changed=bool(changed), error=error_dict(exc))
    return out


# -- the run ------------------------------------------------------------------------------------------------

class ModuleRun(object):
    """What a module's one call gets: the params, check and diff mode, and two hooks for failures.

    ``context``: keys added to a failure result (e.g. the node or path the module is about).
    ``changed``: a function telling whether something was already written when an error ended the run
    (set it once the client exists, e.g. ``run.changed = lambda: bool(client.writes)``).
    """

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.diff = bool(getattr(module, '_diff', False))
        self.context = {}
        self.changed = lambda: False
        self.stage_failed = None

    @contextlib.contextmanager
    def stage(self, what):
        """A step whose collection errors are reported as ``<what>: <error>`` (e.g. "reading Kubernetes failed")."""
        try:
            yield
        except Exception as exc:  # pylint: disable=broad-except
            if is_collection_error(exc) and self.stage_failed is None:
                self.stage_failed = what
            raise

    def warn(self, message):
        self.module.warn(message)


def warn_all(module, result):
    """Take ``warnings`` out of a result and hand each to ``module.warn`` (Ansible puts them back, see above)."""
    for warning in result.pop('warnings', None) or ():
        module.warn(str(warning))
    return result


def _fail_invalid(module, reasons):
    message = '; '.join(reasons)
    module.fail_json(msg=message, changed=False, error={'kind': INVALID, 'message': message})


def run_module(argument_spec, call, requires=(), bounds=None, check=None, supports_check_mode=True,
               module_class=AnsibleModule, **module_kwargs):
    """Build the module, check bounds, input and dependencies, run ``call(run)``, exit or fail in one shape."""
    module = module_class(argument_spec=argument_spec, supports_check_mode=supports_check_mode, **module_kwargs)
    params = module.params
    reasons = bound_errors(params, bounds)
    if check is not None:
        try:
            reasons.extend(check(params) or [])
        except Exception as exc:  # pylint: disable=broad-except
            if not (isinstance(exc, ValueError) or is_collection_error(exc)):
                raise
            reasons.append(str(exc))
    if reasons:
        _fail_invalid(module, reasons)
    for probe in requires or ():
        for library, present, trace in probe(params):
            if not present:
                module.fail_json(msg=missing_required_lib(library), exception=trace, changed=False,
                                 error={'kind': 'dependency', 'message': 'missing Python library ' + library,
                                        'library': library})
    run = ModuleRun(module)
    try:
        result = call(run)
    except Exception as exc:  # pylint: disable=broad-except
        if not is_collection_error(exc):
            raise
        module.fail_json(**warn_all(module, failure(exc, run)))
    module.exit_json(**warn_all(module, dict(result)))
