# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proxmox VE errors, classified.

Every failure the client sees becomes a ProxmoxError with a `kind` a caller (and a playbook, through
the module's `error_kind` result) can act on:

=================  =========================================================  =========
kind               what happened                                              transient
=================  =========================================================  =========
auth_rejected      401 / ticket refused: wrong password, token or expired     no
permission         403 Permission check failed                                no
invalid            400 Parameter verification failed (e.g. skiplock refused)  no
not_found          the VM / node / config does not exist                      no
network            connection refused/reset, TLS handshake broken, 502/503    yes
timeout            a request or a wait ran past its bound                     yes (requests only)
host_offline       595 No route to host: the PVE node is down / unreachable   no
locked             "VM is locked (backup)", config lock timeout               no
no_quorum          "cluster not ready - no quorum?" or quorate 0              no
task_failed        a worker task ended with an exit status other than OK      no
identity_mismatch  the VM is not the machine the caller meant (SMBIOS UUID)   no
api                any other API error                                        no
=================  =========================================================  =========

`host_offline` is not retried: the answer is definite for now, and the caller must report the power
state as UNKNOWN rather than waste its time budget. TLS verification failures are `network` but not
transient: retrying will not fix a certificate.
"""

from __future__ import annotations

import re

__all__ = [
    'AUTH_REJECTED', 'PERMISSION', 'INVALID', 'NOT_FOUND', 'NETWORK', 'TIMEOUT', 'HOST_OFFLINE', 'LOCKED',
    'NO_QUORUM', 'TASK_FAILED', 'IDENTITY', 'API', 'KINDS',
    'ProxmoxError', 'classify_exception', 'classify_http', 'classify_task_exit', 'is_transient',
]

AUTH_REJECTED = 'auth_rejected'
PERMISSION = 'permission'
INVALID = 'invalid'
NOT_FOUND = 'not_found'
NETWORK = 'network'
TIMEOUT = 'timeout'
HOST_OFFLINE = 'host_offline'
LOCKED = 'locked'
NO_QUORUM = 'no_quorum'
TASK_FAILED = 'task_failed'
IDENTITY = 'identity_mismatch'
API = 'api'
KINDS = (AUTH_REJECTED, PERMISSION, INVALID, NOT_FOUND, NETWORK, TIMEOUT, HOST_OFFLINE, LOCKED, NO_QUORUM,
         TASK_FAILED, IDENTITY, API)

_LOCKED = re.compile(r"VM is locked|CT is locked|can't lock file '[^']*' - got timeout|is locked \(", re.I)
_NO_QUORUM = re.compile(r'no quorum|cluster not ready', re.I)
_NOT_FOUND = re.compile(r"Configuration file '[^']*' does not exist|does not exist|no such (vm|node|resource)"
                        r"|hostname lookup '[^']*' failed", re.I)
_AUTH_CODE = re.compile(r'code: (\d{3})')


class ProxmoxError(Exception):
    """A classified Proxmox failure.

    kind: one of KINDS. status: HTTP status if any. transient: worth another try. task_log: the last
    lines of a failed task's log. upid: the task concerned, if any. exitstatus: the task's exit status.
    """

    def __init__(self, kind, message, status=None, transient=False, task_log=None, upid=None, exitstatus=None):
        super(ProxmoxError, self).__init__(message)
        if kind not in KINDS:
            raise ValueError('unknown error kind {0!r}'.format(kind))
        self.kind = kind
        self.message = message
        self.status = status
        self.transient = transient
        self.task_log = list(task_log or [])
        self.upid = upid
        self.exitstatus = exitstatus

    def as_dict(self):
        """The fields a module puts in its result."""
        out = {'kind': self.kind, 'message': self.message}
        for key in ('status', 'upid', 'exitstatus'):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.task_log:
            out['task_log'] = list(self.task_log)
        return out

    def __repr__(self):
        return 'ProxmoxError({0!r}, {1!r}, status={2!r})'.format(self.kind, self.message, self.status)


def _by_message(message, default):
    """The kind a PVE error message implies, or default."""
    if _LOCKED.search(message):
        return LOCKED
    if _NO_QUORUM.search(message):
        return NO_QUORUM
    if _NOT_FOUND.search(message):
        return NOT_FOUND
    return default


def classify_http(status, message=''):
    """A ProxmoxError for an HTTP error answer (status code and PVE's message)."""
    message = (message or '').strip()
    text = '{0} {1}'.format(status, message).strip()
    if status == 401:
        return ProxmoxError(AUTH_REJECTED, 'authentication rejected: ' + text, status=status)
    if status == 403:
        return ProxmoxError(PERMISSION, 'permission denied: ' + text, status=status)
    if status == 400:
        return ProxmoxError(INVALID, 'request refused: ' + text, status=status)
    if status == 595:
        return ProxmoxError(HOST_OFFLINE, 'PVE node unreachable (host offline): ' + text, status=status)
    if status in (502, 503, 504):
        return ProxmoxError(NETWORK, 'proxy or service unavailable: ' + text, status=status, transient=True)
    if status == 408:
        return ProxmoxError(TIMEOUT, 'request timed out: ' + text, status=status, transient=True)
    kind = _by_message(message, API)
    return ProxmoxError(kind, text, status=status)


def classify_task_exit(exitstatus, upid=None, log=None):
    """A ProxmoxError for a task that ended with exitstatus (not OK), with its last log lines."""
    kind = _by_message(exitstatus or '', TASK_FAILED)
    if kind == NOT_FOUND:
        kind = TASK_FAILED
    return ProxmoxError(kind, 'task {0} failed: {1}'.format(upid or '?', exitstatus), upid=upid,
                        exitstatus=exitstatus, task_log=log)


def _names(exc):
    """Class names along the MRO, so we classify requests/urllib3/proxmoxer errors without importing them."""
    return [cls.__name__ for cls in type(exc).__mro__]


def classify_exception(exc):
    """A ProxmoxError for anything the client stack raised (proxmoxer, requests, urllib3, OSError)."""
    if isinstance(exc, ProxmoxError):
        return exc
    names = _names(exc)
    message = str(exc) or type(exc).__name__
    if 'ResourceException' in names:
        status = getattr(exc, 'status_code', None)
        content = getattr(exc, 'content', '') or ''
        errors = getattr(exc, 'errors', None)
        if errors:
            content = '{0} - {1}'.format(content, errors)
        return classify_http(status, content)
    if 'AuthenticationError' in names:
        found = _AUTH_CODE.search(message)
        code = int(found.group(1)) if found else None
        if code is not None and code != 401 and code >= 500:
            # The login request itself failed on the way: a network or server fault, not a verdict.
            err = classify_http(code, message)
            if err.kind == API:
                err = ProxmoxError(NETWORK, 'login failed: ' + message, status=code, transient=True)
            return err
        return ProxmoxError(AUTH_REJECTED, 'authentication rejected: ' + message, status=code or 401)
    if 'SSLError' in names or 'CertificateError' in names:
        return ProxmoxError(NETWORK, 'TLS verification failed: ' + message, transient=False)
    if any(n in names for n in ('Timeout', 'ReadTimeout', 'ConnectTimeout', 'TimeoutError', 'socket.timeout')):
        return ProxmoxError(TIMEOUT, 'request timed out: ' + message, transient=True)
    if any(n in names for n in ('ConnectionError', 'ChunkedEncodingError', 'ProtocolError', 'RemoteDisconnected',
                                'ConnectionResetError', 'ConnectionRefusedError', 'BrokenPipeError',
                                'ContentDecodingError', 'IncompleteRead')):
        return ProxmoxError(NETWORK, 'network fault: ' + message, transient=True)
    if 'JSONDecodeError' in names or 'ValueError' in names and 'Expecting value' in message:
        return ProxmoxError(NETWORK, 'garbled answer: ' + message, transient=True)
    if isinstance(exc, OSError):
        return ProxmoxError(NETWORK, 'network fault: ' + message, transient=True)
    return ProxmoxError(API, '{0}: {1}'.format(type(exc).__name__, message))


def is_transient(exc):
    """The retry predicate for Proxmox calls (see retry.retry_call)."""
    return classify_exception(exc).transient
