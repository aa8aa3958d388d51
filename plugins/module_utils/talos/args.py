# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared Talos connection options (doc fragment tazlab.resilience.talos_auth)."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import resolve_auth

AUTH_OPTIONS = ('talosconfig', 'context', 'endpoints', 'ca', 'crt', 'key', 'timeout', 'connect_timeout', 'retries')


def talos_auth_argument_spec():
    """The connection options, as a fresh dict each call."""
    return dict(
        talosconfig=dict(type='path'),
        context=dict(type='str'),
        endpoints=dict(type='list', elements='str'),
        ca=dict(type='str'),
        crt=dict(type='str'),
        key=dict(type='str', no_log=True),
        timeout=dict(type='float', default=30.0),
        connect_timeout=dict(type='float', default=10.0),
        retries=dict(type='int', default=3),
    )


TALOS_AUTH_KWARGS = dict(required_together=[('ca', 'crt', 'key')])


def merge_auth_kwargs(**kwargs):
    out = dict(kwargs)
    for key, rules in TALOS_AUTH_KWARGS.items():
        out[key] = list(rules) + list(out.get(key) or [])
    return out


def auth_from_params(params, insecure=False):
    """TalosAuth from module params (raises TalosConfigError); ``insecure`` for maintenance-mode nodes."""
    if insecure:
        endpoints = params.get('endpoints') or ([params['node']] if params.get('node') else None)
        return resolve_auth(endpoints=endpoints, insecure=True)
    return resolve_auth(talosconfig=params.get('talosconfig'), context=params.get('context'),
                        endpoints=params.get('endpoints'), ca=params.get('ca'), crt=params.get('crt'),
                        key=params.get('key'))


def client_kwargs(params):
    if params.get('timeout') is not None and params['timeout'] <= 0:
        raise ValueError('timeout must be positive')
    if params.get('retries') is not None and params['retries'] < 0:
        raise ValueError('retries must be >= 0')
    return dict(timeout=params.get('timeout') or 30.0, connect_timeout=params.get('connect_timeout') or 10.0,
                retries=3 if params.get('retries') is None else params['retries'])


def talos_libraries(params=None):
    """The module runner's dependency probe for the Talos API client; imports it lazily."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import (
        GRPCLIB_IMPORT_ERROR, HAS_GRPCLIB, HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR)
    return [('grpclib', HAS_GRPCLIB, GRPCLIB_IMPORT_ERROR), ('protobuf', HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR)]
