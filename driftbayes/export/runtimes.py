"""The real runtimes the exports are checked against: installed from the registries, started on
127.0.0.1, probed with concurrent requests. Used by the tests, ``benchmarks/exports.py`` and
``notebooks/04-export.ipynb``; ``python -m driftbayes.export.runtimes`` installs them all (CI).

Installs are cached under ``$DRIFTBAYES_RUNTIMES`` (default ``~/.cache/driftbayes/runtimes``):
npm packages in ``npm/<package>@<version>/node_modules``, Locust in its own virtualenv (its
gevent monkey-patching must not share a process with driftbayes). With ``DRIFTBAYES_OFFLINE=1``
nothing is installed: only what the cache holds is used. Every failure to find or install a
runtime raises :class:`RuntimeUnavailable` with a one-line reason.
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
from collections.abc import Callable, Iterator
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
    """The runtimes cache: ``$DRIFTBAYES_RUNTIMES`` or ``~/.cache/driftbayes/runtimes``."""
    return Path(os.environ.get("DRIFTBAYES_RUNTIMES",
                               Path.home() / ".cache" / "driftbayes" / "runtimes"))


def offline() -> bool:
    """Whether installs are off (``DRIFTBAYES_OFFLINE`` set to anything but ``0``/empty)."""
    return os.environ.get("DRIFTBAYES_OFFLINE", "").strip().lower() not in ("", "0", "false",
                                                                             "no")


def _install(what: str, cmds: list[list[str]], notify: Callable[[str], None] | None,
             timeout: float) -> None:
    """Run the install commands of ``what``; any failure → :class:`RuntimeUnavailable`."""
    if offline():
        raise RuntimeUnavailable(f"{what} is not in the runtimes cache ({cache_dir()}) and "
                                 "DRIFTBAYES_OFFLINE is set")
    if notify is not None:
        notify(f"installing {what} into the runtimes cache {cache_dir()} (once)")
    for cmd in cmds:
        try:
            subprocess.run(cmd, check=True, timeout=timeout, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeUnavailable(f"could not install {what}: {cmd[0]} exited "
                                     f"{exc.returncode}: {last[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise RuntimeUnavailable(f"could not install {what}: {cmd[0]} took over "
                                     f"{timeout:g} s") from exc
        except OSError as exc:
            raise RuntimeUnavailable(f"could not install {what}: {exc}") from exc


def npm_install(package: str, version: str, *, notify: Callable[[str], None] | None = None,
                timeout: float = 900) -> Path:
    """``node_modules`` with ``package@version`` installed (cached).

    Raises :class:`RuntimeUnavailable` when npm/node are missing, the install is off
    (``DRIFTBAYES_OFFLINE``) or fails (e.g. the registry cannot be reached).
    """
    prefix = cache_dir() / "npm" / f"{package.replace('/', '_')}@{version}"
    modules = prefix / "node_modules"
    if (modules / package / "package.json").exists():
        return modules
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeUnavailable("npm/node are not installed")
    try:
        prefix.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot create the runtimes cache {prefix}: {exc}") from exc
    _install(f"npm {package}@{version}",
             [["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
               "--loglevel=error", f"{package}@{version}"]], notify, timeout)
    if not (modules / package / "package.json").exists():
        raise RuntimeUnavailable(f"npm installed no {package} under {modules}")
    return modules


def wiremock_jar(*, notify: Callable[[str], None] | None = None) -> Path:
    """The standalone jar the npm ``wiremock`` package bundles (cached; installed if missing)."""
    if shutil.which("java") is None:
        raise RuntimeUnavailable("java is not installed")
    build = npm_install(*WIREMOCK, notify=notify) / "wiremock" / "build"
    jars = sorted(build.glob("wiremock-standalone-*.jar"))
    if not jars:
        raise RuntimeUnavailable(f"no wiremock-standalone jar in {build}")
    return jars[-1]


def mockoon_cli(*, notify: Callable[[str], None] | None = None) -> Path:
    """``mockoon-cli`` of the pinned npm ``@mockoon/cli`` (cached; installed if missing)."""
    return npm_install(*MOCKOON, notify=notify) / ".bin" / "mockoon-cli"


def locust_bin(*, notify: Callable[[str], None] | None = None) -> Path:
    """``locust`` from its own cached virtualenv (installed if missing)."""
    venv = cache_dir() / "locust-venv"
    exe = venv / "bin" / "locust"
    if not exe.exists():
        _install(LOCUST, [[sys.executable, "-m", "venv", str(venv)],
                          [str(venv / "bin" / "pip"), "install", "--quiet", LOCUST]],
                 notify, 900)
    return exe


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it), for a runtime to listen on.

    The port is free until the runtime binds it. Under pytest-xdist, worker ``i`` of ``n`` only
    takes ports ``p`` with ``p // 2 % n == i`` (Linux hands ``bind`` odd ports), so two test
    processes starting runtimes at the same moment never get the same port.
    """
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1, ...
    i = int(worker[2:]) if worker[:2] == "gw" and worker[2:].isdigit() else 0
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port // 2 % n == i % n:
            return port


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
        # idle connections dropped long before a runtime's keep-alive timeout (Node: 5 s), so a
        # starved client never reuses one the server is closing
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                              keepalive_expiry=1.0)
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
