"""Any input either validates or is refused with exit 2 and one line: never a traceback."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncjobs.domain import validation

pytestmark = pytest.mark.engines

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80
) | st.from_regex(NAME, fullmatch=True)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def refused_cleanly(outcome) -> bool:
    return (
        outcome.exit_code == 2
        and outcome.stdout == ""
        and outcome.stderr.startswith("error: ")
        and outcome.stderr.count("\n") == 1
    )


@SETTINGS
@given(org=TEXT, task=TEXT, queue=TEXT)
def test_any_names_are_accepted_exactly_when_they_match_the_pattern(
    cli, org, task, queue
):
    outcome = cli("submit", task, "--org", org, "--queue", queue)
    valid = all(NAME.fullmatch(v) for v in (org, task, queue))
    if valid:
        assert outcome.exit_code == 0 and outcome.stdout.strip().startswith("job_")
    else:
        assert refused_cleanly(outcome), outcome


@SETTINGS
@given(
    payload=st.text(max_size=60)
    | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
)
def test_any_payload_text_is_a_job_or_a_clean_refusal(cli, payload):
    outcome = cli("submit", "t", "--org", "acme", "--payload", payload)
    assert outcome.exit_code in (0, 2), outcome
    if outcome.exit_code == 2:
        assert refused_cleanly(outcome) and "payload" in outcome.stderr
    else:
        assert isinstance(json.loads(payload), dict)


@SETTINGS
@given(
    key=TEXT,
    priority=st.integers(-3, 12),
    delay=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_options_are_accepted_or_refused_with_exit_2(cli, key, priority, delay):
    outcome = cli(
        "submit",
        "t",
        "--org",
        "acme",
        "--idempotency-key",
        key,
        "--priority",
        str(priority),
        "--delay",
        repr(delay),
    )
    assert outcome.exit_code in (0, 2), outcome
    if outcome.exit_code == 2:
        assert refused_cleanly(outcome)


@SETTINGS
@given(
    moment=st.datetimes() | st.sampled_from([datetime.min, datetime.max]),
    offset=st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ),
)
def test_any_time_is_a_job_or_a_clean_refusal_naming_at(cli, moment, offset):
    text = moment.replace(tzinfo=offset).isoformat()
    outcome = cli("submit", "t", "--org", "acme", "--at", text)
    assert outcome.exit_code in (0, 2), outcome
    if outcome.exit_code == 2:
        assert refused_cleanly(outcome) and "--at: " in outcome.stderr


@SETTINGS
@given(job_id=TEXT, org=TEXT)
def test_any_id_and_org_read_as_not_found_or_invalid(client, cli, job_id, org):
    outcome = cli("status", job_id, "--org", org)
    expected = 3 if validation.NAME_PATTERN.fullmatch(org) else 2
    if job_id.startswith("-"):
        expected = 2  # click reads it as an option
    if job_id in ("-h", "--help"):
        assert outcome.exit_code == 0 and outcome.stdout.startswith("Usage:")
        return
    assert outcome.exit_code == expected, outcome
    assert outcome.stderr.startswith("error: ") and outcome.stderr.count("\n") == 1
    if expected == 3:
        assert outcome.stderr.startswith("error: job ") and "  " not in outcome.stderr
