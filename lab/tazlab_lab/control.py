"""The lab world's control endpoint: HTTP (JSON) on loopback for ``tazlab-lab fault`` / ``status``.

``GET /status``, ``GET /faults``, ``POST /fault {kind, target, params}``, ``POST /advance {seconds}``,
``POST /scale {time_scale}``, ``POST /shutdown``, ``GET /requests`` (request counts of the twins),
``GET /etcd?key=..&prefix=1`` (the twin's etcd view of Secrets as ``etcdctl get -w json`` prints it; see
:mod:`tazlab_lab.hardening`).

``runner, url = await start(world, host, port)``; ``await runner.cleanup()`` stops it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import faults, hardening

__all__ = ["start"]


async def start(world: Any, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve ``world`` (a started :class:`tazlab_lab.world.LabWorld`) on ``host:port`` (0: a free port)."""

    async def get_status(request):
        return web.json_response(world.status())

    async def post_fault(request):
        body = await request.json()
        try:
            result = await faults.apply(world, body.get("kind", ""), body.get("target"),
                                        **(body.get("params") or {}))
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True, "result": result})

    async def get_faults(request):
        return web.json_response(faults.catalogue())

    async def post_advance(request):
        body = await request.json()
        try:
            seconds = float(body.get("seconds", 0))
            if seconds < 0:
                raise ValueError("time only moves forward")
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await world.advance(seconds)
        return web.json_response({"now": world.clock.now_iso(), "epoch": world.clock.now()})

    async def post_scale(request):
        body = await request.json()
        try:
            await world.set_time_scale(float(body.get("time_scale", 0)))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"now": world.clock.now_iso(), "time_scale": world.clock.time_scale})

    async def post_shutdown(request):
        world.loop.call_soon(world.stopped.set)
        return web.json_response({"ok": True})

    async def get_requests(request):
        """The Kubernetes API twin's request counts, per verb and resource (for benchmarks)."""
        return web.json_response(world.request_counts())

    async def get_etcd(request):
        """etcdctl get <key> [--prefix] -w json, on the twin's etcd view (Secrets as stored)."""
        key = request.query.get("key", "")
        if not key:
            return web.json_response({"error": "key is required"}, status=400)
        return web.json_response(hardening.etcd_get(world, key, request.query.get("prefix") in ("1", "true")))

    app = web.Application()
    app.router.add_get("/status", get_status)
    app.router.add_get("/faults", get_faults)
    app.router.add_post("/fault", post_fault)
    app.router.add_post("/advance", post_advance)
    app.router.add_post("/scale", post_scale)
    app.router.add_post("/shutdown", post_shutdown)
    app.router.add_get("/requests", get_requests)
    app.router.add_get("/etcd", get_etcd)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, "http://{0}:{1}".format(host, runner.addresses[0][1])
