# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the Talos API client; every message names the endpoint or node it is about."""

from __future__ import annotations


class TalosError(Exception):
    """Base class of every Talos client error."""


class TalosConfigError(TalosError):
    """talosconfig / credentials are missing or malformed."""


class TalosPatchError(TalosError):
    """A config patch cannot be applied."""


class TalosApiError(TalosError):
    """The API answered with a gRPC error status.

    ``code`` is the gRPC status code (int), ``status`` its name (``PERMISSION_DENIED``...), ``node`` the
    node the error is about (endpoint or target), ``rpc`` the method path.
    """

    def __init__(self, message, code=None, status=None, node=None, rpc=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.node = node
        self.rpc = rpc


class TalosNodeError(TalosApiError):
    """One node of a (one-to-many) reply failed: messages[i].metadata.error was set."""


class TalosPermissionDenied(TalosApiError):
    """The client certificate's role (Organization) does not allow the call."""


class TalosUnreachable(TalosError):
    """No endpoint answered (connection refused, timeout, network unreachable)."""


class TalosTLSError(TalosError):
    """The TLS handshake failed (wrong CA, certificate does not match the address, client cert refused)."""


class TalosDisconnected(TalosError):
    """The connection dropped in the middle of a call (e.g. the node went down for a reboot)."""


class TalosTimeout(TalosError):
    """A call or a wait ran past its deadline."""
