"""Run identities on the remediation lease: two runs of the same actor never both act on a node."""

import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.claim import (
    ANNOTATION_ACTOR, ANNOTATION_CORDONED, ClaimError, is_run_hold, micro_time, plan_claim, plan_end_run,
    plan_release)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.run import (
    RUN_ANNOTATION, blocking_run, controller_pid, parse_run, process_start, run_alive, run_identity)

NOW = parse_time("2026-01-25T21:00:00Z")
OURS = {"key": "remediation.tazlab.io/fencing", "value": "true", "effect": "NoSchedule"}
HOST = socket.gethostname()


def node():
    return {"metadata": {"name": "worker-new-03", "resourceVersion": "7",
                         "annotations": {ANNOTATION_ACTOR: "dr", ANNOTATION_CORDONED: "true"}},
            "spec": {"taints": [OURS], "unschedulable": True}}


def lease(holder="dr", run=None, renewed=NOW - 60, duration=3600):
    meta = {"name": "tazlab-remediation-worker-new-03", "resourceVersion": "9"}
    if run:
        meta["annotations"] = {RUN_ANNOTATION: run}
    return {"metadata": meta,
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": micro_time(renewed)}}


def this_run():
    return run_identity(environ={})["id"]


def dead_run():
    """The identity of a process that ran on this host and has ended."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    ident = run_identity(environ={}, pid=child.pid)["id"]
    child.wait()
    return ident


def test_identity_is_the_awx_job_when_there_is_one_else_host_pid_start():
    assert run_identity(job_id="4711", environ={})["id"] == "awx-job-4711"
    assert run_identity(environ={"JOB_ID": "12"})["id"] == "awx-job-12"
    mine = run_identity(environ={})
    assert mine["awx_job_id"] is None and mine["pid"] == os.getpid() and mine["host"] == HOST
    assert mine["id"] == "{0}/{1}/{2:.2f}".format(HOST, os.getpid(), mine["started"])
    assert parse_run(mine["id"]) == {"kind": "process", "host": HOST, "pid": os.getpid(), "started": mine["started"]}
    assert parse_run("awx-job-9") == {"kind": "awx", "job_id": "9"}


def test_process_start_is_stable_and_a_missing_pid_raises():
    assert process_start(os.getpid()) == process_start(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        process_start(child.pid)


def test_liveness_alive_gone_reused_pid_and_unknown():
    assert run_alive(this_run()) is True
    assert run_alive(dead_run()) is False
    # the same pid with another start time is another process: the run is gone
    assert run_alive("{0}/{1}/{2:.2f}".format(HOST, os.getpid(), process_start(os.getpid()) - 100)) is False
    assert run_alive("other-host/{0}/1.00".format(os.getpid())) is None
    assert run_alive("awx-job-3") is None


def test_controller_pid_walks_up_to_the_process_that_forked_this_one():
    code = ("import os,sys\nsys.path[:0]={0!r}\n"
            "from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.run import controller_pid\n"
            "pid=os.fork()\n"
            "if pid==0:\n    print(controller_pid(), flush=True); os._exit(0)\n"
            "os.waitpid(pid,0); print(os.getpid())").format(sys.path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1]
    assert controller_pid() != 0


def test_blocking_rules():
    mine = this_run()
    assert blocking_run(None, None, "dr", mine) is None
    assert "another actor" in blocking_run("human", None, "dr", mine)
    assert blocking_run("dr", mine, "dr", mine) is None            # our own run: idempotent
    assert blocking_run("dr", None, "dr", mine) is None            # handed back: no run holds it
    assert blocking_run("dr", dead_run(), "dr", mine) is None      # proven gone
    live_other = "{0}/{1}/{2:.2f}".format(HOST, os.getppid(), process_start(os.getppid()))
    reason = blocking_run("dr", live_other, "dr", mine)
    assert "held by run " + live_other in reason and "still running" in reason
    reason = blocking_run("dr", "awx-job-41", "dr", "awx-job-42")
    assert "held by run awx-job-41" in reason and "cannot tell" in reason
    assert blocking_run("dr", "awx-job-41", "dr", "awx-job-42", take_over_run="awx-job-41") is None
    assert blocking_run("dr", "awx-job-41", "dr", "awx-job-42", take_over_run="awx-job-40") is not None
    assert blocking_run("dr", "awx-job-41", "dr", None) is None    # a caller without run identity


def test_claim_by_a_second_live_run_of_the_same_actor_is_refused_and_plans_nothing():
    with pytest.raises(ClaimError, match="held by run awx-job-41 of dr.*nothing written"):
        plan_claim(node(), lease(run="awx-job-41"), "dr", NOW, 3600, run="awx-job-42")


def test_claim_takes_over_from_a_gone_or_handed_back_run_and_records_its_own():
    gone = dead_run()
    steps = plan_claim(node(), lease(run=gone), "dr", NOW, 3600, run="awx-job-42")
    assert steps == [{"action": "take_over_lease", "lease": "tazlab-remediation-worker-new-03", "holder": "dr",
                      "run": "awx-job-42", "previous_holder": "dr", "previous_run": gone, "resource_version": "9"}]
    assert [s["action"] for s in plan_claim(node(), lease(), "dr", NOW, 3600, run="awx-job-42")] == ["take_over_lease"]
    assert plan_claim(node(), lease(run="awx-job-42"), "dr", NOW, 3600, run="awx-job-42") == []
    fresh = plan_claim(node(), None, "dr", NOW, 3600, run="awx-job-42")
    assert fresh[0] == {"action": "create_lease", "lease": "tazlab-remediation-worker-new-03", "holder": "dr",
                        "run": "awx-job-42"}


def test_end_run_only_touches_this_runs_lease():
    assert [s["action"] for s in plan_end_run(node(), lease(run="awx-job-42"), "dr", NOW, "awx-job-42")] == ["end_run"]
    assert plan_end_run(node(), lease(run="awx-job-41"), "dr", NOW, "awx-job-42") == []
    assert plan_end_run(node(), lease(), "dr", NOW, "awx-job-42") == []
    assert plan_end_run(node(), None, "dr", NOW, "awx-job-42") == []


def test_release_refuses_while_another_run_holds_it():
    with pytest.raises(ClaimError, match="held by run awx-job-41"):
        plan_release(node(), lease(run="awx-job-41"), "dr", NOW, run="awx-job-42")
    assert plan_release(node(), lease(run="awx-job-41"), "dr", NOW, run="awx-job-42", force=True)[-1]["action"] == \
        "delete_lease"
    assert plan_release(node(), lease(), "dr", NOW, run="awx-job-42")[-1]["action"] == "delete_lease"


def test_moving_only_the_runs_hold_is_not_a_change_of_the_claim():
    assert all(is_run_hold(s) for s in plan_claim(node(), lease(), "dr", NOW, 3600, run="awx-job-42"))
    assert all(is_run_hold(s) for s in plan_end_run(node(), lease(run="awx-job-42"), "dr", NOW, "awx-job-42"))
    expired_other = lease("human", renewed=NOW - 7200)
    assert not any(is_run_hold(s) for s in plan_claim(node(), expired_other, "dr", NOW, 3600, run="awx-job-42"))
    assert not is_run_hold(plan_claim(node(), None, "dr", NOW, 3600, run="awx-job-42")[0])
