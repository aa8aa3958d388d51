"""The Kubernetes twin's API server: HTTPS on loopback, the apiserver's REST protocol over the store.

What clients send and what the apiserver answers is ``shared/reference/kubernetes-api.md``; handler
behaviour follows ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers`` (get, list, watch, create,
update, patch, delete, deletecollection); the eviction subresource decodes its body here and leaves
the PodDisruptionBudget logic to ``eviction.py`` (``pkg/registry/core/pod/storage/eviction.go``).

    server = KubeApiServer(store, host="127.0.0.1", port=0, workdir=Path(...))
    await server.start()        # server.url, .ca_path, .kubeconfig_path, .admin_token, .reader_token
    ...
    await server.stop()

Authentication: client certificates signed by the server's CA (CN = user, O = groups) or bearer
tokens; no anonymous access (401). Authorization: ``system:masters`` may do everything, the ``view``
group (the reader token) may get/list/watch; everyone else gets 403.

Not served: ``/openapi/v2`` and ``/openapi/v3`` (404), so ``kubectl apply``/``kubectl create -f`` need
``--validate=false``; server-side apply (``application/apply-patch+yaml``) answers 415; ``as=Table``
is answered with the plain list (kubectl accepts that); pods/log, exec, attach and port-forward are 404.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import secrets
import ssl
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from . import discovery, table
from .pki import CertificateAuthority, write_pair
from .resources import BY_PATH, GROUPS, RESOURCES, Resource
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .errors import (HTTP_REASONS, STALE, ApiError, BadRequest, Expired, Forbidden, Invalid, MethodNotAllowed,
                     NotFound, UnsupportedMediaType, conflict)
from .eviction import evict
from .objects import Entry
from .store import Store, delete_kwargs
from .watch import WatchEvent

log = logging.getLogger(__name__)

JSON = "application/json"
PATCH_TYPES = {
    "application/strategic-merge-patch+json": "strategic",
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
}
READ_VERBS = {"get", "list", "watch"}


def _status_ok(details: dict | None = None, code: int | None = None) -> dict:
    st: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        st["details"] = details
    if code is not None:
        st["code"] = code
    return st


def _std_headers(extra: dict | None = None) -> dict:
    """Headers every apiserver response carries."""
    h = {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private", "X-Content-Type-Options": "nosniff"}
    if extra:
        h.update(extra)
    return h


def _response(body: bytes | dict, status: int = 200, headers: dict | None = None) -> web.Response:
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, reason=HTTP_REASONS.get(status), content_type=JSON,
                        headers=_std_headers(headers))


def _error(exc: ApiError) -> web.Response:
    headers = None
    retry = (exc.details or {}).get("retryAfterSeconds") if isinstance(exc.details, dict) else None
    if retry:
        headers = {"Retry-After": str(retry)}
    return _response(exc.status(), exc.code, headers)


def _bool(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1")


def _int_param(q: Any, name: str) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {v!r}: strconv.ParseInt: parsing {v!r}: invalid syntax") \
            from None


def _encode_continue(rv: int, key: tuple) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0] or ''}/{key[1]}\u0000"},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple]:
    try:
        pad = "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(token + pad))
        start = data["start"].rstrip("\u0000")
        ns, _, name = start.partition("/")
        return int(data["rv"]), (ns or None, name)
    except Exception:
        raise BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version "
                         "meta.k8s.io/v1)") from None


class _Route:
    __slots__ = ("res", "namespace", "name", "sub", "watch_path")

    def __init__(self, res: Resource, namespace: str | None, name: str | None, sub: str | None, watch_path: bool):
        self.res, self.namespace, self.name, self.sub, self.watch_path = res, namespace, name, sub, watch_path


class ApiFault:
    """One injected fault of the API server: requests of ``verb`` (``*`` = any) whose path matches the
    regular expression ``path`` get ``action``, at most ``times`` times (None: until cleared).

    Actions, as a real apiserver or the network in front of it produces them:
    ``status`` (HTTP ``code`` with a Status body: 500/503/504, 409 Conflict, 429 TooManyRequests with
    ``Retry-After: retry_after``), ``delay`` (answer after ``secs`` real seconds: a slow apiserver),
    ``drop`` (close the connection without an answer, nothing done), ``drop-after-commit`` (do the
    request, commit its write, then close the connection before the answer: a lost response).
    """

    ACTIONS = ("status", "delay", "drop", "drop-after-commit")
    REASONS = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 502: "InternalError",
               503: "ServiceUnavailable", 504: "Timeout"}

    def __init__(self, action: str, verb: str = "*", path: str = ".*", code: int | None = None,
                 retry_after: float | None = None, secs: float | None = None, times: int | None = None):
        import re
        if action not in self.ACTIONS:
            raise ValueError("action must be one of {0}".format(", ".join(self.ACTIONS)))
        if action == "status" and code is None:
            raise ValueError("action status needs code")
        self.action = action
        self.verb = verb or "*"
        self.path = path or ".*"
        self.pattern = re.compile(self.path)
        self.code = None if code is None else int(code)
        self.retry_after = retry_after
        self.secs = float(secs or 0)
        self.times = None if times is None else int(times)
        self.hits = 0

    def matches(self, verb: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (self.verb == "*" or self.verb == verb) and bool(self.pattern.search(path))

    def describe(self) -> dict:
        return {"action": self.action, "verb": self.verb, "path": self.path, "code": self.code,
                "retry_after": self.retry_after, "secs": self.secs, "times": self.times, "hits": self.hits}


class KubeApiServer:
    """An HTTPS Kubernetes API server over a :class:`Store`."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0, workdir: Path | str | None = None,
                 *, git_version: str = "v1.32.4", extra_sans: list[str] | None = None,
                 bookmark_interval: float = 60.0, default_watch_timeout: float = 1800.0,
                 ca: CertificateAuthority | None = None):
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError("the twin binds loopback only")
        self.store = store
        self.host = host
        self.port = port
        self.workdir = Path(workdir) if workdir is not None else Path.cwd() / ".kube-twin"
        self.git_version = git_version
        self.extra_sans = list(extra_sans or [])
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.admin_token = secrets.token_hex(16)
        self.reader_token = secrets.token_hex(16)
        self.tokens: dict[str, tuple[str, list[str]]] = {
            self.admin_token: ("admin", ["system:masters", "system:authenticated"]),
            self.reader_token: ("reader", ["view", "system:authenticated"]),
        }
        self.url = ""
        self.ca_path = self.workdir / "ca.crt"
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self.ca: CertificateAuthority | None = None
        self._given_ca = ca   # the cluster's Kubernetes CA (a provisioned cluster), else a fresh one at start
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._watches: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Injected faults (``tazlab-lab fault k8s-api``), checked in order; the first that matches acts.
        self.faults: list[ApiFault] = []

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.store.warm()  # cached JSON of every object: the first list of 30,000 pods is a join
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca = self._given_ca or CertificateAuthority("kubernetes")
        self.ca.write(self.ca_path)
        ips = ["127.0.0.1"]
        dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"]
        for h in [self.host, *self.extra_sans]:
            try:
                import ipaddress

                ipaddress.ip_address(h)
                if h not in ips:
                    ips.append(h)
            except ValueError:
                if h not in dns:
                    dns.append(h)
        serving = self.ca.issue("kube-apiserver", server=True, ips=ips, dns=dns)
        write_pair(serving, self.workdir / "apiserver.crt", self.workdir / "apiserver.key")
        admin = self.ca.issue("admin", ["system:masters"])
        write_pair(admin, self.workdir / "admin.crt", self.workdir / "admin.key")
        self._admin_pair = admin

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.workdir / "apiserver.crt", self.workdir / "apiserver.key")
        ctx.load_verify_locations(cafile=str(self.ca_path))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._date_header)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ctx, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        hostpart = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"https://{hostpart}:{self.port}"
        self.write_kubeconfig(self.kubeconfig_path)

    async def _date_header(self, request: web.Request, response: web.StreamResponse) -> None:
        """The Date header from the simulated clock. On a real cluster the apiserver's Date and the times in
        the objects (lease renewals, conditions) come from the same clock; clients that judge ages by the
        Date header (how long a kubelet lease has been silent) must see the same here."""
        response.headers["Date"] = email.utils.formatdate(self.store.clock.now(), usegmt=True)

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for t in list(self._watches):
            t.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path | str, token: str | None = None, user: str | None = None,
                         namespace: str = "default") -> Path:
        """A kubeconfig for the admin client certificate, or for ``token`` when given."""
        path = Path(path)
        ca_b64 = base64.b64encode(self.ca_path.read_bytes()).decode()
        if token is None:
            user = user or "admin"
            creds = {"client-certificate-data": base64.b64encode(self._admin_pair.cert_pem).decode(),
                     "client-key-data": base64.b64encode(self._admin_pair.key_pem).decode()}
        else:
            user = user or self.tokens.get(token, ("token", []))[0]
            creds = {"token": token}
        cfg = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "tazlab-lab", "cluster": {"server": self.url, "certificate-authority-data": ca_b64}}],
            "users": [{"name": user, "user": creds}],
            "contexts": [{"name": f"{user}@tazlab-lab",
                          "context": {"cluster": "tazlab-lab", "user": user, "namespace": namespace}}],
            "current-context": f"{user}@tazlab-lab",
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)
        return path

    def issue_client_cert(self, user: str, groups: list[str], workdir: Path | None = None) -> tuple[Path, Path]:
        """A client certificate for another identity (CN = user, O = groups); -> (cert, key) paths."""
        assert self.ca is not None
        pair = self.ca.issue(user, groups)
        d = workdir or self.workdir
        cert, key = d / f"{user}.crt", d / f"{user}.key"
        write_pair(pair, cert, key)
        return cert, key

    # -- authn / authz -------------------------------------------------------------------------
    def _authenticate(self, request: web.Request) -> tuple[str, list[str]] | None:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            ident = self.tokens.get(auth[7:].strip())
            return ident  # a wrong token is a 401 even when a certificate is present too
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            cn, orgs = None, []
            for rdn in peer.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
                    elif k == "organizationName":
                        orgs.append(v)
            if cn:
                return cn, orgs + ["system:authenticated"]
        return None

    @staticmethod
    def _authorize(groups: list[str], verb: str) -> bool:
        if "system:masters" in groups:
            return True
        if "view" in groups and verb in READ_VERBS:
            return True
        return False

    @staticmethod
    def _forbidden(user: str, verb: str, route: _Route) -> Forbidden:
        r = route.res
        res_name = r.plural + (f"/{route.sub}" if route.sub else "")
        scope = f"in the namespace \"{route.namespace}\"" if route.namespace else "at the cluster scope"
        who = f"{r.qualified} \"{route.name}\"" if route.name else r.qualified
        det: dict[str, Any] = {}
        if route.name:
            det["name"] = route.name
        if r.group:
            det["group"] = r.group
        det["kind"] = r.plural
        return Forbidden(f"{who} is forbidden: User \"{user}\" cannot {verb} resource \"{res_name}\" in API group "
                         f"\"{r.group}\" {scope}", det)

    # -- dispatch ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            ident = self._authenticate(request)
            if ident is None:
                return _response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": "Unauthorized", "reason": "Unauthorized", "code": 401}, 401)
            return await self._dispatch(request, ident)
        except ApiError as exc:
            return _error(exc)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # never a traceback on the wire
            log.exception("internal error serving %s %s", request.method, request.path)
            return _error(ApiError(500, "InternalError", f"Internal error occurred: {exc}", {}))

    async def _dispatch(self, request: web.Request, ident: tuple[str, list[str]]) -> web.StreamResponse:
        path = request.path
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        method = request.method
        if (method == "GET" or method == "HEAD") and parts in (["api"], ["apis"]):
            av = discovery.wants_aggregated(request.headers.get("Accept", ""))
            if av:
                body = json.dumps(discovery.aggregated(parts == ["api"], av), separators=(",", ":")).encode()
                return web.Response(body=body, status=200, headers=_std_headers({
                    "Content-Type": f"application/json;g=apidiscovery.k8s.io;v={av};as=APIGroupDiscoveryList"}))
        if method == "GET" or method == "HEAD":
            doc = self._discovery(parts)
            if doc is not None:
                if isinstance(doc, str):
                    return web.Response(text=doc, content_type="text/plain")
                return _response(doc)
        route = self._route(parts)
        if route is None:
            raise NotFound("the server could not find the requested resource", {})
        q = request.query
        verb = self._verb(method, route, q)
        if route.res.virtual:  # self reviews: every authenticated user may ask about itself
            if verb != "create":
                raise MethodNotAllowed("the server does not allow this method on the requested resource", {})
            self.store.requests[(verb, route.res.key)] += 1
            return await self._self_review(request, route, ident)
        if not self._authorize(ident[1], verb):
            raise self._forbidden(ident[0], verb, route)
        sub = f"/{route.sub}" if route.sub else ""
        self.store.requests[(verb, route.res.key + sub)] += 1
        handler = getattr(self, f"_do_{verb}")
        fault = next((f for f in self.faults if f.matches(verb, path)), None)
        if fault is None:
            return await handler(request, route)
        fault.hits += 1
        if fault.action == "status":
            reason = ApiFault.REASONS.get(fault.code, "InternalError")
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer()
                                             else fault.retry_after)
            message = {409: "Operation cannot be fulfilled: the object has been modified; please apply your "
                            "changes to the latest version and try again",
                       429: "Too many requests, please try again later."}.get(fault.code, "injected fault")
            return _response(ApiError(fault.code, reason, message, {}).status(), fault.code, headers)
        if fault.action == "delay":
            await asyncio.sleep(fault.secs)
            return await handler(request, route)
        if fault.action == "drop-after-commit":
            await handler(request, route)
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("injected fault: connection dropped")

    def _discovery(self, parts: list[str]) -> dict | str | None:
        if parts == ["version"]:
            minor = self.git_version.lstrip("v").split(".")[1]
            return {"major": "1", "minor": minor, "emulationMajor": "1", "emulationMinor": minor,
                    "minCompatibilityMajor": "1", "minCompatibilityMinor": str(int(minor) - 1),
                    "gitVersion": self.git_version, "gitCommit": "0" * 40, "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.8", "compiler": "gc",
                    "platform": "linux/amd64"}
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return "ok"
        if parts == ["api"]:
            return discovery.api_versions(f"{self.host}:{self.port}")
        if parts == ["api", "v1"]:
            return discovery.resource_list("", "v1")
        if parts == ["apis"]:
            return discovery.group_list()
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(parts[1])
            if doc is None:
                raise NotFound("the server could not find the requested resource", {})
            return doc
        if len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(parts[1], parts[2])
            if doc is None:
                raise NotFound("the server could not find the requested resource", {})
            return doc
        return None

    @staticmethod
    def _route(parts: list[str]) -> _Route | None:
        if len(parts) >= 2 and parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if version not in GROUPS.get(group, {}):
            return None
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        namespace = None
        if len(rest) == 3 and rest[0] == "namespaces" and rest[2] in ("status", "finalize") and not group:
            pass  # /api/v1/namespaces/<name>/status|finalize: a subresource of the namespace itself
        elif len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return None
        res = BY_PATH.get((group, version, rest[0]))
        if res is None:
            return None
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) >= 3 else None
        if len(rest) > 3 or name == "":
            return None
        if namespace is not None and not res.namespaced:
            return None
        if res.namespaced and namespace is None and name is not None:
            return None
        if sub is not None and sub not in res.subresources:
            return None
        return _Route(res, namespace, name, sub, watch_path)

    @staticmethod
    def _verb(method: str, route: _Route, q: Any) -> str:
        if route.res.namespaced and route.namespace is None and method in ("POST", "DELETE"):
            # /api/v1/pods serves list and watch across namespaces only
            raise MethodNotAllowed("the server does not allow this method on the requested resource",
                                   {"kind": route.res.plural, **({"group": route.res.group} if route.res.group else {})})
        if method in ("GET", "HEAD"):
            if route.watch_path or _bool(q.get("watch")):
                return "watch"
            return "get" if route.name else "list"
        if method == "POST":
            if route.name is None or route.sub in ("eviction", "binding"):
                return "create"
        if method == "PUT" and route.name:
            return "update"
        if method == "PATCH" and route.name:
            return "patch"
        if method == "DELETE":
            if route.name and not route.sub:
                return "delete"
            if route.name is None and "deletecollection" in route.res.verbs:
                return "deletecollection"
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource",
                               {"kind": route.res.plural, **({"group": route.res.group} if route.res.group else {})})

    # -- body decoding -------------------------------------------------------------------------
    @staticmethod
    async def _body(request: web.Request, *, required: bool = True) -> Any:
        raw = await request.read()
        if not raw.strip():
            if required:
                raise BadRequest("the body of the request was empty")  # not reached by real clients
            return None
        ctype = (request.content_type or "").lower()
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise BadRequest(f"error converting YAML to JSON: {exc}") from None
        if ctype == "application/vnd.kubernetes.protobuf":
            raise UnsupportedMediaType("the body of the request was in an unknown format - accepted media types "
                                       "include: application/json, application/yaml")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"couldn't get version/kind; json parse error: {exc}") from None

    @staticmethod
    def _check_kind(route: _Route, body: Any, kinds: tuple[str, ...] | None = None) -> dict:
        r = route.res
        if not isinstance(body, dict):
            raise BadRequest(f"the object provided is unrecognized (must be of type {r.kind}): couldn't get "
                             f"version/kind; json parse error: json: cannot unmarshal {type(body).__name__} into "
                             f"Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
                             f"Kind string \"json:\\\"kind,omitempty\\\"\" }}")
        kinds = kinds or (r.kind,)
        kind = body.get("kind")
        if kind and kind not in kinds:
            raise BadRequest(f"the object provided is unrecognized (must be of type {kinds[0]}): no kind "
                             f"\"{kind}\" is registered for version \"{body.get('apiVersion', '')}\"")
        av = body.get("apiVersion")
        if av and kinds == (r.kind,) and av != r.api_version:
            raise BadRequest(f"the API version in the data ({av}) does not match the expected API version "
                             f"({r.api_version})")
        if body.get("metadata") is not None and not isinstance(body.get("metadata"), dict):
            raise BadRequest("json: cannot unmarshal into Go struct field Object.metadata of type v1.ObjectMeta")
        return body

    # -- read ----------------------------------------------------------------------------------
    async def _do_get(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        if route.sub == "log":
            raise NotFound(f"the server could not find the requested resource ( pods/log {route.name})", {})
        e = self.store.get_entry(r.key, route.namespace, route.name)
        if route.sub == "scale":
            return _response(self._scale(r, e.obj))
        tv = table.wants_table(request.headers.get("Accept", ""))
        if tv and not route.sub:
            return _response(table.table(r, [e.obj], self.store.clock.now(),
                                         {"resourceVersion": e.obj["metadata"]["resourceVersion"]}, tv,
                                         include=request.query.get("includeObject", "Metadata")))
        return _response(e.raw)

    async def _do_list(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        q = request.query
        limit = _int_param(q, "limit")
        start = None
        token = q.get("continue")
        if token:
            crv, start = _decode_continue(token)
            if crv < self.store.compacted_resource_version:
                raise Expired("The provided continue parameter is too old to display a consistent list result. You "
                              "can start a new list without the continue parameter, or use the continue token in "
                              "this response to retrieve the remainder of the results. Continuing with the "
                              "provided token results in an inconsistent list - objects that were created, modified, "
                              "or deleted between the time the first chunk was returned and now may show up in the "
                              "list.")
        entries, remaining, last, rv = self.store.list_entries(
            r.key, route.namespace, q.get("labelSelector"), q.get("fieldSelector"),
            limit=limit if limit and limit > 0 else None, start_after=start)
        if token:
            rv = crv
        meta = {"resourceVersion": str(rv)}
        if last is not None:
            meta["continue"] = _encode_continue(rv, last)
            if not q.get("labelSelector") and not q.get("fieldSelector"):
                meta["remainingItemCount"] = remaining  # unknown (omitted) when a selector filters the list
        tv = table.wants_table(request.headers.get("Accept", ""))
        if tv:
            return _response(table.table(r, [e.obj for e in entries], self.store.clock.now(), meta, tv,
                                         include=q.get("includeObject", "Metadata")))
        head = json.dumps({"kind": r.list_kind, "apiVersion": r.api_version, "metadata": meta},
                          separators=(",", ":")).encode()
        if r.custom:  # unstructured items keep their apiVersion and kind
            items = b",".join(e.raw for e in entries)
        else:  # typed lists encode their items without TypeMeta, as the apiserver does
            pre = json.dumps({"apiVersion": r.api_version, "kind": r.kind}, separators=(",", ":")).encode()[:-1] + b","
            n = len(pre)
            items = b",".join(b"{" + raw[n:] if raw.startswith(pre) else raw for raw in (e.raw for e in entries))
        body = b"".join((head[:-1], b',"items":[', items, b"]}"))
        return _response(body)

    @staticmethod
    def _scale(r: Resource, obj: dict) -> dict:
        meta = obj["metadata"]
        sel = ((obj.get("spec") or {}).get("selector") or {})
        ml = sel.get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in ml.items())}}

    # -- watch ---------------------------------------------------------------------------------
    async def _do_watch(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        q = request.query
        store = self.store
        lmatch = None
        try:
            lmatch = parse_label_selector(q.get("labelSelector"))
        except SelectorError as exc:
            raise BadRequest(str(exc)) from None
        fsel = q.get("fieldSelector")
        if route.name:  # /watch/namespaces/ns/pods/name
            fsel = f"metadata.name={route.name}" + (f",{fsel}" if fsel else "")
        fmatch, _ = parse_field_selector(fsel, r)
        ns = route.namespace

        def matches(obj: dict) -> bool:
            if ns is not None and obj["metadata"].get("namespace") != ns:
                return False
            if fmatch is not None and not fmatch(obj):
                return False
            if lmatch is not None and not lmatch(obj):
                return False
            return True

        timeout = _int_param(q, "timeoutSeconds")
        timeout_s = float(timeout) if timeout and timeout > 0 else self.default_watch_timeout
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        initial_events = _bool(q.get("sendInitialEvents"))
        rv_param = q.get("resourceVersion", "")
        if rv_param not in ("", "0"):
            try:
                start_rv = int(rv_param)
            except ValueError:
                raise BadRequest(f"invalid resource version: strconv.ParseUint: parsing \"{rv_param}\": invalid "
                                 f"syntax") from None
        else:
            start_rv = None
        if initial_events and q.get("resourceVersionMatch") != "NotOlderThan":
            raise Invalid("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: "
                          "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                          {"group": "meta.k8s.io", "kind": "ListOptions"})

        tv = table.wants_table(request.headers.get("Accept", ""))
        first_table = [True]
        clock = store.clock

        def render(etype: bytes, entry: Entry) -> bytes:
            if not tv:
                return b'{"type":"' + etype + b'","object":' + entry.raw + b"}\n"
            obj = table.table(r, [entry.obj], clock.now(), {"resourceVersion": entry.obj["metadata"].get(
                "resourceVersion", "")}, tv, with_columns=first_table[0], include=q.get("includeObject", "Metadata"))
            first_table[0] = False  # the apiserver sends the column definitions with the first event only
            return json.dumps({"type": etype.decode(), "object": obj}, separators=(",", ":")).encode() + b"\n"

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        watcher = None

        def on_event(ev: WatchEvent) -> None:
            if ev.res == r.key and not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, ev)

        backlog: list[bytes] = []
        error_line = None
        with store.transaction():
            watcher = store.add_watcher(on_event)
            current_rv = store.resource_version
            if start_rv is None or initial_events:
                entries = store.list_entries(r.key, ns if r.namespaced else None)[0]
                for e in entries:
                    if matches(e.obj):
                        backlog.append(render(b"ADDED", e))
                if initial_events:
                    backlog.append(self._bookmark(r, current_rv, initial_end=True))
                last_rv = current_rv
            else:
                try:
                    evs = store.events_since(min(start_rv, current_rv), r.key)
                except ApiError as exc:
                    error_line = json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n"
                    evs = []
                for ev in evs:
                    line = self._event_line(ev, matches, render)
                    if line:
                        backlog.append(line)
                last_rv = max(current_rv, start_rv)

        resp = web.StreamResponse(status=200, reason="OK", headers=_std_headers({"Content-Type": JSON}))
        resp.enable_chunked_encoding()
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        try:
            await resp.prepare(request)
            if error_line is not None:
                await resp.write(error_line)
                return resp
            if backlog:
                await resp.write(b"".join(backlog))
            deadline = loop.time() + timeout_s
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout=wait)
                except asyncio.TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        await resp.write(self._bookmark(r, max(last_rv, store.resource_version)))
                        next_bookmark = loop.time() + self.bookmark_interval
                    continue
                if ev.rv <= last_rv:
                    continue
                last_rv = ev.rv
                chunk = []
                line = self._event_line(ev, matches, render)
                if line:
                    chunk.append(line)
                while not queue.empty():  # batch what is already there
                    ev = queue.get_nowait()
                    if ev.rv <= last_rv:
                        continue
                    last_rv = ev.rv
                    line = self._event_line(ev, matches, render)
                    if line:
                        chunk.append(line)
                if chunk:
                    await resp.write(b"".join(chunk))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watcher.cancel()
            if task is not None:
                self._watches.discard(task)
        return resp

    @staticmethod
    def _bookmark(r: Resource, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": r.kind, "apiVersion": r.api_version, "metadata": meta}
        return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def _event_line(ev: WatchEvent, matches: Any, render: Any) -> bytes | None:
        new_ok = matches(ev.entry.obj)
        old_ok = ev.old is not None and matches(ev.old.obj)
        etype = ev.type
        if etype == "ADDED":
            if not new_ok:
                return None
        elif etype == "MODIFIED":
            if new_ok and not old_ok:
                etype = "ADDED"
            elif old_ok and not new_ok:
                etype = "DELETED"
            elif not new_ok:
                return None
        elif etype == "DELETED":
            if not (old_ok or new_ok):
                return None
        return render(etype.encode(), ev.entry)

    # -- write ---------------------------------------------------------------------------------
    @staticmethod
    def _dry_run(q: Any) -> bool:
        vals = q.getall("dryRun", [])
        for v in vals:
            if v != "All":
                raise BadRequest(f"Invalid dry run value: {v}")  # the apiserver only knows "All"
        return bool(vals)

    async def _do_create(self, request: web.Request, route: _Route) -> web.StreamResponse:
        if route.sub == "eviction":
            return await self._evict(request, route)
        if route.sub == "binding":
            return await self._bind(request, route)
        r = route.res
        body = self._check_kind(route, await self._body(request))
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if r.namespaced:
            bns = meta.get("namespace")
            if bns and bns != route.namespace:
                raise BadRequest("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
            if route.namespace is None:
                raise NotFound("the server could not find the requested resource", {})
            meta["namespace"] = route.namespace
        if meta.get("resourceVersion"):
            raise BadRequest("resourceVersion should not be set on objects to be created")
        obj = self.store.create(r.key, body, api=True, dry_run=self._dry_run(request.query))
        return _response(obj, 201)

    async def _do_update(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        if route.sub == "scale":
            return await self._scale_write(request, route, None)
        if route.sub not in (None, "status", "finalize"):
            raise MethodNotAllowed("the server does not allow this method on the requested resource", {})
        body = self._check_kind(route, await self._body(request))
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if meta.get("name") and meta["name"] != route.name:
            raise BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL "
                             f"({route.name})")
        meta["name"] = route.name
        if r.namespaced:
            if meta.get("namespace") and meta["namespace"] != route.namespace:
                raise BadRequest("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
            meta["namespace"] = route.namespace
        existed = True
        try:
            self.store.get_entry(r.key, route.namespace, route.name)
        except NotFound:
            existed = False
        if route.sub == "finalize":
            obj = self._finalize_namespace(body)
        else:
            obj = self.store.update(r.key, body, subresource=route.sub or "", api=True,
                                    dry_run=self._dry_run(request.query))
        return _response(obj, 200 if existed else 201)

    def _finalize_namespace(self, body: dict) -> dict:
        name = body["metadata"]["name"]
        cur = self.store.get("namespaces", None, name)
        cur.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
        return self.store.update("namespaces", cur)

    async def _do_patch(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        ctype = (request.content_type or "").lower()
        ptype = PATCH_TYPES.get(ctype)
        if ptype is None or (ptype == "strategic" and r.custom):
            accepted = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            if ptype is None and not r.custom:
                accepted = ("application/json-patch+json, application/merge-patch+json, "
                            "application/strategic-merge-patch+json")
            raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media types "
                                       f"include: {accepted}")
        raw = await request.read()
        try:
            patch = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise BadRequest(f"error decoding patch: {exc}") from None
        if patch is None:
            raise BadRequest("the body of the request was empty")
        if route.sub == "scale":
            return await self._scale_write(request, route, (patch, ptype))
        if route.sub not in (None, "status"):
            raise MethodNotAllowed("the server does not allow this method on the requested resource", {})
        obj = self.store.patch(r.key, route.namespace, route.name, patch, ptype, subresource=route.sub or "",
                               api=True, dry_run=self._dry_run(request.query))
        return _response(obj)

    async def _scale_write(self, request: web.Request, route: _Route, patch: tuple | None) -> web.StreamResponse:
        r = route.res
        cur = self.store.get(r.key, route.namespace, route.name)
        scale = self._scale(r, cur)
        if patch is None:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise BadRequest("the object provided is unrecognized (must be of type Scale)")
            new_scale = body
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != cur["metadata"]["resourceVersion"]:
                raise conflict(r, route.name, STALE)
        else:
            from .patch import json_merge, json_patch, strategic_merge, PatchError

            p, ptype = patch
            try:
                new_scale = {"strategic": lambda: strategic_merge(scale, p, "Scale"),
                             "merge": lambda: json_merge(scale, p),
                             "json": lambda: json_patch(scale, p)}[ptype]()
            except PatchError as exc:
                raise (BadRequest(str(exc)) if exc.code == 400 else Invalid(str(exc))) from None
        replicas = ((new_scale or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise Invalid(f"Scale.autoscaling \"{route.name}\" is invalid: spec.replicas: Invalid value: "
                          f"{replicas}: must be greater than or equal to 0",
                          {"name": route.name, "group": "autoscaling", "kind": "Scale"})
        cur["spec"]["replicas"] = replicas
        obj = self.store.update(r.key, cur, subresource="", api=True)
        return _response(self._scale(r, obj))

    # -- delete --------------------------------------------------------------------------------
    async def _delete_options(self, request: web.Request) -> dict:
        q = request.query
        opts: dict[str, Any] = {}
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise BadRequest(f"couldn't get version/kind; json parse error: {exc}") from None
            if not isinstance(body, dict):
                raise BadRequest("the body of the request was in an unknown format - DeleteOptions expected")
            if body.get("kind") not in (None, "DeleteOptions"):
                raise BadRequest(f"the object provided is unrecognized (must be of type DeleteOptions): no kind "
                                 f"\"{body.get('kind')}\" is registered")
            opts.update(body)
        for name in ("gracePeriodSeconds",):
            v = _int_param(q, name)
            if v is not None:
                opts[name] = v
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("orphanDependents"):
            opts["orphanDependents"] = _bool(q["orphanDependents"])
        if q.getall("dryRun", []):
            opts["dryRun"] = q.getall("dryRun")
        return self._check_delete_options(opts)

    @staticmethod
    def _check_delete_options(opts: dict) -> dict:
        """The DeleteOptions decoding errors (400) before anything is touched."""
        types = {"gracePeriodSeconds": (int, "int64"), "propagationPolicy": (str, "v1.DeletionPropagation"),
                 "preconditions": (dict, "v1.Preconditions"), "orphanDependents": (bool, "bool"),
                 "dryRun": (list, "[]string")}
        for f, (t, go) in types.items():
            v = opts.get(f)
            if v is not None and (not isinstance(v, t) or (t is int and isinstance(v, bool))):
                raise BadRequest(f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                                 f"DeleteOptions.{f} of type {go}")
        for f in ("uid", "resourceVersion"):
            v = (opts.get("preconditions") or {}).get(f)
            if v is not None and not isinstance(v, str):
                raise BadRequest(f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                                 f"Preconditions.preconditions.{f} of type string")
        for v in opts.get("dryRun") or []:
            if v != "All":
                raise BadRequest(f"Invalid dry run value: {v}")
        return opts

    def _delete_one(self, r: Resource, ns: str | None, name: str, opts: dict) -> tuple[dict, bool]:
        return self.store.delete(r.key, ns, name, **delete_kwargs(opts))

    def _deleted_body(self, r: Resource, obj: dict, gone: bool) -> dict:
        if r.key == "namespaces" and (obj.get("status") or {}).get("phase") == "Terminating":
            return obj  # the namespace controller finalizes later: the apiserver answers with the object
        if gone and not r.return_deleted:
            meta = obj["metadata"]
            det: dict[str, Any] = {"name": meta["name"]}
            if r.group:
                det["group"] = r.group
            det["kind"] = r.plural
            det["uid"] = meta.get("uid")
            return _status_ok(det)
        return obj

    async def _do_delete(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        opts = await self._delete_options(request)
        obj, gone = self._delete_one(r, route.namespace, route.name, opts)
        code = 202 if (not gone and opts.get("orphanDependents") is False) else 200
        return _response(self._deleted_body(r, obj, gone), code)

    async def _do_deletecollection(self, request: web.Request, route: _Route) -> web.StreamResponse:
        r = route.res
        opts = await self._delete_options(request)
        q = request.query
        entries, _, _, _ = self.store.list_entries(r.key, route.namespace, q.get("labelSelector"),
                                                   q.get("fieldSelector"))
        items = []
        for e in entries:
            meta = e.obj["metadata"]
            try:
                obj, _gone = self._delete_one(r, meta.get("namespace"), meta["name"], opts)
                if not r.custom:
                    obj = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
                items.append(obj)
            except NotFound:
                continue
        return _response({"kind": r.list_kind, "apiVersion": r.api_version,
                          "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": items})

    # -- self reviews (kubectl auth can-i / whoami) -------------------------------------------------
    async def _self_review(self, request: web.Request, route: _Route, ident: tuple[str, list[str]]) -> web.Response:
        r = route.res
        if (request.content_type or "").lower() == "application/vnd.kubernetes.protobuf":
            from . import protowire

            try:
                _av, kind, raw = protowire.unwrap(await request.read())
                if kind and kind != r.kind:
                    raise protowire.ProtoError(f"no kind {kind!r} here")
                body = protowire.self_subject_access_review(raw) if r.plural == "selfsubjectaccessreviews" else {}
            except protowire.ProtoError as exc:
                raise BadRequest(f"failed to decode the protobuf body: {exc}") from None
        else:
            body = self._check_kind(route, await self._body(request))
        out: dict[str, Any] = {"kind": r.kind, "apiVersion": r.api_version,
                               "metadata": {"creationTimestamp": None}}
        if r.plural == "selfsubjectreviews":
            out["status"] = {"userInfo": {"username": ident[0], "groups": list(ident[1])}}
            return _response(out, 201)
        spec = body.get("spec") or {}
        if not isinstance(spec, dict) or any(not isinstance(spec.get(k) or {}, dict)
                                             for k in ("resourceAttributes", "nonResourceAttributes")):
            raise BadRequest("SelfSubjectAccessReview in version \"v1\" cannot be handled as a "
                             "SelfSubjectAccessReview: json: cannot unmarshal into Go struct field "
                             "SelfSubjectAccessReview.spec")
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if not ra and not nra:
            raise Invalid("SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: "
                          "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must "
                          "be specified", {"group": "authorization.k8s.io", "kind": "SelfSubjectAccessReview"})
        verb = (ra or nra).get("verb", "")
        allowed = self._authorize(ident[1], verb)
        out["spec"] = spec
        out["status"] = {"allowed": allowed}
        if allowed and "system:masters" not in ident[1]:
            out["status"]["reason"] = f"RBAC: allowed by ClusterRoleBinding \"view\" of ClusterRole \"view\" to " \
                                      f"Group \"view\""
        return _response(out, 201)

    # -- pods/eviction and pods/binding ----------------------------------------------------------
    async def _evict(self, request: web.Request, route: _Route) -> web.StreamResponse:
        """pkg/registry/core/pod/storage/eviction.go (EvictionREST.Create)."""
        body = self._check_kind(route, await self._body(request), kinds=("Eviction",))
        av = body.get("apiVersion")
        if av not in (None, "", "policy/v1", "policy/v1beta1"):
            raise BadRequest(f"the object provided is unrecognized (must be of type Eviction): no kind \"Eviction\" "
                             f"is registered for version \"{av}\"")
        ename = (body.get("metadata") or {}).get("name")
        if ename != route.name:
            raise BadRequest("name in URL does not match name in Eviction object",
                             {"name": route.name, "kind": "Eviction", "group": "policy"})
        opts = body.get("deleteOptions") or {}
        if not isinstance(opts, dict):
            raise BadRequest("json: cannot unmarshal into Go struct field Eviction.deleteOptions")
        self._check_delete_options(opts)
        refused = evict(self.store, route.namespace, route.name, opts)  # the PDB checks, the delete (eviction.py)
        if refused is not None:
            return _response(refused, refused["code"])
        return _response(_status_ok(code=201), 201)

    async def _bind(self, request: web.Request, route: _Route) -> web.StreamResponse:
        body = self._check_kind(route, await self._body(request), kinds=("Binding",))
        node = ((body.get("target") or {}).get("name"))
        if not node:
            raise Invalid("Binding \"\" is invalid: target.name: Required value", {"kind": "Binding"})
        with self.store.transaction():
            pod = self.store.get("pods", route.namespace, route.name)
            if (pod.get("spec") or {}).get("nodeName"):
                raise conflict(RESOURCES["pods"], route.name,
                               f"pod {route.name} is already assigned to node \"{pod['spec']['nodeName']}\"")
            pod["spec"]["nodeName"] = node
            self.store.update("pods", pod)
        return _response(_status_ok(code=201), 201)


def main() -> None:  # pragma: no cover - manual poking: python -m tazlab_lab.k8s.server
    import argparse

    from ..clock import SimClock

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/kube-twin")
    args = ap.parse_args()

    async def run() -> None:
        clock = SimClock()
        srv = KubeApiServer(Store(clock), port=args.port, workdir=Path(args.workdir))
        await srv.start()
        clock.start(1.0)
        print(f"serving {srv.url}; KUBECONFIG={srv.kubeconfig_path}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":  # pragma: no cover
    main()
