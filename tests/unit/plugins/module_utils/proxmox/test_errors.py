"""Unit tests of Proxmox error classification (plugins/module_utils/proxmox/errors.py)."""

from __future__ import annotations

import socket

import pytest
import requests
from proxmoxer.core import AuthenticationError, ResourceException

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E


def resource(status, reason, errors=None):
    return ResourceException(status, 'x', reason, errors=errors)


@pytest.mark.parametrize('exc, kind, transient', [
    (resource(401, 'authentication failure'), E.AUTH_REJECTED, False),
    (resource(401, 'permission denied - invalid PVE ticket'), E.AUTH_REJECTED, False),
    (resource(403, 'Permission check failed (/vms/100, VM.PowerMgmt)'), E.PERMISSION, False),
    (resource(400, 'Parameter verification failed.', {'skiplock': 'Only root may use this option.'}), E.INVALID, False),
    (resource(595, 'No route to host'), E.HOST_OFFLINE, False),
    (resource(500, 'VM is locked (backup)'), E.LOCKED, False),
    (resource(500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"), E.LOCKED, False),
    (resource(500, 'cluster not ready - no quorum?'), E.NO_QUORUM, False),
    (resource(500, "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist"), E.NOT_FOUND, False),
    (resource(500, 'something else broke'), E.API, False),
    (resource(502, 'Bad Gateway'), E.NETWORK, True),
    (resource(503, 'Service Unavailable'), E.NETWORK, True),
    (resource(408, 'Request Timeout'), E.TIMEOUT, True),
    (AuthenticationError("Couldn't authenticate user: root@pam to https://h/api2/json/access/ticket code: 401"),
     E.AUTH_REJECTED, False),
    (AuthenticationError("Couldn't authenticate user: root@pam to https://h/api2/json/access/ticket code: 503"),
     E.NETWORK, True),
    (AuthenticationError("Couldn't authenticate user: root@pam to https://h/api2/json/access/ticket code: 595"),
     E.HOST_OFFLINE, False),
    (requests.exceptions.ConnectionError('Connection reset by peer'), E.NETWORK, True),
    (requests.exceptions.ChunkedEncodingError('broken'), E.NETWORK, True),
    (requests.exceptions.ReadTimeout('read timed out'), E.TIMEOUT, True),
    (requests.exceptions.ConnectTimeout('connect timed out'), E.TIMEOUT, True),
    (requests.exceptions.SSLError('certificate verify failed'), E.NETWORK, False),
    (ConnectionResetError(104, 'reset'), E.NETWORK, True),
    (socket.timeout('timed out'), E.TIMEOUT, True),
    (ValueError('Expecting value: line 1 column 1 (char 0)'), E.NETWORK, True),
    (KeyError('data'), E.API, False),
])
def test_classify_exception(exc, kind, transient):
    err = E.classify_exception(exc)
    assert err.kind == kind
    assert err.transient is transient
    assert E.is_transient(exc) is transient


def test_http_status_is_kept_and_message_readable():
    err = E.classify_exception(resource(595, 'No route to host'))
    assert err.status == 595
    assert 'No route to host' in err.message
    assert err.as_dict() == {'kind': 'host_offline', 'message': err.message, 'status': 595}


def test_errors_field_is_part_of_the_message():
    err = E.classify_exception(resource(400, 'Parameter verification failed.', {'skiplock': 'Only root may use'}))
    assert 'skiplock' in err.message and 'Only root may use' in err.message


@pytest.mark.parametrize('exitstatus, kind', [
    ('VM is locked (backup)', E.LOCKED),
    ('VM quit/powerdown failed - got timeout', E.TASK_FAILED),
    ("can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout", E.LOCKED),
    ('cluster not ready - no quorum?', E.NO_QUORUM),
    ("Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist", E.TASK_FAILED),
    ('unexpected status', E.TASK_FAILED),
])
def test_task_exit_classification_keeps_log(exitstatus, kind):
    log = ['starting', 'TASK ERROR: ' + exitstatus]
    err = E.classify_task_exit(exitstatus, upid='UPID:pve1:1:2:3:qmstop:100:root@pam:', log=log)
    assert err.kind == kind
    assert err.task_log == log
    assert err.exitstatus == exitstatus
    assert err.upid.startswith('UPID:pve1')
    assert exitstatus in err.message
    assert err.as_dict()['task_log'] == log


def test_proxmox_error_passes_through_and_rejects_unknown_kind():
    err = E.ProxmoxError(E.LOCKED, 'x')
    assert E.classify_exception(err) is err
    with pytest.raises(ValueError):
        raise E.ProxmoxError('weird', 'x')
