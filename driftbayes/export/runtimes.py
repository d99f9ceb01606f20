"""The real runtimes the exports are checked against: installed from the registries, started on
127.0.0.1, probed with concurrent requests. Used by the tests, ``benchmarks/exports.py`` and
``notebooks/04-export.ipynb``; ``python -m driftbayes.export.runtimes`` installs them all (CI).

Installs are cached under ``$DRIFTBAYES_RUNTIMES`` (default ``~/.cache/driftbayes/runtimes``):
npm packages in ``npm/<package>@<version>/node_modules``, Locust in its own virtualenv (its
gevent monkey-patching must not share a process with driftbayes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from driftbayes.export.locust import LOCUST_VERSION
from driftbayes.export.mockoon import MOCKOON_CLI_VERSION
from driftbayes.export.wiremock import WIREMOCK_VERSION

#: Versions that resolve from the registries here (pinned; see notes/mock-runtimes.md).
WIREMOCK = ("wiremock", WIREMOCK_VERSION)
MOCKOON = ("@mockoon/cli", MOCKOON_CLI_VERSION)
LOCUST = f"locust=={LOCUST_VERSION}"


class RuntimeUnavailable(RuntimeError):
    """A runtime cannot be installed or started here (npm, node or java missing)."""


def cache_dir() -> Path:
    return Path(os.environ.get("DRIFTBAYES_RUNTIMES",
                               Path.home() / ".cache" / "driftbayes" / "runtimes"))


def npm_install(package: str, version: str) -> Path:
    """``node_modules`` with ``package@version`` installed (cached)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeUnavailable("npm/node are not installed")
    prefix = cache_dir() / "npm" / f"{package.replace('/', '_')}@{version}"
    modules = prefix / "node_modules"
    if not (modules / package / "package.json").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--loglevel=error", f"{package}@{version}"], check=True, timeout=900)
    return modules


def wiremock_jar() -> Path:
    """The standalone jar the npm ``wiremock`` package bundles."""
    if shutil.which("java") is None:
        raise RuntimeUnavailable("java is not installed")
    build = npm_install(*WIREMOCK) / "wiremock" / "build"
    jars = sorted(build.glob("wiremock-standalone-*.jar"))
    if not jars:
        raise RuntimeUnavailable(f"no wiremock-standalone jar in {build}")
    return jars[-1]


def mockoon_cli() -> Path:
    return npm_install(*MOCKOON) / ".bin" / "mockoon-cli"


def locust_bin() -> Path:
    """``locust`` from its own cached virtualenv."""
    venv = cache_dir() / "locust-venv"
    exe = venv / "bin" / "locust"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", LOCUST], check=True,
                       timeout=900)
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    """Wait until ``url`` answers (any status); raise with the process log if it died."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = log.read_text(errors="replace")[-4000:] if log is not None else ""
            raise RuntimeError(f"runtime exited with {proc.returncode}: {out}")
        try:
            httpx.get(url, timeout=1.0, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url} within {timeout} s")


@contextlib.contextmanager
def running(cmd: list[str], health_url: str, *, cwd=None, env=None,
            timeout: float = 90.0) -> Iterator[subprocess.Popen]:
    """Start a runtime process, wait for ``health_url``, stop it (and its children) after.

    Its output goes to a temporary log file (a pipe nobody reads would fill up and stall a
    runtime that logs every request); ``proc.log`` is that file's path.
    """
    with tempfile.NamedTemporaryFile("w+", prefix="driftbayes-runtime-", suffix=".log",
                                     delete=False) as fh:
        log = Path(fh.name)
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd,
                                env={**os.environ, **(env or {})}, stdout=fh,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.log = log
    try:
        wait_http(health_url, timeout, proc, log)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.unlink(missing_ok=True)


def hammer(url: str, n: int, *, method: str = "GET", headers: dict | None = None,
           concurrency: int = 50, timeout: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Send ``n`` requests, ``concurrency`` at a time → (latency ms, status) arrays."""
    import httpx

    async def run():
        lat = np.empty(n)
        status = np.empty(n, dtype=np.int64)
        sem = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            async def one(i):
                async with sem:
                    t0 = time.perf_counter()
                    r = await client.request(method, url, headers=headers)
                    await r.aread()
                    lat[i] = (time.perf_counter() - t0) * 1000.0
                    status[i] = r.status_code
            await asyncio.gather(*(one(i) for i in range(n)))
        return lat, status

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # called from a running loop (a notebook): run on a loop of its own in a thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def install_all() -> None:
    """Install every runtime (WireMock, Mockoon CLI, Locust) into the cache."""
    print("wiremock jar:", wiremock_jar())
    print("mockoon-cli:", mockoon_cli())
    print("locust:", locust_bin())


if __name__ == "__main__":
    install_all()
