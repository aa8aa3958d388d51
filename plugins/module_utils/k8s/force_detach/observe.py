# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observing a node for a force-detach: the snapshot the planner takes, read through a K8sClient.

One snapshot: the node, its kubelet Lease and the API server's time (to judge the lease's silence), the
pods on the node, every VolumeAttachment, the PersistentVolumes (read once per run), Longhorn's
attachment tickets and volumes when its API group is there, and the ReplicaSets of the node's pods (one
list per namespace). ``Observer`` also keeps the operation's deadline and poll rhythm.
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError, NOT_FOUND
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.plan import (
    DEFAULT_LONGHORN_NAMESPACE, plan_force_detach,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import controller_of, name_of, namespace_of
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.operation import Operation
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import Pace

__all__ = ['Observer']


class Observer(Operation):
    """Observe and plan (no write): the first half of :class:`ForceDetach`."""

    def __init__(self, client, options, clock=time.monotonic, sleep=time.sleep, now=None):
        super(Observer, self).__init__(client, options, clock=clock, sleep=sleep, now=now)
        # Read once per run: PersistentVolumes (the planned volumes do not change while we free them) and the
        # ReplicaSets of the node's pods (a ReplicaSet's Deployment does not change), one list per namespace.
        self._pvs = None
        self._replicasets = {}
        self._rs_namespaces = set()

    def observe(self):
        """The observed state (with the API server's time, to judge the kubelet lease's silence)."""
        node_name = self.options['node']
        try:
            node = self.client.get_node(node_name)
        except K8sError as exc:
            if exc.kind != NOT_FOUND:
                raise
            node = None
        observed = {'node': node, 'pods': [], 'volume_attachments': [], 'pvs': [], 'longhorn': False,
                    'longhorn_attachments': [], 'longhorn_volumes': [], 'replicasets': {}, 'lease': None}
        if node is None:
            return observed
        observed['lease'] = self.client.get_node_lease(node_name)
        observed['now'] = getattr(self.client, 'server_time', None)
        observed['pods'] = self.client.pods_on_node(node_name)
        observed['volume_attachments'] = self.client.list_volume_attachments()
        if self._pvs is None:
            self._pvs = self.client.list_pvs()
        observed['pvs'] = self._pvs
        observed['longhorn'] = self.client.has_api('longhorn.io', 'v1beta2')
        if observed['longhorn']:
            observed['longhorn_attachments'] = self._list_longhorn('volumeattachments')
            observed['longhorn_volumes'] = self._list_longhorn('volumes')
        for pod in observed['pods']:
            owner = controller_of(pod)
            if owner and owner[0] == 'ReplicaSet':
                ns = namespace_of(pod)
                key = '{0}/{1}'.format(ns, owner[1])
                if key not in self._replicasets and ns not in self._rs_namespaces:
                    # One list per namespace instead of one GET per ReplicaSet (a dense node has hundreds).
                    self._rs_namespaces.add(ns)
                    for rs in self.client.list_workloads('ReplicaSet', ns):
                        self._replicasets['{0}/{1}'.format(ns, name_of(rs))] = rs
                if key in self._replicasets:
                    observed['replicasets'][key] = self._replicasets[key]
        return observed

    def _longhorn_namespace(self):
        return self.options.get('longhorn_namespace') or DEFAULT_LONGHORN_NAMESPACE

    def _list_longhorn(self, plural):
        try:
            return self.client.list_custom(plural, namespace=self._longhorn_namespace())
        except K8sError as exc:
            if exc.kind == NOT_FOUND:   # the group exists but not this resource (Longhorn < 1.5)
                return []
            raise

    def plan(self, observed=None, strategy=None, check_mode=False):
        observed = observed if observed is not None else self.observe()
        params = dict(self.options)
        params['now'] = self.now()
        params['check_mode'] = check_mode
        if strategy:
            params['strategy'] = strategy
        plan = plan_force_detach(observed, params)
        plan['_params'] = {'pvcs': self.options.get('pvcs'), 'volumes': self.options.get('volumes'),
                           'actor': self.options.get('actor')}
        return plan

    def _get_node_or_none(self):
        try:
            return self.client.get_node(self.options['node'])
        except K8sError as exc:
            if exc.kind == NOT_FOUND:
                return None
            raise

    # -- waiting ----------------------------------------------------------------------------------
    def _deadline(self):
        return self.start + float(self.options.get('wait_timeout') or 300)

    def _pace(self, first=0.25, factor=1.5):
        """The pace of waits the cluster usually ends in a second or two (retry.Pace): 0.25s, then growing by
        half up to poll_interval (bounded requests, a quick answer seen quickly), never past wait_timeout."""
        return Pace(first, max_interval=float(self.options.get('poll_interval') or 2), factor=factor,
                    deadline=self._deadline(), sleep=self.sleep, clock=self.clock)
