# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain outcomes: a run that ended without the result it was after, though no API call failed.

A verification that did not hold within its timeout, a rollout that did not finish, an address the
apiserver keeps writing back, volumes that stayed degraded: each is an :class:`Outcome`, not an API
error (``k8s/errors.py`` ``K8sError``, ``proxmox/errors.py`` ``ProxmoxError``, ``talos/errors.py``).
So a caller that handles API errors (``except K8sError``) never takes one for a failed request, and
an outcome is never transient: ``retry.retry_call`` and ``retry.wait_until`` never try again after
one, whatever their predicate says (another attempt would only repeat a wait that already ran out).

The module runner (``runner.py``) reports an outcome like any error of the collection:
``fail_json(msg, changed, error={kind, message})`` plus what :meth:`Outcome.result_fields` returns.
``kind`` is what a playbook reads (``error.kind``); ``changed`` is ``True`` or ``False`` where the class
knows it, else ``None`` and the run's own ``changed`` hook decides. A subclass names its ``kind`` (and
``changed``) as class attributes, keeps what it carries as attributes and returns them from
``result_fields()``: ``k8s/endpoints.py`` ``RolloutTimeout``, ``k8s/force_detach/verify.py``
``VerificationFailed``, ``k8s/longhorn_volumes.py`` ``VolumesNotHealthy``.

Nothing third-party is imported here.
"""

from __future__ import annotations

__all__ = ['Outcome', 'is_outcome']


class Outcome(Exception):
    """A domain outcome with a ``kind`` a playbook can act on and the fields the failed result carries."""

    kind = 'outcome'
    changed = None      # None: the module runner asks the run (run.changed())
    transient = False   # never retried

    def __init__(self, message, kind=None):
        super(Outcome, self).__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind

    def as_dict(self):
        """The ``error`` of a failed module result."""
        return {'kind': self.kind, 'message': self.message}

    def result_fields(self):
        """What a failed module result carries besides msg and error."""
        return {}

    def __str__(self):
        return self.message

    def __repr__(self):
        return '{0}({1!r}, kind={2!r})'.format(type(self).__name__, self.message, self.kind)


def is_outcome(exc):
    """Is ``exc`` a domain outcome (never an API error, never retried)?"""
    return isinstance(exc, Outcome)
