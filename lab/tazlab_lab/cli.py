"""``tazlab-lab``: start, fault, inspect and stop the lab world from a shell.

    tazlab-lab up --scenario tazlab --dir /tmp/lab [--time-scale 1.0]
    tazlab-lab status --dir /tmp/lab [--json]
    tazlab-lab fault --dir /tmp/lab power-loss worker-new-02
    tazlab-lab fault --dir /tmp/lab slow-stop worker-new-02 --param secs=90
    tazlab-lab fault --list
    tazlab-lab down --dir /tmp/lab

``up`` starts ONE background process (new session, its pid in DIR/lab.pid, its log in DIR/lab.log)
that serves every twin, writes kubeconfig, talosconfig, proxmox.env, inventory.yaml and
state.json into DIR, and returns once everything answers. ``down`` stops it and waits until the
process is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

PIDFILE = "lab.pid"
STATEFILE = "state.json"
LOGFILE = "lab.log"
UP_TIMEOUT = 60.0
DOWN_TIMEOUT = 15.0


# ------------------------------------------------------------------------------- helpers
def _paths(directory: str) -> tuple[str, str, str]:
    d = os.path.abspath(directory)
    return os.path.join(d, PIDFILE), os.path.join(d, STATEFILE), os.path.join(d, LOGFILE)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child not yet reaped) is not alive.
    try:
        with open("/proc/{0}/stat".format(pid)) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(directory: str) -> int | None:
    pidfile = _paths(directory)[0]
    try:
        with open(pidfile) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def read_state(directory: str) -> dict | None:
    try:
        with open(_paths(directory)[1], encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _http(url: str, body: dict | None = None, timeout: float = 30.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read().decode()).get("error")
        except Exception:  # noqa: BLE001
            detail = None
        raise SystemExit("tazlab-lab: {0}".format(detail or exc)) from None


def _control(directory: str) -> str:
    state = read_state(directory)
    pid = read_pid(directory)
    if not state or not state.get("ready") or pid is None or not pid_alive(pid):
        raise SystemExit("tazlab-lab: no lab running in {0} (tazlab-lab up first)".format(directory))
    return state["control_url"]


def _tcp_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def check_answers(state: dict) -> list[str]:
    """What does not answer yet (empty when everything does)."""
    missing = []
    try:
        _http(state["control_url"] + "/status", timeout=5)
    except (OSError, SystemExit):
        missing.append("control endpoint")
    px = state.get("proxmox") or {}
    try:
        ctx = ssl.create_default_context(cafile=state["files"]["proxmox_ca"])
        with urllib.request.urlopen("https://{0}:{1}/api2/json/version".format(px["host"], px["port"]),
                                    context=ctx, timeout=5) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 401:  # unauthenticated: it answers
            missing.append("proxmox ({0})".format(exc.code))
    except (OSError, KeyError) as exc:
        missing.append("proxmox ({0})".format(exc))
    server = (state.get("kubernetes") or {}).get("server")
    if server:
        from urllib.parse import urlsplit
        parts = urlsplit(server)
        if not _tcp_answers(parts.hostname, parts.port or 443):
            missing.append("kubernetes apiserver")
    for node, endpoint in (state.get("talos") or {}).items():
        if not endpoint or not state.get("talos_expected", {}).get(node, True):
            continue
        host, _, port = endpoint.rpartition(":")
        if not _tcp_answers(host, int(port)):
            missing.append("talos " + node)
    return missing


# ----------------------------------------------------------------------------------- up
def cmd_up(args) -> int:
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    pidfile, statefile, logfile = _paths(directory)
    old = read_pid(directory)
    if old is not None and pid_alive(old):
        print("tazlab-lab: a lab is already running in {0} (pid {1}); tazlab-lab down first".format(directory, old),
              file=sys.stderr)
        return 1
    for stale in (pidfile, statefile):
        if os.path.exists(stale):
            os.unlink(stale)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "tazlab_lab.cli", "serve", "--scenario", args.scenario, "--dir", directory]
    if args.time_scale is not None:
        cmd += ["--time-scale", str(args.time_scale)]
    if args.proxmox_host:
        cmd += ["--proxmox-host", args.proxmox_host]
    if args.proxmox_port is not None:
        cmd += ["--proxmox-port", str(args.proxmox_port)]
    if args.isolated:
        cmd += ["--isolated"]
    with open(logfile, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=directory)
    deadline = t0 + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print("tazlab-lab: the lab process exited with {0}; see {1}:".format(proc.returncode, logfile),
                  file=sys.stderr)
            _tail(logfile)
            return 1
        state = read_state(directory)
        if state and state.get("ready"):
            missing = check_answers(state)
            if not missing:
                elapsed = time.monotonic() - t0
                print("tazlab-lab: {0} up in {1:.2f}s (pid {2}, clock {3})".format(
                    args.scenario, elapsed, proc.pid, state.get("clock", "")))
                for key, path in sorted((state.get("files") or {}).items()):
                    print("  {0:<12} {1}".format(key, path))
                print("  {0:<12} {1}".format("control", state["control_url"]))
                return 0
        time.sleep(0.05)
    print("tazlab-lab: the lab did not answer within {0}s; stopping it".format(args.timeout), file=sys.stderr)
    _tail(logfile)
    _terminate(proc.pid)
    return 1


def _tail(path: str, lines: int = 30) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh.readlines()[-lines:]:
                sys.stderr.write("  | " + line)
    except OSError:
        pass


# -------------------------------------------------------------------------------- serve
def cmd_serve(args) -> int:
    """The background process: run the world until SIGTERM/SIGINT or POST /shutdown."""
    from .world import LabWorld, dump_json

    # main() sets SIGPIPE to the default (die) for `tazlab-lab status | head`; a server must not die when a
    # client goes away mid-answer (asyncio then gets EPIPE and closes that connection only)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    directory = os.path.abspath(args.dir)
    pidfile, statefile, _ = _paths(directory)

    async def main() -> None:
        world = LabWorld(args.scenario, directory, time_scale=args.time_scale or None,
                      proxmox_host=args.proxmox_host,
                      proxmox_port=0 if args.isolated and args.proxmox_port is None else args.proxmox_port,
                      isolated=args.isolated)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        await world.start()
        try:
            state = world.state()
            state.update(ready=True, pid=os.getpid(), pids=[os.getpid()], clock=world.clock.now_iso(),
                         started=time.time())
            dump_json(statefile, state)
            waiter = asyncio.ensure_future(world.stopped.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
        finally:
            await world.stop()
            logging.getLogger("tazlab_lab").info("lab stopped")

    with open(pidfile + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    try:
        asyncio.run(main())
    finally:
        for path in (pidfile, statefile):
            try:
                os.unlink(path)
            except OSError:
                pass
    return 0


# -------------------------------------------------------------------------------- down
def _terminate(pid: int, timeout: float = DOWN_TIMEOUT) -> bool:
    """SIGTERM the process group, then SIGKILL; True once nothing of it is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
    return not pid_alive(pid)


