"""The collection's one time vocabulary: parse_time reads, rfc3339 writes (now, a datetime, epoch seconds),
parse_http_date reads the HTTP-Date of Date and Retry-After headers."""

from __future__ import annotations

import datetime
import email.utils
import re
import time

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s import client, errors
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_http_date, parse_time, rfc3339
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


#: RFC 7231 section 7.1.1.1 (RFC 9110 section 5.6.7): one instant in the three forms a recipient must accept.
RFC_EXAMPLE = 784111777.0   # 1994-11-06T08:49:37Z


@pytest.mark.parametrize('text', [
    'Sun, 06 Nov 1994 08:49:37 GMT',     # IMF-fixdate, what servers send
    'Sunday, 06-Nov-94 08:49:37 GMT',    # obsolete RFC 850 form
    'Sun Nov  6 08:49:37 1994',          # obsolete asctime form: no zone, and UTC all the same
    ' Sun, 06 Nov 1994 08:49:37 GMT ',
])
def test_parse_http_date_reads_the_three_forms_as_utc(text):
    assert parse_http_date(text) == RFC_EXAMPLE
    assert rfc3339(parse_http_date(text)) == '1994-11-06T08:49:37Z'


def test_parse_http_date_never_reads_local_time(monkeypatch):
    """asctime carries no zone: it is GMT (RFC 9110), whatever the zone of the machine reading it."""
    monkeypatch.setenv('TZ', 'America/New_York')
    time.tzset()
    try:
        assert parse_http_date('Sun Nov  6 08:49:37 1994') == RFC_EXAMPLE
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_http_date_of_something_else_is_none():
    for text in (None, '', 'soon', '120', 'Sun, 06 Nov 1994', 'Sun, 31 Feb 1994 08:49:37 GMT', '2026-01-25T21:00:00Z'):
        assert parse_http_date(text) is None, text


def test_parse_http_date_round_trips_what_the_lab_and_python_write():
    when = 1769374800.0
    assert parse_http_date(email.utils.formatdate(when, usegmt=True)) == when
    assert parse_http_date(email.utils.formatdate(when, localtime=True)) == when


def test_retry_after_is_delta_seconds_or_an_http_date():
    assert errors.parse_retry_after('120') == 120.0 and errors.parse_retry_after(7) == 7.0
    assert errors.parse_retry_after('-3') == 0.0
    assert errors.parse_retry_after('Sun, 06 Nov 1994 08:50:37 GMT', now=RFC_EXAMPLE) == 60.0
    assert errors.parse_retry_after('Sun, 06 Nov 1994 08:49:00 GMT', now=RFC_EXAMPLE) == 0.0   # in the past
    assert errors.parse_retry_after('Sun, 06 Nov 1994 08:49:37 GMT') == 0.0
    assert errors.parse_retry_after(None) is None and errors.parse_retry_after('later') is None


class _Response(object):
    def __init__(self, headers):
        self.headers = headers


def test_the_server_clock_comes_from_the_date_header():
    k8s = client.K8sClient.__new__(client.K8sClient)   # only the Date bookkeeping, no API client
    k8s.server_time = None
    k8s._note_server_time(_Response({'Date': 'Sun, 06 Nov 1994 08:49:37 GMT'}))
    assert k8s.server_time == RFC_EXAMPLE
    k8s._note_server_time(_Response({'date': 'Sun Nov  6 08:50:37 1994'}))
    assert k8s.server_time == RFC_EXAMPLE + 60
    k8s._note_server_time(_Response({'Date': 'garbled'}))   # an unreadable header keeps the last reading
    k8s._note_server_time(_Response({}))
    assert k8s.server_time == RFC_EXAMPLE + 60
