"""The node_health event source without ansible-rulebook: the judgement, the settings, the watch loop."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PATH = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "node_health.py")
spec = importlib.util.spec_from_file_location("node_health", PATH)
nh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nh)

T0 = 1769371200.0  # 2026-01-25T20:00:00Z


def node(name, ready="True", since=T0 - 3600, uuid="uuid-" + "1"):
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "lastTransitionTime": nh.iso(since)}],
                       "nodeInfo": {"systemUUID": uuid}}}


def lease(name, renew):
    return {"metadata": {"name": name, "resourceVersion": "2"}, "spec": {"renewTime": nh.iso(renew)}}


def healthy(h, names=("w1", "w2"), now=T0):
    for n in names:
        h.observe_node(node(n, uuid="uuid-" + n))
        h.observe_lease(lease(n, now - 2))
    h.observe_vms([{"name": n, "vmid": 100 + i, "status": "running"} for i, n in enumerate(names)])


def test_power_loss_is_reported_once_with_the_facts_and_no_secret():
    h = nh.NodeHealth(unhealthy_seconds=30, powered_off_seconds=2)
    healthy(h)
    assert h.evaluate(T0) == []
    h.observe_vms([{"name": "w1", "vmid": 100, "status": "stopped"}, {"name": "w2", "vmid": 101, "status": "running"}])
    assert h.evaluate(T0 + 1) == []          # inside powered_off_seconds
    events = h.evaluate(T0 + 3)
    assert [e["type"] for e in events] == ["node_unhealthy"]
    event = events[0]
    assert event["node"] == "w1" and event["system_uuid"] == "uuid-w1" and event["power_state"] == "stopped"
    assert event["ready"] == "True" and event["problems"] == ["powered_off"] and event["vmid"] == 100
    assert event["since"] == nh.iso(T0 + 1) and event["unhealthy_seconds"] == 2.0
    assert event["lease_age_seconds"] == 5.0
    assert h.evaluate(T0 + 10) == [] and h.evaluate(T0 + 100) == []   # one event per change
    assert "password" not in json.dumps(event) and "token" not in json.dumps(event)


def test_not_ready_counts_from_the_condition_transition_on_the_server_clock():
    h = nh.NodeHealth(unhealthy_seconds=30)
    healthy(h)
    h.observe_node(node("w2", ready="Unknown", since=T0 - 25, uuid="uuid-w2"))
    assert h.evaluate(T0) == []
    events = h.evaluate(T0 + 6)
    assert [(e["type"], e["node"]) for e in events] == [("node_unhealthy", "w2")]
    assert events[0]["since"] == nh.iso(T0 - 25) and events[0]["unhealthy_seconds"] == 31.0


def test_flapping_within_the_window_emits_nothing():
    h = nh.NodeHealth(unhealthy_seconds=30)
    healthy(h)
    for i in range(5):
        h.observe_node(node("w1", ready="False", since=T0 + i * 20, uuid="uuid-w1"))
        assert h.evaluate(T0 + i * 20 + 10) == []
        h.observe_node(node("w1", ready="True", since=T0 + i * 20 + 15, uuid="uuid-w1"))
        h.observe_lease(lease("w1", T0 + i * 20 + 15))
        h.observe_lease(lease("w2", T0 + i * 20 + 15))
        assert h.evaluate(T0 + i * 20 + 16) == []


def test_silent_lease_of_a_ready_node_then_recovery():
    h = nh.NodeHealth(unhealthy_seconds=10, lease_grace_seconds=40)
    healthy(h)
    assert h.evaluate(T0 + 40) == []           # renewed 42 s ago: unhealthy from now on, window 10 s
    events = h.evaluate(T0 + 51)
    # both windows close together: one event names both
    assert len(events) == 1 and events[0]["nodes"] == ["w1", "w2"] and events[0]["problems"] == ["lease_silent"]
    assert events[0]["details"]["w2"]["problems"] == ["lease_silent"]
    h.observe_lease(lease("w1", T0 + 52))
    events = h.evaluate(T0 + 53)
    assert [(e["type"], e["node"]) for e in events] == [("node_recovered", "w1")]
    assert h.evaluate(T0 + 54) == []


def test_only_the_named_nodes_and_deleted_nodes_are_forgotten():
    h = nh.NodeHealth(powered_off_seconds=0, nodes=["w1"])
    healthy(h)
    assert set(h.nodes) == {"w1"}
    h.observe_node(node("w1"), deleted=True)
    assert h.nodes == {}


def test_unknown_power_is_never_taken_for_stopped():
    h = nh.NodeHealth(powered_off_seconds=0)
    healthy(h)
    h.forget_power()
    assert h.evaluate(T0 + 1) == []


def test_source_degraded_once_after_n_failures_then_restored():
    h = nh.NodeHealth()
    assert h.source_result("proxmox", False, "connection refused", degraded_after=3) is None
    assert h.source_result("proxmox", False, "connection refused", degraded_after=3) is None
    event = h.source_result("proxmox", False, "401 for PVEAPIToken=root@pam!x=secret-value", degraded_after=3)
    assert event["type"] == "source_degraded" and event["source"] == "proxmox" and "secret-value" not in event["error"]
    assert h.source_result("proxmox", False, "again", degraded_after=3) is None
    assert h.source_result("proxmox", True) == {"type": "source_restored", "source": "proxmox"}
    assert h.source_result("proxmox", True) is None


def test_connection_settings_take_the_modules_env_vars():
    env = {"K8S_AUTH_HOST": "https://k8s:6443", "K8S_AUTH_API_KEY": "tok", "K8S_AUTH_VERIFY_SSL": "no",
           "K8S_AUTH_SSL_CA_CERT": "/ca.pem", "PROXMOX_HOST": "pve1", "PROXMOX_PORT": "8006",
           "PROXMOX_TOKEN_ID": "root@pam!dr", "PROXMOX_TOKEN_SECRET": "s"}
    k8s = nh.connection_settings({}, nh.K8S_ENV, env)
    assert k8s == {"host": "https://k8s:6443", "api_key": "tok", "validate_certs": False, "ca_cert": "/ca.pem"}
    px = nh.connection_settings({"api_host": "pve2"}, nh.PROXMOX_ENV, env)
    assert px["api_host"] == "pve2" and px["api_port"] == 8006 and px["api_token_secret"] == "s"
    with pytest.raises(ValueError, match="unknown connection options: bogus"):
        nh.connection_settings({"bogus": 1}, nh.K8S_ENV, env)


class FakeKube(object):
    """Scripted list/watch answers: each watch call pops the next behaviour."""

    def __init__(self, script):
        self.script = script
        self.lists = {"node": 0, "lease": 0}
        self.watches = []
        self.lock = threading.Lock()

    def server_now(self):
        return T0 + 100

    def list(self, kind):
        with self.lock:
            self.lists[kind] += 1
        if kind == "node":
            return [node("w1", uuid="uuid-w1")], "10"
        return [lease("w1", T0 + 99)], "10"

    def watch(self, kind, rv, on_event, stop):
        with self.lock:
            self.watches.append((kind, rv))
            step = self.script[kind].pop(0) if self.script[kind] else "block"
        if step == "gone":
            raise nh.Gone("too old resource version")
        if step == "drop":
            raise ConnectionResetError("connection reset by peer")
        if step == "end":
            on_event("MODIFIED", node("w1", ready="False", since=T0 + 50, uuid="uuid-w1") if kind == "node"
                     else lease("w1", T0 + 99))
            return "11"
        stop.wait(30)
        return rv

    def close(self):
        pass


class FakeProxmox(object):
    def __init__(self, answers):
        self.answers = answers

    def read(self):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def run_source(kube, proxmox, args, seconds):
    events = []

    class Queue(object):
        async def put(self, event):
            events.append(event)

    async def go():
        source = nh.Source(Queue(), args, kube=kube, proxmox=proxmox)
        task = asyncio.ensure_future(source.run())
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return source

    return asyncio.run(go()), events


def test_watch_survives_a_drop_and_a_410_and_watches_on_from_the_last_version():
    kube = FakeKube({"node": ["end", "drop", "gone", "block"], "lease": ["end", "block"]})
    source, events = run_source(kube, FakeProxmox([[{"name": "w1", "vmid": 1, "status": "running"}]]),
                                {"unhealthy_seconds": 5, "tick": 0.05, "proxmox_interval": 0.05}, 2.5)
    # the node watch: from the list's version, on from the version of the last event after the server
    # ended it, then listed again after the drop (back-off) and after the 410
    node_watches = [rv for kind, rv in kube.watches if kind == "node"]
    assert node_watches[:2] == ["10", "11"] and len(node_watches) == 4
    assert kube.lists["node"] == 3 and kube.lists["lease"] == 1
    # the event from the watch made it to the judgement (not Ready since T0+50, server time T0+100), and
    # the lists after the drop and the 410 brought the current truth back (Ready again)
    assert [(e["type"], e["node"]) for e in events] == [("node_unhealthy", "w1"), ("node_recovered", "w1")]
    assert events[0]["ready"] == "False" and events[0]["power_state"] == "running"


def test_proxmox_loss_is_one_source_degraded_and_power_reads_unknown():
    kube = FakeKube({"node": ["block"], "lease": ["block"]})
    proxmox = FakeProxmox([[{"name": "w1", "vmid": 1, "status": "stopped"}]] + [OSError("no route to host")] * 50)
    _source, events = run_source(kube, proxmox, {"powered_off_seconds": 60, "tick": 0.05, "proxmox_interval": 0.02,
                                                 "degraded_after": 3}, 1.5)
    assert [e["type"] for e in events] == ["source_degraded"]
    assert events[0]["source"] == "proxmox" and "no route" in events[0]["error"]


def test_main_is_the_source_plugin_contract():
    assert asyncio.iscoroutinefunction(nh.main)
    import inspect
    assert list(inspect.signature(nh.main).parameters) == ["queue", "args"]


def test_elapsed_timing_of_the_fake_is_bounded():
    start = time.monotonic()
    run_source(FakeKube({"node": [], "lease": []}), FakeProxmox([[]]), {"tick": 0.05}, 0.3)
    assert time.monotonic() - start < 10  # cancellation stops the threads' waits


class Ticker(object):
    """A local monotonic clock the test moves."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def reports(clock, ticker, rate, seconds, step=0.5, start=T0):
    """The server reports whole seconds (Date) while its clock runs `rate` times this machine's."""
    origin = ticker.t
    while ticker.t - origin <= seconds:
        clock.observe(int(start + rate * (ticker.t - origin)))
        ticker.t += step
    ticker.t -= step
    return start + rate * (ticker.t - origin)


