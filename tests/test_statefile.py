"""Exclusive state writers: the lock file, orphaned ``.tmp`` cleanup, ``kill -9`` during saves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from driftbayes.learner import DriftLearner
from driftbayes.state import load_state, save_state
from driftbayes.statefile import StateLockedError, lock_path, state_lock
from tests.helpers import ROOT, child_env, hold_state_lock, traffic


def test_second_writer_fails_at_once_with_wait_0(tmp_path):
    state = tmp_path / "s.nc"
    holder = hold_state_lock(state)
    try:
        with pytest.raises(StateLockedError, match=r"s\.nc: another driftbayes process .*--wait"):
            with state_lock(state, 0):
                pass
        with pytest.raises(StateLockedError):  # save_state goes through the same lock
            with state_lock(state, 0):
                save_state(DriftLearner(), state)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with state_lock(state, 0):  # free again once the holder ended
        pass
    assert lock_path(state).exists() and not state.exists()


def test_lock_is_reentrant_and_excludes_other_threads(tmp_path):
    state = tmp_path / "s.nc"
    learner = DriftLearner().learn_many(traffic(200, seed=1))
    outcome = {}
    with state_lock(state, 0):
        save_state(learner, state)  # re-entrant: save_state takes the lock we hold

        def other():
            try:
                with state_lock(state, 0):
                    outcome["other"] = "got it"
            except StateLockedError:
                outcome["other"] = "refused"

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert outcome["other"] == "refused"
    assert load_state(state).n_events_ == 200


def test_save_removes_orphaned_tmp_files(tmp_path):
    state = tmp_path / "s.nc"
    orphans = [tmp_path / "s.nc.abc123.tmp", tmp_path / "s.nc.zzz.tmp"]
    for o in orphans:
        o.write_bytes(b"half a state")
    keep = tmp_path / "other.nc.abc.tmp"  # another state's file is not ours to delete
    keep.write_bytes(b"x")
    save_state(DriftLearner().learn_many(traffic(100, seed=2)), state)
    assert not any(o.exists() for o in orphans) and keep.exists()
    assert load_state(state).n_events_ == 100


_SAVER = textwrap.dedent("""
    import sys
    from driftbayes.learner import DriftLearner
    from driftbayes.state import save_state
    from tests.helpers import ROOT, child_env, hold_state_lock, traffic

    path = sys.argv[1]
    learners = [DriftLearner().learn_many(traffic(n, seed=n)) for n in (300, 1500)]
    print("ready", flush=True)
    i = 0
    while True:
        save_state(learners[i % 2], path)
        i += 1
""")


@pytest.mark.slow
def test_kill_9_during_saves_leaves_a_loadable_state_and_no_orphan(tmp_path):
    state = tmp_path / "s.nc"
    save_state(DriftLearner().learn_many(traffic(300, seed=300)), state)
    rng = np.random.default_rng(12)
    seen_orphans = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(state)],
                                stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT)
        try:
            assert proc.stdout.readline().strip() == "ready"
            # a random point inside the save loop (seeded; no assertion depends on timing)
            threading.Event().wait(float(rng.uniform(0.0, 0.6)))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
        assert load_state(state).n_events_ in (300, 1500)
        seen_orphans += len(list(tmp_path.glob("s.nc.*.tmp")))
        save_state(DriftLearner().learn_many(traffic(300, seed=300)), state)
        assert list(tmp_path.glob("s.nc.*.tmp")) == []  # the next save cleaned up
        assert load_state(state).n_events_ == 300
    print(f"orphans left by kill -9 and removed by the next save: {seen_orphans}")
