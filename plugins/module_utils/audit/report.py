# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's Markdown report and an HTML page with the same content (pure string building)."""

from __future__ import annotations

import html

from ansible_collections.tazlab.resilience.plugins.module_utils.audit.findings import SEVERITIES

__all__ = ['render_markdown', 'render_html']

COLUMNS = ('severity', 'code', 'object', 'why', 'fix')


def _md_cell(text):
    return str(text if text is not None else '').replace('|', '\\|').replace('\n', ' ')


def _counts_line(summary):
    counts = summary.get('counts') or {}
    return ', '.join('{0} {1}'.format(counts.get(s, 0), s) for s in reversed(SEVERITIES))


def render_markdown(findings, summary, title='Resilience audit', cluster_time=None):
    lines = ['# {0}'.format(title), '']
    if cluster_time:
        lines += ['Cluster time: {0}'.format(cluster_time), '']
    lines += ['Findings: {0} (highest: {1}).'.format(_counts_line(summary), summary.get('max_severity') or 'none'), '']
    if not findings:
        lines += ['No findings.']
        return '\n'.join(lines) + '\n'
    lines += ['| ' + ' | '.join(c.capitalize() for c in COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    for f in findings:
        lines.append('| ' + ' | '.join(_md_cell(f.get(c)) for c in COLUMNS) + ' |')
    return '\n'.join(lines) + '\n'


def render_html(findings, summary, title='Resilience audit', cluster_time=None):
    esc = html.escape
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<title>{0}</title>'.format(esc(title)),
           '<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
           'td,th{border:1px solid #999;padding:4px 8px;vertical-align:top;text-align:left}'
           '.critical{background:#f4b6b6}.high{background:#f8d7a8}.medium{background:#fbeaa5}'
           '.low{background:#e3f0d4}.info{background:#eef}</style></head><body>',
           '<h1>{0}</h1>'.format(esc(title))]
    if cluster_time:
        out.append('<p>Cluster time: {0}</p>'.format(esc(str(cluster_time))))
    out.append('<p>Findings: {0} (highest: {1}).</p>'.format(
        esc(_counts_line(summary)), esc(summary.get('max_severity') or 'none')))
    if not findings:
        out.append('<p>No findings.</p>')
    else:
        out.append('<table><thead><tr>' + ''.join('<th>{0}</th>'.format(c.capitalize()) for c in COLUMNS)
                   + '</tr></thead><tbody>')
        for f in findings:
            out.append('<tr class="{0}">'.format(esc(f['severity'])) + ''.join(
                '<td>{0}</td>'.format(esc(str(f.get(c) if f.get(c) is not None else ''))) for c in COLUMNS) + '</tr>')
        out.append('</tbody></table>')
    out.append('</body></html>')
    return '\n'.join(out) + '\n'