def test_server_clock_runs_at_the_rate_the_server_shows_not_at_real_time():
    ticker = Ticker()
    clock = nh.ServerClock(monotonic=ticker, min_span=2.0)
    assert clock.now() is None
    clock.observe(T0)
    ticker.t += 1.0
    # one report: no rate yet, the estimate stays at the report (late, never early)
    assert clock.now() == T0
    ticker.t -= 1.0
    truth = reports(clock, ticker, 20.0, 10.0)  # a lab at time scale 0.05
    assert clock.rate() == pytest.approx(20.0, rel=0.01)
    ticker.t += 3.0  # three local seconds without a report: sixty on the server
    assert clock.now() == pytest.approx(truth + 60.0, abs=2.0)


def test_server_clock_follows_a_change_of_rate_and_never_goes_back():
    ticker = Ticker()
    clock = nh.ServerClock(monotonic=ticker)
    fast = reports(clock, ticker, 20.0, 10.0)
    before = clock.now()
    ticker.t += 0.5
    # the lab is re-scaled to real time: the next reports contradict the 20x estimate, the rate starts anew
    slow = reports(clock, ticker, 1.0, 10.0, start=fast + 1)
    assert clock.resets >= 1
    assert clock.rate() == pytest.approx(1.0, abs=0.15)
    assert clock.now() >= before
    assert clock.now() == pytest.approx(slow, abs=1.5)


