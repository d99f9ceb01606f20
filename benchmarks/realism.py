"""Realism benchmark: every mock scored prequentially on every scenario and real recording.

Runs the full suite (the scenarios of ``driftbayes.bench.scenarios`` with their ground truth,
and the TrainTicket, NASA and OpenStack recordings), prints the table and writes
``benchmarks/results/realism.md`` (the table with the command and seed that produced it) and the
plots and HTML report in ``benchmarks/results/realism/``::

    python benchmarks/realism.py [--seed 0] [--scenario NAME ...] [--hours H] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> Path:
    from driftbayes.bench.harness import default_mocks
    from driftbayes.bench.report import markdown_table, write_report
    from driftbayes.bench.scenarios import SCENARIOS
    from driftbayes.bench.suite import (
        REAL,
        TUNED,
        ranks,
        recording_stream,
        run_suite,
        scenario_stream,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenario", action="append", default=[],
                    help=f"one of {', '.join([*SCENARIOS, *REAL])} (repeatable; default all)")
    ap.add_argument("--hours", type=float, default=None, help="scenario duration override")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    names = args.scenario or [*SCENARIOS, *REAL]
    out = Path(args.out)
    started = time.perf_counter()
    streams = [scenario_stream(n, seed=args.seed, hours=args.hours) if n in SCENARIOS
               else recording_stream(n) for n in names]
    done = [0]
    total = sum(s.n_windows for s in streams)

    def progress(k: int) -> None:
        done[0] += k
        if done[0] % 50 == 0 or done[0] == total:
            print(f"\r{done[0]}/{total} windows", end="", file=sys.stderr, flush=True)

    scores, series = run_suite(streams, default_mocks(TUNED), progress=progress)
    print(file=sys.stderr)
    rank_table, mean_rank = ranks(scores)
    command = "python benchmarks/realism.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report(out / "realism", scores, series, rank_table, mean_rank, command=command.strip(),
                 seed=args.seed, descriptions={s.name: s.description for s in streams})
    text = (f"# Realism: what each mock serves vs what traffic does next\n\n"
            f"Command: `{command.strip()}` · seed {args.seed} · {os.cpu_count()} cores · "
            f"{time.perf_counter() - started:.0f} s. Prequential: each window is scored with what "
            f"the mock learned from the windows before it. Lower is better except `coverage90` "
            f"(target 0.9). Best per row in bold. Plots and an HTML report: `realism/`.\n\n"
            + markdown_table(scores, rank_table, mean_rank) + "\n")
    path = out / "realism.md"
    path.write_text(text)
    print(text)
    return path


if __name__ == "__main__":
    main()
