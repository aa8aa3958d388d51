"""Timeline entries from module results (the timeline_entry filter) and the atomic timeline write."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.tazlab.resilience.plugins.filter.timeline_entry import FilterModule
from ansible_collections.tazlab.resilience.plugins.module_utils.report.entries import (
    timeline_document, timeline_entry, write_timeline,
)

FENCE = {'changed': True, 'fenced': True, 'vmid': 106, 'upid': 'UPID:pve1:1', 'smbios_uuid': 'abc',
         'cluster_time': '2026-01-25T20:01:07Z', 'invocation': {'module_args': {'secret': 'x'}}}


def test_entry_keeps_the_chosen_keys_in_order_and_the_run_times():
    entry = timeline_entry(FENCE, 'fence', node='worker-new-03', started=100.0, keys=['fenced', 'vmid', 'elapsed'],
                           now=112.3456)
    assert entry['detail'] == {'fenced': True, 'vmid': 106}  # absent keys left out, nothing else copied
    assert entry['step'] == 'fence' and entry['node'] == 'worker-new-03'
    assert entry['wall_elapsed'] == 12.346 and entry['wall_time'] == '1970-01-01T00:01:52.345600Z'
    assert entry['cluster_time'] == '2026-01-25T20:01:07Z' and entry['changed'] is True
    assert 'failed' not in entry


def test_entry_with_a_given_detail_and_an_empty_result():
    entry = timeline_entry({}, 'failed', node='w', started=None, detail={'task': 'x'}, failed=True, now=5)
    assert entry['detail'] == {'task': 'x'} and entry['changed'] is False and entry['failed'] is False
    assert entry['wall_elapsed'] is None and entry['cluster_time'] is None
    assert timeline_entry(None, 'detect', now=5)['detail'] == ''


def test_filter_rejects_bad_input():
    from ansible.errors import AnsibleFilterError
    entry = FilterModule().filters()['timeline_entry']
    assert entry(FENCE, 'fence', keys=['vmid'])['detail'] == {'vmid': 106}
    with pytest.raises(AnsibleFilterError):
        entry(FENCE, '')
    with pytest.raises(AnsibleFilterError):
        entry(FENCE, 'fence', keys='vmid')


def test_write_is_atomic_makes_the_folder_and_matches_to_nice_json(tmp_path):
    path = tmp_path / 'a' / 'dr-timeline.json'
    doc = timeline_document([timeline_entry(FENCE, 'fence', keys=['vmid'], now=1)], actor='me', finished=True)
    write_timeline(str(path), doc)
    text = path.read_text()
    assert json.loads(text) == {'actor': 'me', 'check_mode': False, 'finished': True,
                                'timeline': doc['timeline']}
    assert text == json.dumps(doc, indent=4, sort_keys=True) + '\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(path.parent) == ['dr-timeline.json']  # no temporary file left behind
    with pytest.raises(TypeError):
        write_timeline(str(path), {'x': Unserializable()})
    assert json.loads(path.read_text())['actor'] == 'me'  # the failed write left the previous version
    assert os.listdir(path.parent) == ['dr-timeline.json']


class Unserializable(object):
    def __repr__(self):
        raise TypeError('cannot serialise')

    __str__ = __repr__