def cmd_down(args) -> int:
    directory = os.path.abspath(args.dir)
    pidfile, statefile, _ = _paths(directory)
    pid = read_pid(directory)
    if pid is None or not pid_alive(pid):
        for stale in (pidfile, statefile):
            if os.path.exists(stale):
                os.unlink(stale)
        print("tazlab-lab: no lab running in {0}".format(directory))
        return 0
    state = read_state(directory) or {}
    if state.get("control_url"):
        try:
            _http(state["control_url"] + "/shutdown", {}, timeout=5)
        except (OSError, SystemExit):
            pass
    deadline = time.monotonic() + DOWN_TIMEOUT
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    gone = not pid_alive(pid) or _terminate(pid)
    # The process group too: anything the lab may have spawned.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for stale in (pidfile, statefile):
        if os.path.exists(stale):
            os.unlink(stale)
    print("tazlab-lab: lab in {0} {1} (pid {2})".format(directory, "stopped" if gone else "NOT stopped", pid))
    return 0 if gone else 1


# ------------------------------------------------------------------------------- fault
def _parse_params(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit("tazlab-lab: --param takes key=value, not {0!r}".format(item))
        out[key] = value
    return out


def cmd_fault(args) -> int:
    if args.list:
        from .faults import catalogue
        for entry in catalogue():
            print("{0:<18} {1:<9} {2}".format(entry["kind"], entry["target"], entry["doc"]))
        return 0
    if not args.dir or not args.kind:
        raise SystemExit("tazlab-lab fault: --dir and KIND are required (or --list)")
    url = _control(args.dir)
    answer = _http(url + "/fault", {"kind": args.kind, "target": args.target, "params": _parse_params(args.param)})
    print(json.dumps(answer.get("result"), sort_keys=True))
    return 0


# ----------------------------------------------------------------------------- advance
def cmd_advance(args) -> int:
    url = _control(args.dir)
    answer = _http(url + "/advance", {"seconds": args.seconds}, timeout=max(60.0, args.seconds))
    print(answer.get("now"))
    return 0


# -------------------------------------------------------------------------------- scale
def cmd_scale(args) -> int:
    url = _control(args.dir)
    answer = _http(url + "/scale", {"time_scale": args.time_scale})
    print("{0} (time scale {1})".format(answer.get("now"), answer.get("time_scale")))
    return 0


# ------------------------------------------------------------------------------ status
def cmd_status(args) -> int:
    url = _control(args.dir)
    status = _http(url + "/status")
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(format_status(status))
    return 0


def format_status(s: dict) -> str:
    out = []
    clock = s.get("clock", {})
    out.append("clock     {0} (time scale {1})".format(clock.get("iso"), clock.get("time_scale") or "manual"))
    px = s.get("proxmox", {})
    out.append("proxmox   {0} quorate={1} hosts: {2}".format(
        px.get("url"), px.get("quorate"), ", ".join("{0}={1}".format(k, v) for k, v in px.get("hosts", {}).items())))
    etcd = s.get("etcd") or {}
    if etcd:
        members = etcd.get("members") or []
        out.append("etcd      quorum={0} members: {1}".format(etcd.get("quorum"), ", ".join(
            "{0}{1}{2}".format(m["hostname"], "" if m.get("running") else " (down)",
                               " (learner)" if m.get("is_learner") else "") for m in members)))
    ready = {n["name"]: n for n in s.get("nodes", [])}
    out.append("")
    out.append("{0:<16} {1:<14} {2:<5} {3:<5} {4:<8} {5:<17} {6:<14} {7}".format(
        "NODE", "ROLE", "VMID", "PVE", "VM", "MACHINE", "TALOS", "READY / TAINTS"))
    vms = {v["name"]: v for v in px.get("vms", [])}
    for m in s.get("machines", []):
        vm = vms.get(m["name"], {})
        node = ready.get(m["name"], {})
        kube = node.get("ready", "-")
        if node.get("taints"):
            kube += " " + ",".join(node["taints"])
        if node.get("unschedulable"):
            kube += " cordoned"
        talos = m.get("talos") or {}
        stage = (talos.get("stage") or "-") if talos.get("reachable") or not talos else "unreachable"
        out.append("{0:<16} {1:<14} {2:<5} {3:<5} {4:<8} {5:<17} {6:<14} {7}".format(
            m["name"], m["role"], m["vmid"], vm.get("node", ""), vm.get("status", ""), m["state"], stage, kube))
    vm_by_id = {v["vmid"]: v for v in px.get("vms", [])}
    for p in s.get("provisioned", []):     # VMs made through the Proxmox API (provisioning scenarios)
        vm = vm_by_id.get(p["vmid"], {})
        node = ready.get(p.get("node") or "", {})
        out.append("{0:<16} {1:<14} {2:<5} {3:<5} {4:<8} {5:<17} {6:<14} {7}".format(
            p.get("node") or p.get("hostname") or "-", p.get("role") or "-", p["vmid"], vm.get("node", ""),
            vm.get("status", ""), p.get("address") or "-", p.get("stage") or "no Talos", node.get("ready", "-")))
    if "pods" in s:
        out.append("")
        out.append("{0:<50} {1:<22} {2}".format("POD", "NODE", "PHASE"))
        for p in s["pods"]:
            phase = (p.get("phase") or "") + (" (Terminating)" if p.get("terminating") else "")
            out.append("{0:<50} {1:<22} {2}".format("{0}/{1}".format(p["namespace"], p["name"]),
                                                    p.get("node") or "-", phase))
        out.append("")
        out.append("{0:<44} {1:<10} {2:<10} {3}".format("VOLUME", "STATE", "ROBUST", "NODE"))
        for v in s.get("volumes", []):
            out.append("{0:<44} {1:<10} {2:<10} {3}".format(v["name"], v.get("state") or "-",
                                                           v.get("robustness") or "-", v.get("node") or "-"))
        out.append("")
        out.append("{0:<72} {1:<22} {2}".format("VOLUMEATTACHMENT", "NODE", "ATTACHED"))
        for a in s.get("attachments", []):
            out.append("{0:<72} {1:<22} {2}{3}".format(a["name"], a.get("node") or "-", a.get("attached"),
                                                     " (deleting)" if a.get("deleting") else ""))
    return "\n".join(out)


# -------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tazlab-lab", description="The tazlab lab twin: up, fault, status, down")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the lab world in the background")
    up.add_argument("--scenario", default="tazlab")
    up.add_argument("--dir", required=True)
    up.add_argument("--time-scale", type=float, default=1.0,
                    help="real seconds per simulated second (default 1.0: real time; 0: the clock moves only "
                         "with `tazlab-lab advance`)")
    up.add_argument("--proxmox-host", default=None, help="loopback address of the Proxmox twin")
    up.add_argument("--proxmox-port", type=int, default=None)
    up.add_argument("--isolated", action="store_true",
                    help="random loopback /24 for the Talos endpoints and free ports everywhere (parallel labs)")
    up.add_argument("--timeout", type=float, default=UP_TIMEOUT)
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help=argparse.SUPPRESS)
    serve.add_argument("--scenario", default="tazlab")
    serve.add_argument("--dir", required=True)
    serve.add_argument("--time-scale", type=float, default=1.0)
    serve.add_argument("--proxmox-host", default=None)
    serve.add_argument("--proxmox-port", type=int, default=None)
    serve.add_argument("--isolated", action="store_true")
    serve.set_defaults(func=cmd_serve)

    fault = sub.add_parser("fault", help="inject a fault (see --list)")
    fault.add_argument("--dir")
    fault.add_argument("--list", action="store_true")
    fault.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    fault.add_argument("kind", nargs="?")
    fault.add_argument("target", nargs="?")
    fault.set_defaults(func=cmd_fault)

    advance = sub.add_parser("advance", help="move simulated time forward (every timer due runs)")
    advance.add_argument("--dir", required=True)
    advance.add_argument("seconds", type=float)
    advance.set_defaults(func=cmd_advance)

    scale = sub.add_parser("scale", help="re-scale the running clock (real seconds per simulated second)")
    scale.add_argument("--dir", required=True)
    scale.add_argument("time_scale", type=float)
    scale.set_defaults(func=cmd_scale)

    status = sub.add_parser("status", help="nodes, pods, volumes, attachments, VMs and the clock")
    status.add_argument("--dir", required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    down = sub.add_parser("down", help="stop the lab world")
    down.add_argument("--dir", required=True)
    down.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `tazlab-lab status | head` is not an error
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
