"""The recovery report in words and the picture's data, from a timeline as the role writes it."""

from __future__ import annotations

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ansible_collections.tazlab.resilience.plugins.module_utils.report.timeline import (  # noqa: E402
    describe, picture_from_timeline, timeline_lines,
)
from timeline_fixture import FAULTS, PLAN, TIMELINE  # noqa: E402


def test_one_line_per_step_in_words_without_none_or_raw_lists():
    lines = timeline_lines(TIMELINE)
    assert len(lines) == 1 + len(TIMELINE['timeline'])
    text = '\n'.join(lines)
    assert 'None' not in text and '[]' not in text and '{' not in text
    assert 'fenced VM 106 on pve3: hard stop (task OK), confirmed stopped after 2.4 s' in lines[3]
    assert lines[1].split()[:3] == ['+2.6', 's', '20:03:39Z'] and 'remediate worker-new-03 (not ready)' in lines[1]
    assert 'took the remediation lease, tainted it and cordoned it' in lines[2]
    assert 'traefik/traefik attached on worker-new-04 (degraded)' in lines[4]
    assert '1 of 1 workloads ready again after 3.5 s' in lines[4]
    assert lines[3].split()[2:5] == ['-', 'worker-new-03', 'changed']   # no cluster time: '-'


def test_detect_says_when_etcd_was_not_asked():
    entry = copy.deepcopy(TIMELINE['timeline'][0])
    entry['detail']['etcd'] = {'source': 'not_asked', 'members': None, 'up': None, 'quorum': None, 'needed': False,
                               'note': 'etcd not needed: no control plane is a candidate the etcd guard would decide'}
    text = describe(entry)
    assert text.endswith('; etcd not asked (needed for no control plane)') and 'None' not in text, text
    entry['detail']['etcd']['needed'] = True
    assert describe(entry).endswith('; etcd not asked yet')
    entry['detail']['etcd'] = {'source': 'talos', 'members': 3, 'up': 2, 'quorum': 2}
    assert describe(entry).endswith('; etcd 2 of 3 members up (quorum 2)')


def test_failures_and_unknown_steps_are_said_plainly():
    refused = {'fenced': False, 'power_state_after': 'running', 'power_state_before': 'running'}
    assert describe({'step': 'fence', 'node': 'w', 'detail': refused}).startswith('NOT fenced')
    assert describe({'step': 'release', 'node': 'w', 'changed': True, 'detail': []}) == 'changed'
    assert describe({'step': 'notify', 'detail': {'sent': True, 'to': ['ops']}}) == 'sent yes and to ops'
    bad = copy.deepcopy(TIMELINE['timeline'][3])
    bad['detail']['workloads'][0].update(ok=False, ready=0)
    assert 'NOT ready: traefik/traefik 0/1' in describe(bad)


def test_the_picture_places_every_phase_in_order():
    pic = picture_from_timeline(TIMELINE, plan=PLAN, faults=FAULTS)
    lane = pic['lanes'][0]
    assert lane['name'] == 'worker-new-03'
    assert [(e['phase'], e['t']) for e in lane['before']] == [('fault', -80.0), ('NotReady', -40.0)]
    phases = [e['phase'] for e in lane['run']]
    assert phases == ['detect', 'claim', 'fence', 'detach', 'attach', 'Running']
    run = dict((e['phase'], e['t']) for e in lane['run'])
    assert run['detach'] == 7.5 and run['attach'] == 7.5 + 2.1 and run['Running'] == 7.5 + 3.5
    # Without the plan and the fault times the run alone is drawn.
    assert picture_from_timeline(TIMELINE)['lanes'][0]['before'] == []


def test_check_mode_says_it_would_fence():
    doc = copy.deepcopy(TIMELINE)
    doc['check_mode'] = True
    doc['timeline'][2]['detail'].update(fenced=False, power_state_after='stopped', upid=None, exitstatus=None)
    line = timeline_lines(doc)[3]
    assert 'would fence VM 106 on pve3 (check mode: nothing stopped)' in line and 'NOT fenced' not in line
