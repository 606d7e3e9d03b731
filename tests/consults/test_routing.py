"""Ranking and level selection, without a database."""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from consults.routing import Candidate, next_batch, rank
from consults.stats import _percentile

ORG, PARTNER = uuid.uuid4(), uuid.uuid4()
NOW = datetime.now(UTC)


def cand(name: str, *, org=ORG, tier=1, langs=("en",), load=0, last=None) -> Candidate:
    return Candidate(uuid.uuid5(uuid.NAMESPACE_DNS, name), org, tier, tuple(langs), load, last)


def consult(urgency="urgent", languages=()):
    return SimpleNamespace(org_id=ORG, urgency=urgency, languages=list(languages))


def test_shared_language_beats_load():
    fr_busy, en_idle = cand("fr", langs=("fr",), load=2), cand("en", load=0)
    assert rank([en_idle, fr_busy], ["fr"]) == [fr_busy, en_idle]


def test_lighter_load_then_least_recently_assigned():
    busy, idle_recent, idle_long_ago, idle_never = (
        cand("b", load=1),
        cand("r", last=NOW),
        cand("l", last=NOW - timedelta(days=1)),
        cand("n"),
    )
    assert rank([busy, idle_recent, idle_long_ago, idle_never], []) == [
        idle_never,
        idle_long_ago,
        idle_recent,
        busy,
    ]


def test_levels_in_order_and_emergent_rings_all():
    t1a, t1b, t2, partner = cand("a"), cand("b"), cand("c", tier=2), cand("p", org=PARTNER)
    everyone = [partner, t2, t1b, t1a]
    assert next_batch(everyone, consult=consult("emergent"), tried=set(), from_level=1) == (
        1,
        rank([t1a, t1b], []),
    )
    level, batch = next_batch(everyone, consult=consult("routine"), tried=set(), from_level=1)
    assert level == 1 and len(batch) == 1
    tried = {t1a.user_id, t1b.user_id}
    assert next_batch(everyone, consult=consult(), tried=tried, from_level=1) == (2, [t2])
    assert next_batch(everyone, consult=consult(), tried=tried | {t2.user_id}, from_level=2) == (3, [partner])
    assert next_batch(everyone, consult=consult(), tried={c.user_id for c in everyone}, from_level=3) == (
        4,
        [],
    )


def test_percentile_interpolates():
    assert _percentile([1.0], 0.9) == 1.0
    assert _percentile([0.0, 10.0], 0.9) == 9.0
    assert _percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.5) == 5.5
