"""Mock-server throughput and added delay under fixed-rate load from autocannon and Locust.

Learns the steady benchmark scenario into a state, starts ``driftbayes serve`` on 127.0.0.1 and,
in the same run, a bare Starlette app on uvicorn that answers at once (the baseline), and drives
each at ``--rate`` requests/s over ``--users`` connections with random learned endpoints and
personas (``X-Persona``) from each generator: autocannon (Node, installed by this script with
npm into ``--autocannon-dir``) and Locust headless (Python, installed into ``--locust-venv``).
Every response's requested delay (``X-Driftbayes-Latency-Ms``) is compared with the response
time the generator observed; the server's RSS is sampled every 2 s. Prints a table and writes
``benchmarks/results/serve.md``::

    python benchmarks/serve.py [--generator {autocannon,locust,both}] [--users 200]
        [--rate 1000] [--seconds 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
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
AUTOCANNON_VERSION = "9.0.0"
GENERATORS = ("autocannon", "locust")

LOCUSTFILE = textwrap.dedent('''
    import json, os, random, time
    from locust import FastHttpUser, task, constant_throughput, events

    ENDPOINTS = json.loads(os.environ["BENCH_ENDPOINTS"])
    PERSONAS = json.loads(os.environ["BENCH_PERSONAS"])
    OUT = os.environ["BENCH_OUT"]
    rows = []
    sent = 0
    started = []

    @events.test_start.add_listener
    def _start(environment, **kw):
        started.append(time.time())

    class Client(FastHttpUser):
        wait_time = constant_throughput(float(os.environ["BENCH_RPS_PER_USER"]))

        @task
        def call(self):
            global sent
            sent += 1
            method, path = random.choice(ENDPOINTS)
            with self.client.request(method, path, headers={"X-Persona": random.choice(PERSONAS)},
                                     name=path, catch_response=True) as r:
                want = r.headers.get("X-Driftbayes-Latency-Ms")
                rows.append((r.request_meta["response_time"], float(want) if want else -1.0,
                             r.status_code))
                r.success()

    @events.quitting.add_listener
    def _dump(environment, **kw):
        # connection errors are rows with status 0
        with open(OUT, "w") as f:
            json.dump({"rows": rows, "sent": sent, "errors": 0,
                       "seconds": time.time() - started[0]}, f)
''')

# Response time is autocannon's own: process.hrtime from just before the request is written to
# the socket until its response is parsed completely. With pipelining 1 a connection has one
# request in flight, so its 'headers' event and the 'response' event after it are one exchange.
# One autocannon instance per connection, started 1/n s apart: a single instance's overallRate
# gives every connection a per-second budget spent back to back at the start of one-second
# intervals that all begin together, i.e. bursts of ~all requests early in each second.
AUTOCANNON_JS = textwrap.dedent('''
    const fs = require("fs");
    const autocannon = require(process.env.BENCH_AUTOCANNON);
    const cfg = JSON.parse(process.env.BENCH_CONFIG);
    const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
    const n = Math.min(cfg.connections, cfg.rate);
    const rows = [];
    const seconds = [];
    let sent = 0;
    let errors = 0;

    function setupRequest (req) {
      const [method, path] = pick(cfg.endpoints);
      return { ...req, method, path,
               headers: { ...req.headers, "X-Persona": pick(cfg.personas) } };
    }

    function setupClient (client) {
      let want = -1;
      client.on("request", () => { sent += 1; });
      client.on("headers", ({ headers }) => {
        want = -1;
        for (let i = 0; i < headers.length; i += 2) {
          if (headers[i].toLowerCase() === "x-driftbayes-latency-ms") want = Number(headers[i + 1]);
        }
      });
      client.on("response", (status, bytes, ms) => { rows.push([ms, want, status]); });
    }

    function done (err, res) {
      if (err) throw err;
      errors += res.errors;
      seconds.push(res.duration);
      if (seconds.length === n) {
        const mean = seconds.reduce((a, b) => a + b, 0) / n;
        fs.writeFileSync(cfg.out, JSON.stringify({ rows, sent, errors, seconds: mean }));
      }
    }

    for (let i = 0; i < n; i++) {
      const rate = Math.floor(cfg.rate / n) + (i < cfg.rate % n ? 1 : 0);
      setTimeout(() => autocannon({ url: cfg.url, connections: 1, overallRate: rate,
                                    duration: cfg.seconds, pipelining: 1,
                                    skipAggregateResult: true, requests: [{ setupRequest }],
                                    setupClient }, done),
                 (i * 1000) / n);
    }
''')

BASELINE_APP = textwrap.dedent('''
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST"])])
''')


def _wait(port: int, timeout: float = 120.0) -> None:
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


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds used so far by process ``pid``, or by the whole machine (busy, not idle)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    jiffies = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / tick  # less idle and iowait


def _locust_bin(venv: Path) -> Path:
    exe = venv / "bin" / "locust"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "locust"], check=True)
    return exe


def _autocannon_module(prefix: Path) -> Path:
    """``autocannon@AUTOCANNON_VERSION`` installed with npm under ``prefix`` (once)."""
    module = prefix / "node_modules" / "autocannon"
    pkg = module / "package.json"
    if not pkg.exists() or json.loads(pkg.read_text())["version"] != AUTOCANNON_VERSION:
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--loglevel", "error", f"autocannon@{AUTOCANNON_VERSION}"], check=True)
    return module


def _drive(cmd: list[str], env: dict, out: Path, server_pid: int, log: Path) -> dict:
    """Run a load generator to its end, sampling the server's RSS every 2 s; also the CPU
    cores the server and the whole machine used meanwhile."""
    rss = [_rss_mb(server_pid)]
    t, server_cpu, machine_cpu = time.monotonic(), _cpu_s(server_pid), _cpu_s()
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=err, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(2)
            rss.append(_rss_mb(server_pid))
    t = time.monotonic() - t
    cores = ((_cpu_s(server_pid) - server_cpu) / t, (_cpu_s() - machine_cpu) / t)
    if not out.exists():
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode} without results:\n"
                           f"{log.read_text()[-2000:]}")
    res = json.loads(out.read_text())
    return {"rows": np.array(res["rows"], dtype=float).reshape(-1, 3), "sent": res["sent"],
            "errors": res["errors"], "seconds": res["seconds"], "rss": rss, "cores": cores}


def _load(generator: str, tool: Path, port: int, args, endpoints, personas, tmp: Path,
          server_pid: int) -> dict:
    out = tmp / f"{generator}-{port}.json"
    log = tmp / f"{generator}-{port}.log"
    if generator == "autocannon":
        script = tmp / "load.js"
        script.write_text(AUTOCANNON_JS)
        cfg = {"url": f"http://127.0.0.1:{port}", "connections": args.users, "rate": args.rate,
               "seconds": args.seconds, "endpoints": endpoints, "personas": personas,
               "out": str(out)}
        env = {**os.environ, "BENCH_AUTOCANNON": str(tool), "BENCH_CONFIG": json.dumps(cfg)}
        return _drive(["node", str(script)], env, out, server_pid, log)
    lf = tmp / "locustfile.py"
    lf.write_text(LOCUSTFILE)
    env = {**os.environ, "BENCH_RPS_PER_USER": str(args.rate / args.users),
           "BENCH_ENDPOINTS": json.dumps(endpoints),
           "BENCH_PERSONAS": json.dumps(personas), "BENCH_OUT": str(out)}
    cmd = [str(tool), "-f", str(lf), "--headless", "-u", str(args.users),
           "-r", str(max(args.users // 5, 1)), "-t", f"{args.seconds}s", "--only-summary",
           "--host", f"http://127.0.0.1:{port}"]
    return _drive(cmd, env, out, server_pid, log)


def _row(generator: str, server: str, res: dict, rate: int, expected: set[int],
         base_rps: float | None) -> str:
    """One table row; without ``base_rps`` it is the baseline (total response times)."""
    rows = res["rows"]
    rps = len(rows) / res["seconds"]
    errors = res["errors"] + int(np.sum(~np.isin(rows[:, 2].astype(int), list(expected))))
    if base_rps is None:
        delay, shown, note = rows[:, 0], f"{rps:,.0f}", " (total)"
    else:
        has = rows[:, 1] >= 0
        delay, shown, note = rows[has, 0] - rows[has, 1], f"{rps:,.0f} ({rps / base_rps:.2f}×)", ""
    p50, p99 = np.percentile(delay, [50, 99])
    return (f"| {generator} | {server} | {res['sent']:,} / {rate * res['seconds']:,.0f} | "
            f"{len(rows):,} | {res['seconds']:.1f} | {shown} | {delay.min():.1f}{note} | "
            f"{p50:.1f}{note} | {p99:.1f}{note} | {errors} | "
            f"{res['rss'][0]:.0f} → {res['rss'][-1]:.0f} | "
            f"{res['cores'][0]:.2f} / {res['cores'][1]:.2f} |")


def _measure(tools: dict[str, Path], args, tmp: Path) -> list[str]:
    """Table rows: per generator, the baseline and then ``driftbayes serve``, each fresh."""
    from driftbayes.bench.suite import scenario_stream
    from driftbayes.config import Config
    from driftbayes.export.runtimes import free_port
    from driftbayes.learner import DriftLearner
    from driftbayes.state import save_state

    stream = scenario_stream("steady", hours=4)
    learner = DriftLearner(Config.from_dict({"update_interval": 300, "sensitivity": 1.0},
                                            warn=False)).learn_many(stream.events)
    state = tmp / "state.nc"
    save_state(learner, state)
    (tmp / "baseline_app.py").write_text(BASELINE_APP)
    endpoints = [k.split(" ", 1) for k in learner.endpoints_]
    endpoints = [(m, t.replace("{id}", "42")) for m, t in endpoints]
    learned = set(learner.statuses_) | {int(Config().synthetic.status)}

    table = []
    for gen, tool in tools.items():
        results = {}
        for name in ("baseline", "driftbayes"):
            port = free_port()
            if name == "baseline":
                cmd = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--host",
                       "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            else:
                cmd = [sys.executable, "-m", "driftbayes.cli", "serve", "--state", str(state),
                       "--host", "127.0.0.1", "--port", str(port), "--seed", "1"]
            server = subprocess.Popen(cmd, cwd=tmp)
            try:
                _wait(port)
                results[name] = _load(gen, tool, port, args, endpoints, learner.personas_, tmp,
                                      server.pid)
            finally:
                server.terminate()
                server.wait(timeout=30)
        base = results["baseline"]
        base_rps = len(base["rows"]) / base["seconds"]
        table += [_row(gen, "bare uvicorn (baseline, answers at once)", base, args.rate, {200},
                       None),
                  _row(gen, "driftbayes serve", results["driftbayes"], args.rate, learned,
                       base_rps)]
    return table


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", choices=(*GENERATORS, "both"), default="both")
    ap.add_argument("--users", type=int, default=200,
                    help="concurrent connections / users (autocannon: at most --rate)")
    ap.add_argument("--rate", type=int, default=1000, help="target requests/s over all users")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--autocannon-dir", default="/tmp/driftbayes-autocannon",
                    help="npm prefix autocannon is installed into")
    ap.add_argument("--locust-venv", default="/tmp/driftbayes-locust")
    ap.add_argument("--out", default=str(HERE / "results" / "serve.md"))
    args = ap.parse_args(argv)

    generators = GENERATORS if args.generator == "both" else (args.generator,)
    tools = {g: _autocannon_module(Path(args.autocannon_dir)) if g == "autocannon"
             else _locust_bin(Path(args.locust_venv)) for g in generators}
    with tempfile.TemporaryDirectory(prefix="driftbayes-serve-") as tmp:
        table = _measure(tools, args, Path(tmp))
    # both servers run uvicorn with its default loop="auto", http="auto"
    stack = (f"{'uvloop' if importlib.util.find_spec('uvloop') else 'asyncio'} + "
             f"{'httptools' if importlib.util.find_spec('httptools') else 'h11'}")
    lines = [
        "# Mock server under fixed-rate load",
        "",
        f"Command: `python benchmarks/serve.py --generator {args.generator} --users {args.users} "
        f"--rate {args.rate} --seconds {args.seconds}` · {os.cpu_count()} cores · the load "
        "generator and the server share the machine; every server is a fresh uvicorn process "
        f"({stack}).",
        "",
        "| generator | server | sent / target | responses | run s | req/s (× baseline) | "
        "added delay min ms | added delay p50 ms | added delay p99 ms | "
        "errors beyond the sampled | RSS start → end MiB | CPU cores server / machine |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *table,
        "",
        "- *Added delay* = the response time the generator measured minus the delay the mock "
        "drew and slept (`X-Driftbayes-Latency-Ms`, responses without it left out); for the "
        "baseline the columns are the total response time. Both include the generator's own "
        "client overhead on this machine.",
        "- *sent / target*: requests written vs `--rate` × *run s*, how long each connection "
        "ran (autocannon: their mean) or the test ran (Locust); *responses* are the completed "
        "ones (requests still in flight at the end are dropped); *req/s* = responses / run s. "
        "A connection has one request in flight, so against the mock's drawn delays it can fall "
        "short of its share of the rate when one second's requests take longer than a second.",
        "- *errors beyond the sampled*: responses whose status is not one the mock learned (200 "
        "for the baseline), plus connection errors and timeouts.",
        f"- *CPU cores*: CPU time over wall time while the generator ran, of the server process "
        f"(one event-loop thread: 1.00 is saturated) and of the whole machine ({os.cpu_count()} "
        "cores, busy = not idle): server + generator + anything else running. A machine figure "
        "well above server + generator means other load disturbed that row.",
        f"- autocannon {AUTOCANNON_VERSION}, programmatic API, pipelining 1: one instance per "
        "connection with `overallRate` = its share of `--rate`, the instances started "
        "1/`--users` s apart. (One instance with `overallRate` over all connections gives each "
        "connection a per-second budget that it spends back to back at the start of a one-second "
        "interval, and all those intervals start together: most requests of each second then "
        "arrive in its first few hundred ms.) Response time is autocannon's own `process.hrtime` "
        "span from just before the request is written until its response is parsed (the "
        "client's `response` event); the requested delay is read from the same connection's "
        "`headers` event just before it (one request in flight per connection).",
        "- Locust (`FastHttpUser`, `constant_throughput(rate / users)`, users spawned over 5 s): "
        "response time is Locust's `response_time`; Locust is Python and competes with the "
        "server for the cores.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return Path(args.out)


if __name__ == "__main__":
    main()
