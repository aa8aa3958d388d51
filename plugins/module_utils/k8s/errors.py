# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API errors, classified.

Every failure the client layer sees becomes a K8sError with a ``kind`` a caller can act on and a
``transient`` flag the retry predicate reads:

==============  ==============================================================  =========
kind            what happened                                                    transient
==============  ==============================================================  =========
not_found       404                                                              no
conflict        409 Conflict: stale resourceVersion (re-read and retry)          yes (*)
already_exists  409 AlreadyExists                                                no
throttled       429 TooManyRequests (API priority and fairness, PDB eviction)   yes
server          5xx                                                              yes
network         connection refused/reset, protocol error, broken pipe           yes
timeout         a request ran past its timeout                                   yes
tls             certificate verification failed                                  no
auth            401 / 403                                                        no
invalid         400 / 415 / 422                                                  no
config          no usable kubeconfig / credentials                               no
refused         a safety rule refused the action (never retried)                 no
api             any other error                                                  no
==============  ==============================================================  =========

(*) A conflict is only worth another try when the caller re-reads the object first; the client's
read-modify-write helper does that. Plain calls retry it too, which suits patches without a
resourceVersion (the apiserver can answer 409 under contention).

Nothing here imports the kubernetes client: errors are recognised by class names and attributes so
this module imports (and its tests run) without third-party packages.
"""

from __future__ import annotations

import json
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_http_date

__all__ = ['K8sError', 'RefusedError', 'classify_exception', 'is_transient', 'is_not_found', 'is_conflict',
           'NOT_FOUND', 'CONFLICT', 'ALREADY_EXISTS', 'THROTTLED', 'SERVER', 'NETWORK', 'TIMEOUT', 'TLS',
           'AUTH', 'INVALID', 'CONFIG', 'REFUSED', 'API']

NOT_FOUND = 'not_found'
CONFLICT = 'conflict'
ALREADY_EXISTS = 'already_exists'
THROTTLED = 'throttled'
SERVER = 'server'
NETWORK = 'network'
TIMEOUT = 'timeout'
TLS = 'tls'
AUTH = 'auth'
INVALID = 'invalid'
CONFIG = 'config'
REFUSED = 'refused'
API = 'api'

_TRANSIENT = frozenset([CONFLICT, THROTTLED, SERVER, NETWORK, TIMEOUT])


class K8sError(Exception):
    """A classified Kubernetes API failure (status, reason and the Status message when there was one)."""

    def __init__(self, kind, message, status=None, reason=None, what=None):
        super(K8sError, self).__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.reason = reason
        self.what = what
        self.retry_after = None  # seconds, from a Retry-After header (429, 503)

    @property
    def transient(self):
        return self.kind in _TRANSIENT

    def as_dict(self):
        out = {'kind': self.kind, 'message': self.message}
        for key in ('status', 'reason', 'what', 'retry_after'):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def __str__(self):
        return self.message

    def __repr__(self):
        return 'K8sError({0!r}, {1!r}, status={2!r})'.format(self.kind, self.message, self.status)


class RefusedError(K8sError):
    """A safety rule refused the action; carries the reasons (a list of strings)."""

    changed = False  # refused before any write (read by the module runner)

    def __init__(self, message, reasons=None):
        super(RefusedError, self).__init__(REFUSED, message)
        self.reasons = list(reasons or [message])

    def result_fields(self):
        """What a failed module result carries besides msg and error."""
        return {'refused': list(self.reasons)}


def _names(exc):
    return [cls.__name__ for cls in type(exc).__mro__]


def _status_body(exc):
    body = getattr(exc, 'body', None)
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {'message': body.strip()[:500]}
    return data if isinstance(data, dict) else {}


def classify_http(status, reason=None, message=None, status_reason=None, what=None):
    """A K8sError for an HTTP error: status code, HTTP reason phrase, Status.message, Status.reason."""
    text = message or reason or 'HTTP {0}'.format(status)
    full = '{0}{1} ({2} {3})'.format('{0}: '.format(what) if what else '', text, status, reason or '').rstrip()
    if full.endswith(' )'):
        full = full[:-2] + ')'
    if status == 404:
        kind = NOT_FOUND
    elif status == 409:
        kind = ALREADY_EXISTS if status_reason == 'AlreadyExists' else CONFLICT
    elif status == 429:
        kind = THROTTLED
    elif status in (401, 403):
        kind = AUTH
    elif status in (400, 415, 422):
        kind = INVALID
    elif status == 408 or status == 504:
        kind = TIMEOUT
    elif status is not None and 500 <= status <= 599:
        kind = SERVER
    else:
        kind = API
    return K8sError(kind, full, status=status, reason=status_reason or reason, what=what)


def classify_exception(exc, what=None):
    """A K8sError for anything the client stack raised (ApiException, urllib3, OSError, ConfigException)."""
    if isinstance(exc, K8sError):
        if what and exc.what is None:
            exc.what = what
        return exc
    names = _names(exc)
    message = str(exc).strip() or type(exc).__name__
    if 'ApiException' in names or 'HttpStatusError' in names:  # the official client's or k8s/rest.py's
        status = getattr(exc, 'status', None)
        data = _status_body(exc)
        if status is None or status == 0:
            # The generated client reports transport failures as ApiException(status=0).
            detail = str(getattr(exc, 'reason', message))
            if 'SSLError' in detail or 'CERTIFICATE_VERIFY_FAILED' in detail or 'certificate verify' in detail:
                return K8sError(TLS, '{0}TLS verification failed: {1}'.format(_prefix(what), detail), what=what)
            return K8sError(NETWORK, '{0}network fault: {1}'.format(_prefix(what), getattr(exc, 'reason', message)),
                            what=what)
        err = classify_http(status, reason=getattr(exc, 'reason', None), message=data.get('message'),
                            status_reason=data.get('reason'), what=what)
        err.retry_after = parse_retry_after((getattr(exc, 'headers', None) or {}).get('Retry-After'))
        if err.retry_after is None and isinstance(data.get('details'), dict):
            err.retry_after = parse_retry_after(data['details'].get('retryAfterSeconds'))
        return err
    if 'ConfigException' in names:
        return K8sError(CONFIG, '{0}cannot configure the Kubernetes client: {1}'.format(_prefix(what), message), what=what)
    if 'SSLError' in names or 'CertificateError' in names or 'certificate verify failed' in message:
        return K8sError(TLS, '{0}TLS verification failed: {1}'.format(_prefix(what), message), what=what)
    reason_names = _names(getattr(exc, 'reason', None)) if getattr(exc, 'reason', None) is not None else []
    if 'NewConnectionError' in names + reason_names:  # urllib3 derives it from ConnectTimeoutError: refused
        reason_names = []
        names = [n for n in names if n not in ('ConnectTimeoutError', 'TimeoutError')]
    if any(n in list(names) + list(reason_names) for n in ('ReadTimeoutError', 'ConnectTimeoutError', 'TimeoutError',
                                                           'timeout', 'Timeout')) \
            or 'ReadTimeoutError' in message or 'ConnectTimeoutError' in message:
        # urllib3 wraps a slow answer in MaxRetryError(reason=ReadTimeoutError): a timeout, not a network fault.
        return K8sError(TIMEOUT, '{0}request timed out: {1}'.format(_prefix(what), message), what=what)
    if any(n in names for n in ('MaxRetryError', 'NewConnectionError', 'ProtocolError', 'ConnectionError',
                                'RemoteDisconnected', 'ConnectionResetError', 'ConnectionRefusedError',
                                'BrokenPipeError', 'IncompleteRead', 'HTTPError')):
        if 'SSLError' in message or 'CERTIFICATE_VERIFY_FAILED' in message:
            return K8sError(TLS, '{0}TLS verification failed: {1}'.format(_prefix(what), message), what=what)
        return K8sError(NETWORK, '{0}network fault: {1}'.format(_prefix(what), message), what=what)
    if isinstance(exc, OSError):
        return K8sError(NETWORK, '{0}network fault: {1}'.format(_prefix(what), message), what=what)
    if 'JSONDecodeError' in names:
        return K8sError(NETWORK, '{0}garbled answer: {1}'.format(_prefix(what), message), what=what)
    return K8sError(API, '{0}{1}: {2}'.format(_prefix(what), type(exc).__name__, message), what=what)


def parse_retry_after(value, now=None):
    """Seconds from a Retry-After header: delta-seconds, or an HTTP-Date (objects.parse_http_date) turned into
    seconds from ``now`` (epoch seconds, default: this machine's clock); never negative, None if unparsable."""
    if value in (None, ''):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retry_after_of(exc):
    """The Retry-After seconds a (classified) error carries, or None."""
    return getattr(classify_exception(exc), 'retry_after', None)


def _prefix(what):
    return '{0}: '.format(what) if what else ''


def is_transient(exc):
    """Retry predicate for single API calls (see retry.retry_call)."""
    return classify_exception(exc).transient


def is_not_found(exc):
    return classify_exception(exc).kind == NOT_FOUND


def is_conflict(exc):
    return classify_exception(exc).kind == CONFLICT
