"""Mock-server throughput and added delay under concurrent load from Locust (headless).

Learns the steady benchmark scenario into a state, starts ``driftbayes serve`` on 127.0.0.1 and,
in the same run, a bare Starlette app on uvicorn that answers at once (the baseline), and drives
each with Locust (installed by this script into its own virtualenv, ``--locust-venv``). Every
response's requested delay (``X-Driftbayes-Latency-Ms``) is compared with the delay Locust
observed. Prints a table and writes ``benchmarks/results/serve.md``::

    python benchmarks/serve.py [--users 200] [--rate 1000] [--seconds 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent

LOCUSTFILE = textwrap.dedent('''
    import json, os, random
    from locust import FastHttpUser, task, constant_throughput, events

    ENDPOINTS = json.loads(os.environ["BENCH_ENDPOINTS"])
    PERSONAS = json.loads(os.environ["BENCH_PERSONAS"])
    OUT = os.environ["BENCH_OUT"]
    rows = []

    class Client(FastHttpUser):
        wait_time = constant_throughput(float(os.environ["BENCH_RPS_PER_USER"]))

        @task
        def call(self):
            method, path = random.choice(ENDPOINTS)
            with self.client.request(method, path, headers={"X-Persona": random.choice(PERSONAS)},
                                     name=path, catch_response=True) as r:
                want = r.headers.get("X-Driftbayes-Latency-Ms")
                rows.append((r.request_meta["response_time"], float(want) if want else -1.0,
                             r.status_code))
                r.success()

    @events.quitting.add_listener
    def _dump(environment, **kw):
        with open(OUT, "w") as f:
            json.dump(rows, f)
''')

BASELINE_APP = textwrap.dedent('''
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST"])])
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, timeout: float = 30.0) -> None:
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _locust_bin(venv: Path) -> Path:
    exe = venv / "bin" / "locust"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "locust"], check=True)
    return exe


def _load(locust: Path, port: int, users: int, rate: float, seconds: int, endpoints, personas,
          tmp: Path, server_pid: int) -> dict:
    out = tmp / f"rows-{port}.json"
    lf = tmp / "locustfile.py"
    lf.write_text(LOCUSTFILE)
    env = {**os.environ, "BENCH_RPS_PER_USER": str(rate / users),
           "BENCH_ENDPOINTS": json.dumps(endpoints),
           "BENCH_PERSONAS": json.dumps(personas), "BENCH_OUT": str(out)}
    rss = [_rss_mb(server_pid)]
    proc = subprocess.Popen([str(locust), "-f", str(lf), "--headless", "-u", str(users),
                             "-r", str(max(users // 5, 1)), "-t", f"{seconds}s", "--only-summary",
                             "--host", f"http://127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        time.sleep(2)
        rss.append(_rss_mb(server_pid))
    rows = np.array(json.loads(out.read_text()), dtype=float).reshape(-1, 3)
    return {"rows": rows, "rss": rss, "seconds": seconds}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1000.0,
                    help="target requests/s over all users (Locust constant_throughput)")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--locust-venv", default="/tmp/driftbayes-locust")
    ap.add_argument("--out", default=str(HERE / "results" / "serve.md"))
    args = ap.parse_args(argv)

    from driftbayes.bench.suite import scenario_stream
    from driftbayes.config import Config
    from driftbayes.learner import DriftLearner
    from driftbayes.state import save_state

    locust = _locust_bin(Path(args.locust_venv))
    tmp = Path(tempfile.mkdtemp(prefix="driftbayes-serve-"))
    stream = scenario_stream("steady", hours=4)
    learner = DriftLearner(Config.from_dict({"update_interval": 300, "sensitivity": 1.0},
                                            warn=False)).learn_many(stream.events)
    state = tmp / "state.nc"
    save_state(learner, state)
    endpoints = [k.split(" ", 1) for k in learner.endpoints_]
    endpoints = [(m, t.replace("{id}", "42")) for m, t in endpoints]

    results = {}
    for name in ("baseline", "driftbayes"):
        port = _free_port()
        if name == "baseline":
            (tmp / "baseline_app.py").write_text(BASELINE_APP)
            cmd = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning"]
            server = subprocess.Popen(cmd, cwd=tmp)
        else:
            cmd = [sys.executable, "-m", "driftbayes.cli", "serve", "--state", str(state),
                   "--host", "127.0.0.1", "--port", str(port), "--seed", "1"]
            server = subprocess.Popen(cmd, cwd=tmp)
        try:
            _wait(port)
            results[name] = _load(locust, port, args.users, args.rate, args.seconds, endpoints,
                                  learner.personas_, tmp, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)

    base, db = results["baseline"], results["driftbayes"]
    rows = db["rows"]
    has = rows[:, 1] >= 0
    added = rows[has, 0] - rows[has, 1]
    learned = set(learner.statuses_) | {int(Config().synthetic.status)}
    unexpected = int(np.sum(~np.isin(rows[:, 2].astype(int), list(learned))))
    rps = len(rows) / args.seconds
    base_rps = len(base["rows"]) / args.seconds
    lines = [
        "# Mock server under load (Locust headless)",
        "",
        f"Command: `python benchmarks/serve.py --users {args.users} --rate {args.rate:g} "
        f"--seconds {args.seconds}` · "
        f"{os.cpu_count()} cores · Locust and the server share the machine.",
        "",
        "| server | requests | req/s | added delay p50 ms | added delay p99 ms | "
        "errors beyond the sampled | RSS start → end MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| bare uvicorn (baseline, answers at once) | {len(base['rows']):,} | {base_rps:,.0f} | "
        f"{np.percentile(base['rows'][:, 0], 50):.1f} (total) | "
        f"{np.percentile(base['rows'][:, 0], 99):.1f} (total) | "
        f"{int(np.sum(base['rows'][:, 2] != 200))} | "
        f"{base['rss'][0]:.0f} → {base['rss'][-1]:.0f} |",
        f"| driftbayes serve | {len(rows):,} | {rps:,.0f} ({rps / base_rps:.2f}× baseline) | "
        f"{np.percentile(added, 50):.1f} | {np.percentile(added, 99):.1f} | {unexpected} | "
        f"{db['rss'][0]:.0f} → {db['rss'][-1]:.0f} |",
        "",
        "Added delay = the response time Locust measured minus the delay the mock drew "
        "(`X-Driftbayes-Latency-Ms`); it includes Locust's own client overhead on this machine.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return Path(args.out)


if __name__ == "__main__":
    main()
