# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline_report module's work: read the timeline, make the lines and the picture, write only what changed."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ansible_collections.tazlab.resilience.plugins.module_utils.report.timeline import (
    HAS_MATPLOTLIB, picture_from_timeline, render, timeline_lines,
)

__all__ = ['run_report']


def _load(params):
    if params.get('src'):
        with open(params['src'], 'r') as fh:
            try:
                return json.load(fh)
            except ValueError as exc:
                raise ValueError('{0} is not a timeline JSON file: {1}'.format(params['src'], exc))
    doc = params.get('timeline')
    if isinstance(doc, str):
        doc = json.loads(doc)
    if isinstance(doc, list):
        doc = {'timeline': doc}
    if not isinstance(doc, dict) or not isinstance(doc.get('timeline'), list):
        raise ValueError('timeline must be a list of entries or a dict with a "timeline" list')
    return doc


def run_report(params, check_mode=False):
    """{'changed', 'lines', 'files', 'picture', 'warnings'} (see the timeline_report module)."""
    doc = _load(params)
    lines = timeline_lines(doc)
    picture = picture_from_timeline(doc, plan=params.get('plan'), faults=params.get('faults'),
                                    title=params.get('title'))
    dest = params.get('dest')
    if not dest and params.get('src'):
        dest = params['src'][:-5] if params['src'].endswith('.json') else params['src']
    result = {'changed': False, 'lines': lines, 'files': [], 'picture': picture, 'warnings': []}
    if not dest or check_mode:
        return result
    if not HAS_MATPLOTLIB:
        if params.get('picture_required'):
            raise RuntimeError('matplotlib is required to draw the timeline picture (pip install matplotlib)')
        result['warnings'].append('no timeline picture: the matplotlib Python library is not installed')
        return result
    wanted = ['{0}.{1}'.format(dest, fmt) for fmt in params.get('formats') or ['svg', 'png']]
    tmp = tempfile.mkdtemp(prefix='tazlab-timeline-')
    try:
        drawn = render(picture, [os.path.join(tmp, os.path.basename(p)) for p in wanted])
        for new, path in zip(drawn, wanted):
            with open(new, 'rb') as fh:
                data = fh.read()
            try:
                with open(path, 'rb') as fh:
                    same = fh.read() == data
            except (IOError, OSError):
                same = False
            if not same:
                directory = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(directory):
                    os.makedirs(directory)
                shutil.move(new, path)
                result['changed'] = True
            result['files'].append(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
