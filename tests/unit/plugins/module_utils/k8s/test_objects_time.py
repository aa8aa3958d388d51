"""The collection's one time vocabulary: parse_time reads, rfc3339 writes (now, a datetime, epoch seconds)."""

from __future__ import annotations

import datetime
import re

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time, rfc3339
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import fence


def test_parse_time_reads_time_and_microtime():
    assert parse_time('2026-01-25T21:00:00Z') == 1769374800.0
    assert parse_time('2026-01-25T21:00:00.250000Z') == 1769374800.25
    assert parse_time('2026-01-25T22:00:00+01:00') == 1769374800.0
    assert parse_time(None) is None and parse_time('') is None and parse_time('not a time') is None


def test_rfc3339_of_a_datetime_epoch_seconds_and_now():
    when = datetime.datetime(2026, 1, 25, 22, 0, 0, 700000, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert rfc3339(when) == '2026-01-25T21:00:00Z'
    assert rfc3339(1769374800) == '2026-01-25T21:00:00Z'
    assert rfc3339(1769374800.9) == '2026-01-25T21:00:00Z'   # whole seconds, as the API server writes
    assert rfc3339(0) == '1970-01-01T00:00:00Z'              # epoch 0 is a time, not "now"
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', rfc3339())


def test_round_trip():
    for text in ('2026-01-25T21:00:00Z', '1999-12-31T23:59:59Z'):
        assert rfc3339(parse_time(text)) == text


def test_the_fence_proof_timestamp_is_rfc3339():
    """proxmox_fence's proof carries its time in the same vocabulary force_detach reads it with."""
    assert fence.rfc3339 is rfc3339
