# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery report a person reads: one line per step in words, and a timeline picture (SVG and PNG).

Shared by the disaster_recovery role (through the ``timeline_report`` module and the ``timeline_lines``
filter), the drill and the benchmarks. Plain Python; matplotlib is imported only to draw.

Input: a runbook timeline, the list the disaster_recovery role writes to ``dr-timeline.json``
(``{"timeline": [...]}``), each entry::

    {"step": "detect"|"claim"|"fence"|"free_and_verify"|<any other>, "node": "worker-new-03" or "",
     "wall_time": ISO 8601 UTC, "wall_elapsed": seconds since the run started (float),
     "cluster_time": RFC 3339 of the Kubernetes API server's clock or null,
     "changed": bool, "detail": the step's own facts (dict or list)}

Entries are recorded when their step ends. Unknown steps and missing fields are described generically;
nothing prints ``None`` or a raw ``[]``.

The picture (``picture_from_timeline`` builds it, ``render`` draws it) is::

    {"title": str, "subtitle": str,
     "lanes": [{"name": "worker-new-03",
                "before": [{"phase": "fault"|"NotReady", "t": seconds (<= 0) before the run saw the node,
                            on the cluster clock, "label": str}],
                "run": [{"phase": "detect"|"claim"|"fence"|"detach"|"attach"|"Running"|<other>,
                         "t": seconds since the run started (wall clock), "label": str}]}]}

``before`` is drawn on its own axis (the cluster clock, left of a break), ``run`` on the run's wall clock:
in the lab the two clocks run at different rates, on a real cluster they agree.
"""

from __future__ import annotations

import datetime
import os
import traceback

try:
    import matplotlib
    matplotlib.use('Agg', force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test import sanity
    Figure = Patch = None
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR = traceback.format_exc()

__all__ = ['HAS_MATPLOTLIB', 'MATPLOTLIB_IMPORT_ERROR', 'describe', 'timeline_lines', 'picture_from_timeline',
           'render', 'PHASE_COLORS']

PHASE_COLORS = {
    'fault': '#d62728', 'NotReady': '#ff7f0e', 'detect': '#9467bd', 'claim': '#8c564b', 'fence': '#1f77b4',
    'detach': '#17becf', 'attach': '#bcbd22', 'Running': '#2ca02c',
}
DOWN_COLOR = '#f4b6b6'
UP_COLOR = '#b7e4b7'

ACTIONS = {
    'create_lease': 'took the remediation lease', 'renew_lease': 'renewed the lease', 'add_taint': 'tainted it',
    'cordon': 'cordoned it', 'annotate': 'annotated it', 'release': 'released it', 'remove_taint': 'removed the taint',
    'uncordon': 'uncordoned it', 'delete_lease': 'gave the lease back',
}


# ---------------------------------------------------------------------------------------------- words
def _seconds(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _duration(value):
    s = _seconds(value)
    if s is None:
        return 'an unknown time'
    if s < 60:
        return '{0:.1f} s'.format(s)
    minutes, sec = divmod(int(round(s)), 60)
    return '{0} min {1:02d} s'.format(minutes, sec)


def _join(items):
    items = [str(i) for i in items if i not in (None, '')]
    if not items:
        return ''
    if len(items) == 1:
        return items[0]
    return '{0} and {1}'.format(', '.join(items[:-1]), items[-1])


def _text(value):
    """A value in words: no None, no raw [] or {}."""
    if value is None or value == '':
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (list, tuple)):
        return _join(_text(v) for v in value) or 'none'
    if isinstance(value, dict):
        return _join('{0} {1}'.format(k, _text(v)) for k, v in value.items()) or 'none'
    return str(value)


def _detect(detail):
    detail = detail if isinstance(detail, dict) else {}
    reasons = detail.get('reasons') or {}
    remediate = detail.get('remediate') or []
    parts = []
    if remediate:
        parts.append('remediate ' + _join('{0} ({1})'.format(n, str(reasons.get(n, '')).replace('_', ' ')).replace(' ()', '')
                                          for n in remediate))
    else:
        parts.append('nothing to remediate')
    refused = detail.get('refused') or []
    if refused:
        parts.append('refused ' + _join('{0} ({1})'.format(r.get('node'), r.get('reason')) if isinstance(r, dict)
                                        else str(r) for r in refused))
    pending = detail.get('pending') or []
    if pending:
        parts.append('waiting on ' + _join(p.get('node') if isinstance(p, dict) else p for p in pending))
    if detail.get('healthy') is not None or detail.get('unhealthy') is not None:
        parts.append('{0} healthy, {1} unhealthy'.format(detail.get('healthy', 0), detail.get('unhealthy', 0)))
    etcd = detail.get('etcd') or {}
    if etcd.get('members'):
        parts.append('etcd {0} of {1} members up (quorum {2})'.format(
            etcd.get('up'), etcd.get('members'), etcd.get('quorum')))
    elif etcd.get('source') == 'not_asked':
        parts.append('etcd not asked (needed for no control plane)' if not etcd.get('needed')
                     else 'etcd not asked yet')
    return '; '.join(parts)


def _claim(detail, changed):
    actions = [ACTIONS.get(a, str(a).replace('_', ' ')) for a in (detail or []) if a]
    if not actions:
        return 'already claimed by this runbook: nothing to do' if not changed else 'claimed'
    return 'claimed the node: ' + _join(actions)


def _fence(detail, node, check_mode=False):
    d = detail if isinstance(detail, dict) else {}
    vm = 'VM {0}'.format(d['vmid']) if d.get('vmid') is not None else 'the VM of {0}'.format(node or 'the node')
    where = ' on {0}'.format(d['pve_node']) if d.get('pve_node') else ''
    before, after = d.get('power_state_before'), d.get('power_state_after')
    took = _duration(d.get('elapsed'))
    if d.get('fenced') and before == 'stopped':
        return 'fenced {0}{1}: it was already stopped, confirmed stopped (checked in {2})'.format(vm, where, took)
    if d.get('fenced'):
        how = d.get('method') or ('hard stop (task {0})'.format(d['exitstatus']) if d.get('exitstatus') else 'hard stop')
        return 'fenced {0}{1}: {2}, confirmed stopped after {3}'.format(vm, where, how, took)
    if d.get('would_fence') or (check_mode and after == 'stopped'):
        return 'would fence {0}{1} (check mode: nothing stopped)'.format(vm, where)
    return 'NOT fenced: {0}{1} reads {2} (before: {3})'.format(vm, where, after or 'unknown', before or 'unknown')


def _free(detail, node):
    d = detail if isinstance(detail, dict) else {}
    plan = d.get('plan') or {}
    parts = []
    strategy = d.get('strategy') or plan.get('strategy')
    if strategy == 'out_of_service':
        parts.append('out-of-service taint on {0}'.format(node or 'the node'))
    elif strategy:
        parts.append('freed by {0}'.format(str(strategy).replace('_', ' ')))
    volumes = d.get('volumes') or []
    if volumes:
        moved = []
        for v in volumes:
            name = v.get('pvc') or v.get('pv')
            if v.get('ok'):
                health = ' ({0})'.format(v['robustness']) if v.get('robustness') else ''
                moved.append('{0} attached on {1}{2}'.format(name, v.get('node'), health))
            else:
                moved.append('{0} NOT reattached ({1})'.format(name, v.get('state') or 'unknown'))
        parts.append('{0} volume{1}: {2}'.format(len(volumes), '' if len(volumes) == 1 else 's', _join(moved)))
    elif plan:
        parts.append('no volume to free')
    workloads = d.get('workloads') or []
    if workloads:
        ok = [w for w in workloads if w.get('ok')]
        late = max([_seconds(w.get('ok_at')) or 0.0 for w in ok] or [0.0])
        parts.append('{0} of {1} workloads ready again after {2}'.format(len(ok), len(workloads), _duration(late)))
        bad = [w for w in workloads if not w.get('ok')]
        if bad:
            parts.append('NOT ready: ' + _join('{0}/{1} {2}/{3}'.format(
                w.get('namespace'), w.get('name'), w.get('ready', 0), w.get('desired', '?')) for w in bad))
    fallback = d.get('fallback') or {}
    if fallback.get('used'):
        parts.append('fell back to the direct steps')
    return '; '.join(parts) or 'nothing to free'


def describe(entry, check_mode=False):
    """What one timeline entry did, in words (check_mode: the run only planned)."""
    step = entry.get('step')
    detail = entry.get('detail')
    node = entry.get('node') or ''
    if step == 'detect':
        return _detect(detail)
    if step == 'claim':
        return _claim(detail, entry.get('changed'))
    if step == 'fence':
        return _fence(detail, node, check_mode)
    if step in ('free_and_verify', 'free'):
        return _free(detail, node)
    if isinstance(detail, str) and detail:
        return detail
    if detail:
        return _text(detail)
    return 'changed' if entry.get('changed') else 'no change'


def _clock(value):
    """HH:MM:SSZ of an RFC 3339 time, or '-'."""
    if not value:
        return '-'
    text = str(value)
    if 'T' in text:
        time_part = text.split('T', 1)[1]
        return time_part.split('.')[0].rstrip('Z') + 'Z'
    return text


def timeline_lines(timeline, header=True):
    """One line per step: wall seconds since the start, cluster time, node, changed, step and what it did."""
    entries = timeline.get('timeline') if isinstance(timeline, dict) else timeline
    check_mode = bool(timeline.get('check_mode')) if isinstance(timeline, dict) else False
    lines = []
    if header:
        lines.append('{0:>8}  {1:>9}  {2:<14} {3:<7}  {4:<15} {5}'.format(
            'wall', 'cluster', 'node', 'changed', 'step', 'what it did'))
    for entry in entries or []:
        wall = _seconds(entry.get('wall_elapsed'))
        lines.append('{0:>8}  {1:>9}  {2:<14} {3:<7}  {4:<15} {5}'.format(
            '+{0:.1f} s'.format(wall) if wall is not None else '-', _clock(entry.get('cluster_time')),
            entry.get('node') or '-', 'changed' if entry.get('changed') else 'ok', entry.get('step') or '-',
            describe(entry, check_mode=check_mode)))
    return lines


# ---------------------------------------------------------------------------------------------- picture
def _parse(ts):
    if not ts:
        return None
    text = str(ts).strip().replace('Z', '+00:00')
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def picture_from_timeline(timeline, plan=None, faults=None, title=None):
    """The picture (see the module docstring) of a disaster_recovery timeline.

    plan: the remediation_plan result (its ``remediate`` entries' ``ready_since`` place NotReady);
    faults: {node: RFC 3339 time of the fault on the cluster clock} when the caller knows it (a drill).
    """
    doc = timeline if isinstance(timeline, dict) else {'timeline': timeline}
    entries = doc.get('timeline') or []
    detect = next((e for e in entries if e.get('step') == 'detect'), None)
    detected_cluster = _parse(detect.get('cluster_time')) if detect else None
    ready_since = {}
    for item in (plan or {}).get('remediate') or []:
        if isinstance(item, dict) and item.get('name'):
            ready_since[item['name']] = item.get('ready_since')
    lanes = {}
    order = []

    def lane(name):
        if name not in lanes:
            lanes[name] = {'name': name, 'before': [], 'run': []}
            order.append(name)
        return lanes[name]

    remediated = (detect or {}).get('detail') or {}
    for name in remediated.get('remediate') or [] if isinstance(remediated, dict) else []:
        ln = lane(name)
        for phase, ts, label in (('fault', (faults or {}).get(name), 'fault'),
                                 ('NotReady', ready_since.get(name), 'NotReady')):
            when = _parse(ts)
            if when is not None and detected_cluster is not None:
                t = (when - detected_cluster).total_seconds()
                ln['before'].append({'phase': phase, 't': min(0.0, t),
                                     'label': '{0} {1} before'.format(label, _duration(-t))})
        ln['run'].append({'phase': 'detect', 't': _seconds(detect.get('wall_elapsed')) or 0.0, 'label': 'detected'})
    previous_end = {}
    for entry in entries:
        node, step = entry.get('node'), entry.get('step')
        t = _seconds(entry.get('wall_elapsed'))
        if not node or t is None or step == 'detect':
            continue
        ln = lane(node)
        if step == 'claim':
            ln['run'].append({'phase': 'claim', 't': t, 'label': 'claimed'})
        elif step == 'fence':
            d = entry.get('detail') or {}
            ln['run'].append({'phase': 'fence', 't': t, 'label': 'fenced' if d.get('fenced') else 'NOT fenced'})
        elif step in ('free_and_verify', 'free'):
            d = entry.get('detail') or {}
            start = previous_end.get(node, t)
            ln['run'].append({'phase': 'detach', 't': start, 'label': 'detach'})
            vols = [_seconds(v.get('ok_at')) for v in d.get('volumes') or [] if v.get('ok')]
            if vols:
                ln['run'].append({'phase': 'attach', 't': start + max(vols), 'label': 'attached'})
            works = [_seconds(w.get('ok_at')) for w in d.get('workloads') or [] if w.get('ok')]
            if works and len(works) == len(d.get('workloads') or []):
                ln['run'].append({'phase': 'Running', 't': start + max(works), 'label': 'Running'})
        else:
            ln['run'].append({'phase': step, 't': t, 'label': str(step)})
        previous_end[node] = t
    for ln in lanes.values():
        ln['run'].sort(key=lambda e: e['t'])
        ln['before'].sort(key=lambda e: e['t'])
    subtitle = 'check mode: a plan, nothing was changed' if doc.get('check_mode') else ''
    return {'title': title or 'Recovery timeline', 'subtitle': subtitle, 'lanes': [lanes[n] for n in order]}


def render(picture, paths, width=11.0):
    """Draw the picture into each path (format from its extension: .svg, .png); returns the paths written.

    Raises RuntimeError when matplotlib is missing.
    """
    if not HAS_MATPLOTLIB:
        raise RuntimeError('matplotlib is required to draw the timeline picture')
    lanes = picture.get('lanes') or []
    n = max(1, len(lanes))
    has_before = any(ln.get('before') for ln in lanes)
    fig = Figure(figsize=(width, 1.6 + 1.25 * n))
    grid = fig.add_gridspec(1, 2 if has_before else 1, width_ratios=[1, 4] if has_before else [1], wspace=0.05)
    ax = fig.add_subplot(grid[0, -1])
    axes = [ax]
    pre = None
    if has_before:
        pre = fig.add_subplot(grid[0, 0], sharey=ax)
        axes.insert(0, pre)
    run_end = max([e['t'] for ln in lanes for e in ln.get('run') or []] or [1.0])
    pre_start = min([e['t'] for ln in lanes for e in ln.get('before') or []] or [-1.0])
    for row, ln in enumerate(lanes):
        y = n - 1 - row
        run = ln.get('run') or []
        up = next((e['t'] for e in run if e['phase'] == 'Running'), None)
        end = up if up is not None else run_end
        ax.barh(y, end - 0.0, left=0.0, height=0.36, color=DOWN_COLOR, edgecolor='none', zorder=1)
        if up is not None:
            ax.barh(y, max(run_end * 0.08, 0.5), left=up, height=0.36, color=UP_COLOR, edgecolor='none', zorder=1)
        last_x = None
        for i, ev in enumerate(run):
            color = PHASE_COLORS.get(ev['phase'], '#555555')
            # Steps at the same moment (fenced, then detach at once) side by side, not on top of each other.
            x = ev['t'] if last_x is None else max(ev['t'], last_x + run_end * 0.015)
            last_x = x
            ax.plot([x], [y], marker='o', markersize=9, color=color, zorder=3)
            ax.annotate('{0}\n+{1:.1f} s'.format(ev.get('label') or ev['phase'], ev['t']), (x, y),
                        xytext=(0, 16 if i % 2 == 0 else -30), textcoords='offset points', ha='center',
                        fontsize=8, color=color)
        if pre is not None:
            pre.barh(y, -pre_start * 1.05, left=pre_start * 1.05, height=0.36, color=DOWN_COLOR, edgecolor='none')
            for i, ev in enumerate(ln.get('before') or []):
                color = PHASE_COLORS.get(ev['phase'], '#555555')
                pre.plot([ev['t']], [y], marker='D', markersize=8, color=color, zorder=3)
                pre.annotate(ev.get('label') or ev['phase'], (ev['t'], y), xytext=(0, 16 if i % 2 == 0 else -30),
                             textcoords='offset points', ha='center', fontsize=8, color=color)
    ax.set_xlim(-run_end * 0.03, run_end * 1.12)
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_yticks(range(n))
    ax.set_yticklabels([ln['name'] for ln in reversed(lanes)])
    ax.set_xlabel('seconds since the runbook started (wall clock)')
    ax.grid(axis='x', color='#dddddd', zorder=0)
    if pre is not None:
        pre.set_xlim(pre_start * 1.15, 0)
        pre.set_xlabel('before detection (cluster clock, s)')
        pre.spines['right'].set_visible(False)
        ax.spines['left'].set_visible(False)
        ax.tick_params(axis='y', left=False, labelleft=False)
        pre.set_yticks(range(n))
        pre.set_yticklabels([ln['name'] for ln in reversed(lanes)])
        pre.grid(axis='x', color='#dddddd', zorder=0)
        for a, xs in ((pre, 1.0), (ax, 0.0)):
            a.plot([xs, xs], [0, 1], transform=a.transAxes, color='#888888', linestyle=(0, (4, 3)), clip_on=False)
    handles = [Patch(color=DOWN_COLOR, label='service down'), Patch(color=UP_COLOR, label='Running again')]
    handles += [Patch(color=c, label=p) for p, c in PHASE_COLORS.items()
                if any(e['phase'] == p for ln in lanes for e in (ln.get('run') or []) + (ln.get('before') or []))]
    fig.legend(handles=handles, loc='lower center', ncol=min(len(handles), 10), fontsize=8, frameon=False)
    title = picture.get('title') or 'Recovery timeline'
    if picture.get('subtitle'):
        title += '\n' + picture['subtitle']
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.13, right=0.98, top=0.82 if not picture.get('subtitle') else 0.76, bottom=0.3)
    written = []
    for path in paths:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            os.makedirs(directory)
        # Same picture, same bytes: fixed SVG ids (hashsalt) and no creation date, so reruns are idempotent.
        with matplotlib.rc_context({'svg.hashsalt': 'tazlab.resilience'}):
            fig.savefig(path, dpi=110, metadata={'Title': picture.get('title') or 'Recovery timeline', 'Date': None}
                        if path.endswith('.svg') else None)
        written.append(path)
    return written
