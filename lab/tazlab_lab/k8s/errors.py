"""The API server's errors: ``ApiError`` and one subclass per reason the twin answers with.

A leaf module (it imports nothing of the twin), so ``resources``, ``selectors``, the store and the
server all raise the same errors without importing each other. ``err.status()`` renders the
``Status`` object the API returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: importing resources here would make a circle again
    from .resources import Resource

__all__ = ["HTTP_REASONS", "ApiError", "BadRequest", "Forbidden", "NotFound", "MethodNotAllowed", "Conflict",
           "AlreadyExists", "Expired", "UnsupportedMediaType", "Invalid", "TooManyRequests",
           "TooLargeResourceVersion", "STALE", "not_found", "conflict", "invalid"]

HTTP_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
                409: "Conflict", 410: "Gone", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
                429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class ApiError(Exception):
    """An apiserver error; ``status()`` renders the ``Status`` object the API returns."""

    code = 500
    reason = "InternalError"

    def __init__(self, *args: Any, **kw: Any):
        """ApiError(code, reason, message, details=None); a subclass: Sub(message, details=None)."""
        if args and isinstance(args[0], int):
            names = ("code", "reason", "message", "details")
        else:
            names = ("message", "details")
        kw.update(zip(names, args))
        if kw.get("code") is not None:
            self.code = int(kw["code"])
        if kw.get("reason") is not None:
            self.reason = kw["reason"]
        self.message = kw.get("message") or ""
        self.details = kw.get("details")
        super().__init__(self.message)

    def status(self) -> dict:
        st: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": self.message, "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.reason!r}, {self.message!r})"


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Expired(ApiError):
    code, reason = 410, "Expired"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


class TooLargeResourceVersion(ApiError):
    """The apiserver's "Too large resource version" (a watch or list from the future)."""

    code, reason = 504, "Timeout"

    def __init__(self, rv: int, current: int):
        super().__init__(f"Too large resource version: {rv}, current: {current}",
                         {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                          "retryAfterSeconds": 1})


def _details(r: "Resource", name: str, **extra: Any) -> dict:
    d: dict[str, Any] = {"name": name}
    if r.group:
        d["group"] = r.group
    d["kind"] = r.plural
    d.update(extra)
    return d


def not_found(r: "Resource", name: str) -> NotFound:
    return NotFound(f"{r.qualified} \"{name}\" not found", _details(r, name))


def conflict(r: "Resource", name: str, why: str) -> Conflict:
    return Conflict(f"Operation cannot be fulfilled on {r.qualified} \"{name}\": {why}", _details(r, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(r: "Resource", name: str, causes: list[tuple[str, str, str]]) -> Invalid:
    """causes: (field, type, message) e.g. ("metadata.name", "FieldValueRequired", "Required value: ...")."""
    text = ", ".join(f"{f}: {m}" for f, _, m in causes)
    msg = f"{r.kind} \"{name}\" is invalid: {text}" if len(causes) == 1 else \
        f"{r.kind} \"{name}\" is invalid: [{text}]"
    det: dict[str, Any] = {"name": name}
    if r.group:
        det["group"] = r.group
    det["kind"] = r.kind
    det["causes"] = [{"reason": t, "message": m, "field": f} for f, t, m in causes]
    return Invalid(msg, det)
