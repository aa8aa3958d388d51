# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Timeline entries from module results, and the timeline document written to disk (issue 15 point 4, issue 21).

One entry per step of a runbook (the disaster_recovery and ip_migration roles), built on the controller
by the ``timeline_entry`` filter from the registered result of the step's task, instead of a set_fact
per step that picks keys with ``dict2items | selectattr | items2dict``. The document is written by the
``timeline_write`` action on the controller (no module process, atomic rename), so the bookkeeping costs
milliseconds on the critical path. The entry shape is the one ``report/timeline.py`` documents.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import time

__all__ = ['timeline_entry', 'timeline_document', 'write_timeline']


def _utc_now(now):
    return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def timeline_entry(result, step, node='', started=None, keys=None, detail=None, failed=False, now=None):
    """The entry of one step.

    result: the registered result of the step's task (a dict; anything else counts as empty).
    keys: the result's keys kept as the detail (in this order, absent keys left out), or
    detail: the detail itself (keys wins when both are given). started: the run's start (epoch seconds).
    failed: also record whether the step failed (the ip_migration role's entries carry it).
    """
    result = result if isinstance(result, dict) else {}
    now = time.time() if now is None else float(now)
    if keys is not None:
        detail = dict((k, result[k]) for k in keys if k in result)
    entry = {
        'step': step,
        'node': node or '',
        'wall_time': _utc_now(now),
        'wall_elapsed': None if started in (None, '') else round(now - float(started), 3),
        'cluster_time': result.get('cluster_time'),
        'changed': bool(result.get('changed', False)),
        'detail': detail if detail is not None else '',
    }
    if failed:
        entry['failed'] = bool(result.get('failed', False))
    return entry


def timeline_document(timeline, actor=None, check_mode=False, finished=False, extra=None):
    doc = {}
    if actor is not None:
        doc['actor'] = actor
    doc.update({'check_mode': bool(check_mode), 'finished': bool(finished), 'timeline': list(timeline or [])})
    doc.update(extra or {})
    return doc


def write_timeline(path, document, mode=0o644):
    """Write the document as indented JSON, atomically (a killed run leaves the previous version, never half a file).

    Makes the folder. Returns the path written.
    """
    path = os.path.abspath(os.path.expanduser(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as fh:
            json.dump(document, fh, indent=4, sort_keys=True, default=str)
            fh.write('\n')
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