def test_a_window_on_a_fast_cluster_closes_on_its_clock():
    """The bug this guards against: a 60 s window on a cluster running 20x must close after about 3 local
    seconds, judged on the server's clock, not after 60 local seconds."""
    ticker = Ticker()
    clock = nh.ServerClock(monotonic=ticker)
    h = nh.NodeHealth(unhealthy_seconds=60)
    healthy(h, names=("w1",), now=T0)
    reports(clock, ticker, 20.0, 4.0)
    h.observe_lease(lease("w1", clock.now()))
    h.observe_node(node("w1", ready="False", since=clock.now(), uuid="uuid-w1"))
    assert h.evaluate(clock.now()) == []
    ticker.t += 3.5  # 70 server seconds
    clock.observe(int(clock.now()))
    events = h.evaluate(clock.now())
    assert [e["type"] for e in events] == ["node_unhealthy"]
    assert 60 <= events[0]["unhealthy_seconds"] <= 75


def test_nodes_due_together_are_one_event_so_one_run_judges_the_storm():
    h = nh.NodeHealth(powered_off_seconds=0)
    healthy(h, names=("w1", "w2", "w3"))
    h.observe_vms([{"name": "w1", "vmid": 100, "status": "stopped"}, {"name": "w2", "vmid": 101, "status": "stopped"},
                   {"name": "w3", "vmid": 102, "status": "running"}])
    events = h.evaluate(T0 + 1)
    assert [(e["type"], e["node"], e["nodes"]) for e in events] == [("node_unhealthy", "w1", ["w1", "w2"])]
    assert events[0]["unhealthy_nodes"] == ["w1", "w2"]
    assert events[0]["details"]["w2"]["power_state"] == "stopped" and events[0]["details"]["w2"]["vmid"] == 101
    assert events[0]["not_ready_seconds"] == 0.0   # Kubernetes still shows both Ready


def test_the_event_says_how_long_kubernetes_has_shown_the_node_not_ready():
    """The source's window may start on a silent lease, before NotReady: the runbook's own window (from the
    Ready transition) must be given what Kubernetes shows, or it would find the node still pending."""
    h = nh.NodeHealth(unhealthy_seconds=60, lease_grace_seconds=40)
    healthy(h, names=("w1",), now=T0)
    assert h.evaluate(T0 + 41) == []                     # lease silent: the window starts here
    h.observe_node(node("w1", ready="Unknown", since=T0 + 50, uuid="uuid-w1"))
    events = h.evaluate(T0 + 101)
    assert [e["type"] for e in events] == ["node_unhealthy"]
    assert events[0]["unhealthy_seconds"] == 60.0 and events[0]["not_ready_seconds"] == 51.0
    assert h.evaluate(T0 + 2) == []


def test_the_date_header_is_read_with_the_collections_http_date_reader():
    assert nh.http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert nh.http_date("Sun Nov  6 08:49:37 1994") == 784111777.0   # asctime: GMT, not local time
    assert nh.http_date("") is None and nh.http_date(None) is None and nh.http_date("garbled") is None
