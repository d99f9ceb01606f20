"""On every realism-benchmark scenario and every named recording, the learner's patterns (all
three layers) and statistics equal the window-by-window reference learner's to 1e-9 relative.
Recordings are cut to their first events so the reference (every cell, every window) stays
within a test's time."""

from __future__ import annotations

import itertools

import pytest

from driftbayes.bench.scenarios import SCENARIOS, make_scenario
from driftbayes.config import Config
from driftbayes.events import BadRecordReport, EventBatch
from tests.helpers import use_recording
from tests.test_lazy_equivalence import assert_same_patterns, learn_both

#: Events, and hours of event time, of each recording replayed through both learners.
RECORDING_EVENTS = 4_000
RECORDING_HOURS = 1.0


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_equal_the_reference(name):
    events = make_scenario(name, seed=0, scale=0.25, hours=6.0).events
    lazy, ref = learn_both(events, {"update_interval": 300}, chunks=3)
    assert lazy.n_events_ == len(events)
    assert_same_patterns(lazy, ref)


@pytest.mark.parametrize("name", ["nasa", "apache", "openstack", "trainticket",
                                  "trainticket-spans", "har-samples"])
def test_recordings_equal_the_reference(name, monkeypatch):
    from driftbayes.io.recordings import read_events

    use_recording(name, monkeypatch)
    cfg = Config()
    batches = list(itertools.islice(read_events(name, config=cfg, batch_size=4_000,
                                                report=BadRecordReport()), 2))
    events = EventBatch.concat(batches)
    keep = (events.ts <= events.ts.min() + RECORDING_HOURS * 3600.0).nonzero()[0]
    events = events.take(keep[:RECORDING_EVENTS])
    lazy, ref = learn_both(events, {}, chunks=3)
    assert_same_patterns(lazy, ref)
