"""The timeline picture as a person sees it: timeline_report run by Ansible writes SVG and PNG, and headless
Chromium (Debian's chromium, installed by `make tools`) renders the SVG; the screenshot shows the outage
bar, the recovery and the phase markers where the PNG has them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from k8s_lab import ROOT, ansible_adhoc

sys.path.insert(0, os.path.join(ROOT, 'tests', 'unit', 'plugins', 'module_utils', 'report'))
from timeline_fixture import FAULTS, PLAN, TIMELINE  # noqa: E402

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def rgb(hex_color):
    return tuple(int(hex_color[i:i + 2], 16) / 255.0 for i in (1, 3, 5))


def columns_of(image, color, tol=0.06):
    """x positions (columns) of the pixels within tol of color."""
    import numpy
    px = image[:, :, :3]
    mask = numpy.all(numpy.abs(px - numpy.array(rgb(color))) < tol, axis=2)
    return numpy.nonzero(mask)[1]


def test_the_svg_timeline_renders_in_headless_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.fail('chromium is not installed: run `make tools` (Debian package chromium)')
    from matplotlib.image import imread
    from ansible_collections.tazlab.resilience.plugins.module_utils.report.timeline import (
        DOWN_COLOR, PHASE_COLORS, UP_COLOR)
    src = tmp_path / 'dr-timeline.json'
    src.write_text(json.dumps(TIMELINE))
    args = {'src': str(src), 'plan': PLAN, 'faults': FAULTS}
    rc, status, result = ansible_adhoc(tmp_path, 'timeline_report', args)
    assert rc == 0 and status == 'CHANGED', result
    svg, png = str(tmp_path / 'dr-timeline.svg'), str(tmp_path / 'dr-timeline.png')
    assert result['files'] == [svg, png]
    assert not any('None' in line or '[]' in line for line in result['lines'])
    rc, status, again = ansible_adhoc(tmp_path, 'timeline_report', args)
    assert status == 'SUCCESS' and again['files'] == [svg, png]          # same picture: not rewritten

    text = open(svg).read()
    assert '<title>Recovery timeline</title>' in text
    width, height = (float(v) for v in re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', text).groups())
    size = '{0},{1}'.format(int(width * 4 / 3) + 1, int(height * 4 / 3) + 1)   # pt -> CSS px
    shot = str(tmp_path / 'chromium.png')
    proc = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                           '--window-size=' + size, '--screenshot=' + shot, 'file://' + svg],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and os.path.exists(shot), proc.stderr[-2000:]

    seen, ours = imread(shot), imread(png)
    assert seen.shape[0] > 200 and seen.shape[1] > 800
    # Not a blank page: a good part of the picture is drawn.
    assert (seen[:, :, :3].sum(axis=2) < 2.9).mean() > 0.05
    for image in (seen, ours):
        down, up = columns_of(image, DOWN_COLOR), columns_of(image, UP_COLOR)
        assert len(down) > 1000 and len(up) > 100
        # The outage comes first, the service is Running again after it.
        assert down.mean() < up.mean() and up.min() > down.min()
        for phase in ('fault', 'NotReady', 'claim', 'fence', 'detach', 'attach', 'Running'):
            assert len(columns_of(image, PHASE_COLORS[phase], tol=0.04)) > 20, phase
        fence, running = columns_of(image, PHASE_COLORS['fence'], 0.04), columns_of(image, PHASE_COLORS['Running'], 0.04)
        assert fence.mean() < running.mean()
    # Chromium and matplotlib's PNG place the bars alike (relative to the width).
    for color in (DOWN_COLOR, UP_COLOR):
        a = columns_of(seen, color).mean() / seen.shape[1]
        b = columns_of(ours, color).mean() / ours.shape[1]
        assert abs(a - b) < 0.05, (color, a, b)
