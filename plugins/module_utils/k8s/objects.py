# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers over Kubernetes objects as API-shaped dicts (camelCase, as the API serves them).

The collection's one time vocabulary (k8s, proxmox, talos): :func:`parse_time` reads an RFC 3339 time or
MicroTime into epoch seconds, :func:`rfc3339` writes now, a datetime or epoch seconds back, and
:func:`parse_http_date` reads the HTTP-Date of a ``Date`` or ``Retry-After`` header into epoch seconds.
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress

__all__ = ['meta', 'name_of', 'namespace_of', 'ref', 'node_ready', 'node_internal_ips', 'is_control_plane',
           'is_terminating', 'pod_pvc_names', 'controller_of', 'is_daemonset_pod', 'is_mirror_pod', 'pod_ready',
           'parse_time', 'rfc3339', 'parse_http_date', 'ready_since', 'kubelet_back', 'lease_silent_for', 'sort_ips',
           'selector_string']

CONTROL_PLANE_LABELS = ('node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/master')


def meta(obj):
    return (obj or {}).get('metadata') or {}


def name_of(obj):
    return meta(obj).get('name')


def namespace_of(obj):
    return meta(obj).get('namespace')


def ref(obj):
    ns = namespace_of(obj)
    return '{0}/{1}'.format(ns, name_of(obj)) if ns else name_of(obj)


def _conditions(obj):
    return ((obj or {}).get('status') or {}).get('conditions') or []


def node_ready(node):
    """The node's Ready condition status: 'True', 'False' or 'Unknown' (no condition counts as Unknown)."""
    for cond in _conditions(node):
        if cond.get('type') == 'Ready':
            return str(cond.get('status') or 'Unknown')
    return 'Unknown'


def node_internal_ips(node):
    return [a.get('address') for a in ((node or {}).get('status') or {}).get('addresses') or []
            if a.get('type') == 'InternalIP' and a.get('address')]


def is_control_plane(node):
    labels = meta(node).get('labels') or {}
    return any(label in labels for label in CONTROL_PLANE_LABELS)


def is_terminating(obj):
    return bool(meta(obj).get('deletionTimestamp'))


def pod_pvc_names(pod):
    out = []
    for vol in ((pod or {}).get('spec') or {}).get('volumes') or []:
        claim = vol.get('persistentVolumeClaim') or {}
        if claim.get('claimName'):
            out.append(claim['claimName'])
    return out


def controller_of(obj):
    """(kind, name) of the controlling ownerReference, or None."""
    refs = meta(obj).get('ownerReferences') or []
    for owner in refs:
        if owner.get('controller'):
            return owner.get('kind'), owner.get('name')
    if refs:
        return refs[0].get('kind'), refs[0].get('name')
    return None


def is_daemonset_pod(pod):
    owner = controller_of(pod)
    return bool(owner and owner[0] == 'DaemonSet')


def is_mirror_pod(pod):
    return 'kubernetes.io/config.mirror' in (meta(pod).get('annotations') or {})


def pod_ready(pod):
    """Running, not terminating, and Ready when the pod reports a Ready condition."""
    status = (pod or {}).get('status') or {}
    if status.get('phase') != 'Running' or is_terminating(pod):
        return False
    for cond in status.get('conditions') or []:
        if cond.get('type') == 'Ready':
            return cond.get('status') == 'True'
    return True


def parse_time(value):
    """Epoch seconds of an RFC 3339 time or MicroTime string ('...Z', fractions allowed); None if unparsable."""
    if not value:
        return None
    text = str(value).strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def parse_http_date(value):
    """Epoch seconds of an HTTP-Date (RFC 9110 section 5.6.7, formerly RFC 7231 section 7.1.1.1), None if unparsable.

    The IMF-fixdate every server sends (``Sun, 06 Nov 1994 08:49:37 GMT``) and the two obsolete forms a recipient
    must still accept: RFC 850 (``Sunday, 06-Nov-94 08:49:37 GMT``) and asctime (``Sun Nov  6 08:49:37 1994``).
    An HTTP-Date is always UTC, so a form without a zone (asctime) is read as UTC, never as local time.
    """
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def ready_since(node):
    """lastTransitionTime of the node's Ready condition, as epoch seconds (None if unknown)."""
    for cond in _conditions(node):
        if cond.get('type') == 'Ready':
            return parse_time(cond.get('lastTransitionTime'))
    return None


def kubelet_back(node, lease):
    """(alive, renew, since): the kubelet renewed its Lease after the node's Ready condition last changed.

    Both times are written by the cluster (kubelet and node lifecycle controller), so no clock of ours is
    compared with them. A node that went NotReady and whose kubelet renews its lease again is running
    (rebooted, restarted by an HA manager, or never down): it is not confirmed off.
    """
    renew = parse_time(((lease or {}).get('spec') or {}).get('renewTime'))
    since = ready_since(node)
    if renew is None or since is None:
        return False, renew, since
    return renew > since, renew, since


def lease_silent_for(lease, now):
    """Seconds since the kubelet last renewed its Lease, on the API server's clock `now`; None if unknown."""
    renew = parse_time(((lease or {}).get('spec') or {}).get('renewTime'))
    if renew is None or now is None:
        return None
    return max(0.0, now - renew)


def rfc3339(when=None):
    """RFC 3339 in UTC with whole seconds (``2026-01-25T21:00:00Z``, as the API server writes times): of now
    (``None``), of a datetime, or of epoch seconds (what :func:`parse_time` returns)."""
    if when is None:
        when = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(when, (int, float)):
        when = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def sort_ips(ips):
    """Unique addresses, sorted numerically (IPv4 before IPv6)."""
    def key(ip):
        addr = ipaddress.ip_address(ip)
        return (addr.version, int(addr))
    return sorted(set(ips), key=key)


def selector_string(match_labels):
    return ','.join('{0}={1}'.format(k, v) for k, v in sorted((match_labels or {}).items()))
