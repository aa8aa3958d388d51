# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every operation on a cluster shares (ForceDetach, EndpointFix): one constructor shape, one clock.

``Operation(client, options, clock=time.monotonic, sleep=time.sleep, now=None)``: the K8sClient, the module's
own options (copied), a monotonic clock and a sleep (a test passes a fake clock), and ``now()`` for the
timestamps written into objects (RFC 3339, :func:`objects.rfc3339` unless given). ``elapsed()`` is seconds since
the operation started (rounded to milliseconds); ``event(what, **details)`` records ``{t, event, ...}`` in
``events``, in order, ``t`` being ``elapsed()``.
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import rfc3339

__all__ = ['Operation']


class Operation(object):
    """The base of an observe / plan / execute / verify operation through a K8sClient."""

    def __init__(self, client, options, clock=time.monotonic, sleep=time.sleep, now=None):
        self.client = client
        self.options = dict(options)
        self.clock = clock
        self.sleep = sleep
        self.now = now or rfc3339
        self.start = clock()
        self.events = []

    def elapsed(self):
        """Seconds since the operation started, on its clock."""
        return round(self.clock() - self.start, 3)

    def event(self, what, **details):
        """Record what happened, with the time: ``{t, event, **details}``; returns the entry."""
        entry = {'t': self.elapsed(), 'event': what}
        entry.update(details)
        self.events.append(entry)
        return entry
