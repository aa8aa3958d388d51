# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Longhorn volumes, summarized, and the wait until the attached ones are healthy (longhorn_volume_info).

``summarize`` / ``unhealthy`` are pure; ``read_volumes`` reads through a K8sClient and, with
``wait_healthy``, polls until no attached volume is degraded or ``wait_timeout`` runs out. It reads the
namespace first: no Longhorn namespace means no volumes to judge, which must not pass for healthy.
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError, NOT_FOUND, TIMEOUT
from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import Outcome
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until

__all__ = ['summarize', 'unhealthy', 'read_volumes', 'VolumesNotHealthy', 'VolumesMissing', 'check_options',
           'run_volume_info']


def summarize(volume):
    meta = volume.get('metadata') or {}
    spec = volume.get('spec') or {}
    status = volume.get('status') or {}
    kstatus = status.get('kubernetesStatus') or {}
    pvc = '{0}/{1}'.format(kstatus['namespace'], kstatus['pvcName']) if kstatus.get('pvcName') else None
    return {
        'name': meta.get('name'),
        'state': status.get('state'),
        'robustness': status.get('robustness'),
        'node': status.get('currentNodeID') or None,
        'replicas': spec.get('numberOfReplicas'),
        'pvc': pvc,
    }


def unhealthy(volumes):
    return [v['name'] for v in volumes if v['state'] == 'attached' and v['robustness'] != 'healthy']


class VolumesNotHealthy(Outcome):
    """The wait ran out with attached volumes still not healthy (a domain outcome, not an API error)."""

    kind = TIMEOUT

    def __init__(self, message, volumes, bad):
        super(VolumesNotHealthy, self).__init__(message)
        self.volumes = volumes
        self.bad = bad

    def result_fields(self):
        return {'volumes': self.volumes, 'unhealthy': self.bad}


class VolumesMissing(Outcome):
    """Named volumes that Longhorn does not have (a domain outcome: the list was read)."""

    kind = NOT_FOUND

    def __init__(self, message, volumes):
        super(VolumesMissing, self).__init__(message)
        self.volumes = volumes

    def result_fields(self):
        return {'volumes': self.volumes}


def _namespace_exists(client, namespace):
    try:
        client.call('read namespace {0}'.format(namespace), client.core.read_namespace, name=namespace)
    except K8sError as exc:
        if exc.status == 404:
            return False
        raise _reading(exc)
    return True


def _reading(exc):
    return K8sError(exc.kind, 'cannot read Longhorn volumes: {0}'.format(exc), status=exc.status, reason=exc.reason,
                    what=exc.what)


def read_volumes(client, namespace='longhorn-system', names=None, wait_healthy=False, wait_timeout=600,
                 poll_interval=2, clock=time.monotonic, sleep=time.sleep):
    """{changed, volumes, unhealthy, waited_seconds}; raises K8sError (the API, no namespace) or an Outcome
    (VolumesNotHealthy, VolumesMissing)."""
    wanted = set(names or [])
    start = clock()
    if not _namespace_exists(client, namespace):
        raise K8sError(NOT_FOUND, 'namespace {0} does not exist: no Longhorn there to read volumes from (zero '
                       'volumes would not mean healthy)'.format(namespace), status=404)

    def probe():
        try:
            volumes = [summarize(v) for v in client.list_custom('volumes', namespace=namespace)]
        except K8sError as exc:
            raise _reading(exc)
        if wanted:
            volumes = [v for v in volumes if v['name'] in wanted]
        return volumes, unhealthy(volumes)

    try:
        volumes, bad = wait_until(probe, lambda read: not wait_healthy or not read[1], wait_timeout,
                                  interval=poll_interval, sleep=sleep, clock=clock, what='healthy Longhorn volumes')
    except WaitTimeout as exc:
        volumes, bad = exc.last
        raise VolumesNotHealthy('Longhorn volumes still not healthy after {0} s: {1}'.format(
            wait_timeout, ', '.join(bad)), volumes, bad) from None
    waited = clock() - start
    missing = sorted(wanted - set(v['name'] for v in volumes))
    if missing:
        raise VolumesMissing('no Longhorn volume named {0}'.format(', '.join(missing)), volumes)
    return {'changed': False, 'volumes': volumes, 'unhealthy': bad, 'waited_seconds': round(waited, 1)}


def check_options(params):
    if params['wait_timeout'] < 0 or params['poll_interval'] <= 0:
        return ['wait_timeout must be >= 0 and poll_interval > 0']
    return []


def run_volume_info(run):
    """longhorn_volume_info: the module runner's one call."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params

    p = run.params
    return read_volumes(client_from_params(p), namespace=p['namespace'], names=p['names'],
                        wait_healthy=p['wait_healthy'], wait_timeout=p['wait_timeout'], poll_interval=p['poll_interval'])
