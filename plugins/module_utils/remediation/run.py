# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run identity: which run of an actor holds a node's remediation lease.

The actor (``tazlab-dr_recover``) names who remediates and stays the same across reruns; the run identity
names one execution of it, so two concurrent runs of the SAME actor never both act on a node:

* ``awx-job-<id>`` when AWX (or AAP) runs the playbook: AWX sets the ``JOB_ID`` environment variable and the
  ``awx_job_id`` / ``tower_job_id`` extra vars;
* else ``<host>/<pid>/<start>``: the controller's host name, the pid of the ``ansible-playbook`` process and
  its start time (epoch seconds, two decimals). The start time tells a live run from a dead one whose pid
  was reused.

``run_alive`` answers True, False, or None (cannot tell: another host, an AWX job): a run that cannot be
proven gone is treated as alive, so a rerun after a kill waits for the lease to end, is handed the
lease back by the run, or is told to take it over explicitly (``take_over_run``).
"""

from __future__ import annotations

import os
import socket

from ansible_collections.tazlab.resilience.plugins.module_utils import names

__all__ = ['RUN_ANNOTATION', 'controller_pid', 'run_identity', 'parse_run', 'run_alive', 'process_start', 'blocking_run']

RUN_ANNOTATION = names.ANNOTATION_RUN
AWX_PREFIX = 'awx-job-'


def _boot_time():
    with open('/proc/stat') as handle:
        for line in handle:
            if line.startswith('btime '):
                return float(line.split()[1])
    return None


def process_start(pid):
    """Start time of ``pid`` (epoch seconds) from /proc; None when /proc cannot tell (not Linux)."""
    try:
        with open('/proc/{0}/stat'.format(int(pid))) as handle:
            stat = handle.read()
    except FileNotFoundError:
        raise ProcessLookupError(pid)
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after its last ')'.
    fields = stat[stat.rindex(')') + 2:].split()
    boot = _boot_time()
    if boot is None:
        return None
    return round(boot + float(fields[19]) / os.sysconf('SC_CLK_TCK'), 2)


def _cmdline_and_parent(pid):
    with open('/proc/{0}/cmdline'.format(pid), 'rb') as handle:
        cmdline = handle.read()
    with open('/proc/{0}/stat'.format(pid)) as handle:
        stat = handle.read()
    return cmdline, int(stat[stat.rindex(')') + 2:].split()[1])


def controller_pid():
    """The pid of the ansible-playbook process this code runs under.

    Lookups and action plugins run in a worker that ansible-playbook forked (same command line): walk up
    while the parent has the same command line. Without /proc, the parent.
    """
    pid = os.getpid()
    try:
        cmdline, parent = _cmdline_and_parent(pid)
        while parent > 1:
            parent_cmdline, grandparent = _cmdline_and_parent(parent)
            if parent_cmdline != cmdline:
                break
            pid, parent = parent, grandparent
        return pid
    except (OSError, ValueError, IndexError):
        return os.getppid()


def run_identity(job_id=None, environ=None, pid=None, host=None):
    """The identity of this run: a dict with ``id`` (what the lease records) and its parts."""
    environ = os.environ if environ is None else environ
    job = str(job_id or environ.get('JOB_ID') or '').strip()
    pid = os.getpid() if pid is None else int(pid)
    host = host or socket.gethostname()
    try:
        started = process_start(pid)
    except ProcessLookupError:
        started = None
    out = {'host': host, 'pid': pid, 'started': started, 'awx_job_id': job or None}
    if job:
        out['id'] = AWX_PREFIX + job
    else:
        out['id'] = '{0}/{1}/{2}'.format(host, pid, '%.2f' % started if started is not None else 'unknown')
    return out


def parse_run(run_id):
    """{'kind': 'awx'|'process'|'other', ...} of a run id."""
    run_id = str(run_id or '')
    if run_id.startswith(AWX_PREFIX):
        return {'kind': 'awx', 'job_id': run_id[len(AWX_PREFIX):]}
    parts = run_id.rsplit('/', 2)
    if len(parts) == 3 and parts[1].isdigit():
        try:
            started = float(parts[2])
        except ValueError:
            started = None
        return {'kind': 'process', 'host': parts[0], 'pid': int(parts[1]), 'started': started}
    return {'kind': 'other'}


def run_alive(run_id, host=None):
    """True when the run is alive, False when it is proven gone, None when that cannot be told from here."""
    run = parse_run(run_id)
    if run['kind'] != 'process' or run['host'] != (host or socket.gethostname()):
        return None
    try:
        started = process_start(run['pid'])
    except ProcessLookupError:
        return False
    if started is None:  # no /proc: is the pid there at all?
        try:
            os.kill(run['pid'], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if run['started'] is None:
        return True
    # The same pid started at another time is another process: the run is gone.
    return abs(started - run['started']) <= 2.0


def blocking_run(lease_actor, lease_run, actor, run, take_over_run=None, alive=run_alive):
    """Why the lease (held by ``lease_actor``/``lease_run``, unexpired) stops ``actor``/``run``, or None.

    Another actor always blocks. The same actor blocks only through another run that may be alive: a run
    proven gone (its process ended) or handed back (no run on the lease), or the run named in
    ``take_over_run`` by an operator, does not. A caller without a run identity is not blocked by runs of
    its own actor (the behaviour before run identities).
    """
    if not lease_actor:
        return None
    if lease_actor != actor:
        return 'another actor holds its remediation lease: {0}'.format(lease_actor)
    if not lease_run or not run or lease_run == run:
        return None
    if take_over_run and take_over_run == lease_run:
        return None
    state = alive(lease_run)
    if state is False:
        return None
    return ('it is held by run {0} of {1}{2}; this run ({3}) does not act on it (take_over_run={0} takes '
            'it over once that run is known to be gone)'.format(
                lease_run, actor, ' (still running)' if state else ' (cannot tell from here whether that run '
                'is still going)', run))
