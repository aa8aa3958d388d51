# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drill report: JSON, Markdown, and an SVG timeline side by side with the seed story's.

The SVG is drawn with matplotlib (guarded import: ``HAS_MATPLOTLIB``). ``timeline_rows`` turns any
timeline into plain rows (seconds, label) and ``render_svg`` only draws rows, so a shared timeline renderer
can replace ``render_svg`` later without touching the drill.
"""

from __future__ import annotations

import io
import json
import traceback

from ansible_collections.tazlab.resilience.plugins.module_utils.drill.observe import SEED_TIMELINE

try:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test import sanity
    matplotlib = None
    pyplot = None
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR = traceback.format_exc()

__all__ = ['HAS_MATPLOTLIB', 'MATPLOTLIB_IMPORT_ERROR', 'timeline_rows', 'render_markdown', 'render_svg',
           'render_json', 'mmss', 'seed_comparison']

LABELS = {
    'fault': 'fault injected', 'vm_stopped': 'VM stopped (Proxmox)', 'node_not_ready': 'node NotReady',
    'taint': 'taint', 'pod_terminating': 'pod Terminating', 'replacement_created': 'replacement created',
    'replacement_pending': 'replacement Pending', 'replacement_containercreating': 'replacement ContainerCreating',
    'replacement_init': 'replacement Init', 'multi_attach': 'Multi-Attach error', 'fenced': 'fenced (out-of-service)',
    'detached': 'volumes detached', 'running_again': 'Running again', 'blocked': 'still blocked',
}


def mmss(seconds):
    if seconds is None:
        return '-'
    seconds = int(round(seconds))
    return 'T+{0}:{1:02d}'.format(seconds // 60, seconds % 60)


def _label(event):
    base = LABELS.get(event['kind'], event['kind'].replace('_', ' '))
    if event['kind'] == 'taint':
        base += ' ' + (event.get('detail') or '')
    elif event['kind'] in ('running_again', 'blocked'):
        base += ' ' + event['object'].split('/', 1)[-1]
    return base


def timeline_rows(events):
    """[(seconds, label)] in time order, one per event."""
    return [(float(e['t']), _label(e)) for e in sorted(events, key=lambda e: e['t'])]


def seed_comparison(events):
    """Each seed milestone next to the drill's first event of the same kind."""
    first = {}
    for e in sorted(events, key=lambda e: e['t']):
        first.setdefault(e['kind'], e)
    rows = []
    for seed in SEED_TIMELINE:
        mine = first.get(seed['kind'])
        if seed['kind'] == 'blocked' and mine is None:
            mine = first.get('running_again')
        rows.append({'seed_t': seed['t'], 'seed': seed['detail'], 'drill_t': mine['t'] if mine else None,
                     'drill': _label(mine) if mine else 'not seen'})
    return rows


def render_json(result):
    return json.dumps(result, indent=2, sort_keys=True) + '\n'


def render_markdown(results, title='Disaster drill'):
    lines = ['# {0}'.format(title), '']
    for r in results:
        lines += ['## {0}: {1}, {2} ({3})'.format(r['node'], r.get('fault'), r.get('mode'), r['outcome']), '',
                  'Fault at {0} (cluster clock); observed for {1:.0f} s (timeout {2} s).'.format(
                      r['t0'], r['observed_seconds'], r.get('timeout')), '',
                  '| Time | Event | Object | Detail |', '|---|---|---|---|']
        for e in r['events']:
            lines.append('| {0} | {1} | {2} | {3} |'.format(
                mmss(e['t']), _label(e), e['object'], str(e.get('detail') or '').replace('|', '\\|')))
        lines += ['', '### MTTR per workload', '', '| Workload | MTTR |', '|---|---|']
        for w, v in sorted(r['mttr'].items()):
            lines.append('| {0} | {1} |'.format(w, '{0:.0f} s'.format(v) if v is not None else
                                                'not back ({0})'.format(r['blocked'].get(w, ''))))
        lines += ['', '### Next to the seed story (Phase 5)', '', '| Seed | | This drill | |', '|---|---|---|---|']
        for row in seed_comparison(r['events']):
            lines.append('| {0} | {1} | {2} | {3} |'.format(
                mmss(row['seed_t']), row['seed'], mmss(row['drill_t']), row['drill']))
        if r.get('restore'):
            lines += ['', 'Restore: {0}.'.format(r['restore'])]
        lines.append('')
    return '\n'.join(lines)


def _draw(ax, rows, title, colour):
    end = max([row[0] for row in rows] + [60.0])
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, end * 1.05)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.invert_yaxis()
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([row[1] for row in rows], fontsize=8)
    step = 60 if end <= 900 else 300
    ax.set_xticks([x * step for x in range(int(end // step) + 2)])
    ax.set_xticklabels(['{0}'.format(int(x * step // 60)) for x in range(int(end // step) + 2)], fontsize=8)
    ax.set_xlabel('minutes after the fault', fontsize=8)
    for i, row in enumerate(rows):
        t = row[0]
        ax.plot([0, t], [i, i], color=colour, alpha=0.25, linewidth=4)
        ax.plot([t], [i], marker='o', color=colour)
        ax.annotate(mmss(t), (t, i), textcoords='offset points', xytext=(6, -3), fontsize=7)
    ax.grid(axis='x', alpha=0.3)


def render_svg(result):
    """An SVG (text): the seed story's timeline on the left, this drill's on the right."""
    if not HAS_MATPLOTLIB:
        raise RuntimeError('matplotlib is required for the SVG timeline')
    seed = [(float(s['t']), s['detail'].split(';', maxsplit=1)[0].split(',', maxsplit=1)[0]) for s in SEED_TIMELINE]
    mine = timeline_rows(result['events'])
    with matplotlib.rc_context({'svg.hashsalt': 'tazlab-drill', 'svg.fonttype': 'none'}):
        return _figure(seed, mine, result)


def _figure(seed, mine, result):
    fig, axes = pyplot.subplots(1, 2, figsize=(13, max(3.0, 0.32 * max(len(seed), len(mine)) + 1.2)))
    try:
        _draw(axes[0], seed, 'Seed story, Phase 5 (by hand, watched)', '#b03030')
        title = 'Drill {0} ({1}, {2}): {3}'.format(
            result['node'], result.get('fault'), result.get('mode'), result['outcome'])
        _draw(axes[1], mine, title, '#2060a0')
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format='svg', metadata={'Date': None})
        return out.getvalue()
    finally:
        pyplot.close(fig)
