"""The stable hashes that place session groups and endpoint blocks in a distributed run."""

import json
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftbayes.blocks import block_of, bucket
from driftbayes.io.enrich import session_group, session_groups

HOSTILE = ["", "a#1#2", "a##12", "k#3", "x#", "#5", "a#١", "z\ud800#4", "nul\x00#7",
           "crlf\r\n#8", "é#09", "x" * 100_000 + "#1"]


def test_bucket_agrees_across_python_runs_and_hash_seeds():
    keys = [f"GET /api/{i}" for i in range(200)] + HOSTILE
    code = ("import sys, json; from driftbayes.blocks import bucket; "
            "keys = json.loads(sys.stdin.read()); print(json.dumps(bucket(keys, 7).tolist()))")
    runs = [subprocess.run([sys.executable, "-c", code], input=json.dumps(keys), text=True,
                           capture_output=True, check=True, env={"PYTHONHASHSEED": seed,
                                                                "PATH": ""}).stdout
            for seed in ("1", "2")]
    assert runs[0] == runs[1]
    assert json.loads(runs[0]) == bucket(keys, 7).tolist()


def test_bucket_spreads_keys_evenly():
    n, k = 20_000, 4
    counts = np.bincount(bucket([f"client-{i}" for i in range(n)], k), minlength=k)
    # multinomial: each count within 5 standard deviations of n/k
    assert np.abs(counts - n / k).max() < 5 * np.sqrt(n * (1 / k) * (1 - 1 / k))


def test_bucket_takes_text_that_cannot_be_encoded_and_values_that_are_not_text():
    got = bucket(["a\udcff", "a\udcff", 17, "17"], 5)
    assert got.shape == (4,) and ((got >= 0) & (got < 5)).all()
    assert got[0] == got[1]
    assert bucket([], 3).shape == (0,)
    assert (bucket(["a", "b"], 1) == 0).all()


def test_block_of_is_bucket_of_the_endpoint_names():
    names = [f"GET /r/{i}" for i in range(50)]
    assert (block_of(names, 3) == bucket(names, 3)).all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab#01٣\x00\r\n")) | st.characters(),
                        max_size=12), max_size=30))
def test_session_groups_is_session_group_of_each(ids):
    values = np.array(ids + HOSTILE, dtype=object)
    assert session_groups(values).tolist() == [session_group(s) for s in values]
