"""A learner's state as an ``xarray.Dataset`` of sufficient statistics, saved as NetCDF.

Layout (schema ``driftbayes-state`` version 1): one variable per sufficient statistic with a
leading ``store`` dim (``evidence``, ``applied``, ``pending``) and named dims ``endpoint``,
``persona``, ``status``, ``lat_bin``, ``hour``, ``src``/``dst`` (endpoints plus START/END);
the open-session table on an ``open_session`` dim; recorded response bodies (redacted, one per
endpoint × status) on a ``body`` dim; the gates on a ``kind`` dim; knobs and
clocks in the attributes. Saving is atomic: a temporary file in the same folder is written,
flushed and renamed over the target, so a crash mid-save never leaves a broken state.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from driftbayes import __version__
from driftbayes.config import Config
from driftbayes.conjugate import LATENCY_EDGES_MS, N_LATENCY_BINS
from driftbayes.learner import END, START, DriftLearner
from driftbayes.open_sessions import OpenSession, OpenSessions
from driftbayes.stats import KINDS, N_HOURS, STAT_DIMS, Stats

SCHEMA = "driftbayes-state"
SCHEMA_VERSION = 1
STORES = ("evidence", "applied", "pending")


class StateError(ValueError):
    """A file that is not a readable driftbayes state."""


def to_dataset(learner: DriftLearner) -> xr.Dataset:
    """The learner's full state as a Dataset with named dims (no information lost)."""
    L = learner
    coords = {
        "store": list(STORES),
        "endpoint": np.array(L.endpoints_, dtype=object),
        "persona": np.array(L.personas_, dtype=object),
        "status": np.array(L.statuses_, dtype=np.int64),
        "lat_bin": np.arange(N_LATENCY_BINS),
        "lat_lower_ms": ("lat_bin", LATENCY_EDGES_MS[:-1]),
        "lat_upper_ms": ("lat_bin", LATENCY_EDGES_MS[1:]),
        "hour": np.arange(N_HOURS),
        "src": np.array(L.endpoints_ + [START], dtype=object),
        "dst": np.array(L.endpoints_ + [END], dtype=object),
        "kind": list(KINDS),
    }
    data = {}
    for name, dims in STAT_DIMS.items():
        arr = np.stack([getattr(L, f"{s}_")[name] for s in STORES])
        data[name] = (("store",) + dims, arr)
    g = L.gate_
    data["gate"] = (
        ("kind", "endpoint", "persona"),
        np.stack([g[k] for k in KINDS if k != "transitions"] + [np.zeros_like(g["latency"])])
        .astype(np.int8),
    )
    data["gate_transitions"] = (("persona", "src"), g["transitions"].astype(np.int8))
    sessions = L.sessions.open()
    data["open_session_id"] = ("open_session", np.array([s.session for s in sessions],
                                                        dtype=object))
    data["open_endpoint"] = ("open_session", np.array([s.endpoint for s in sessions], np.int64))
    data["open_persona"] = ("open_session", np.array([s.persona for s in sessions], np.int64))
    data["open_ts"] = ("open_session", np.array([s.ts for s in sessions], dtype=float))
    bodies = sorted(L.bodies_.items())
    data["body_endpoint"] = ("body", np.array([k[0] for k, _ in bodies], dtype=object))
    data["body_status"] = ("body", np.array([k[1] for k, _ in bodies], dtype=np.int64))
    data["body_content_type"] = ("body", np.array([v[0] for _, v in bodies], dtype=object))
    data["body_text"] = ("body", np.array([v[1] for _, v in bodies], dtype=object))
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    attrs = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "driftbayes_version": __version__,
        "config_yaml": L.config.to_yaml(),
        "window": -1 if L.window_ is None else int(L.window_),
        "window_seconds": float(L.config.update_interval),
        "n_windows": int(L.n_windows_),
        "n_events": int(L.n_events_),
        "n_late": int(L.n_late_),
        "t_first": float(L.t_first_),
        "t_last": float(L.t_last_),
        "updated_at": now,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def from_dataset(ds: xr.Dataset, config: Config | None = None) -> DriftLearner:
    """Rebuild a learner from :func:`to_dataset` output (``config`` overrides the stored one)."""
    _check_schema(ds, "<dataset>")
    cfg = config if config is not None else _stored_config(ds.attrs["config_yaml"])
    L = DriftLearner(cfg)
    L.endpoints_ = [str(x) for x in ds["endpoint"].values]
    L.personas_ = [str(x) for x in ds["persona"].values]
    L.statuses_ = [int(x) for x in ds["status"].values]
    for i, store in enumerate(STORES):
        stats = Stats({name: np.array(ds[name].values[i], dtype=float) for name in STAT_DIMS})
        setattr(L, f"{store}_", stats)
    gates = ds["gate"].values.astype(bool)
    L.gate_ = {k: gates[i] for i, k in enumerate(KINDS) if k != "transitions"}
    L.gate_["transitions"] = ds["gate_transitions"].values.astype(bool)
    L.gate_ = {k: L.gate_[k] for k in KINDS}
    ids = [str(x) for x in ds["open_session_id"].values]
    L.sessions = OpenSessions.from_open([
        OpenSession(sid, int(e), int(p), float(t)) for sid, e, p, t in zip(
            ids, ds["open_endpoint"].values, ds["open_persona"].values, ds["open_ts"].values)])
    if "body_text" in ds:  # states saved before recorded bodies existed have none
        L.bodies_ = {
            (str(e), int(s)): (str(ct), str(text))
            for e, s, ct, text in zip(ds["body_endpoint"].values, ds["body_status"].values,
                                      ds["body_content_type"].values, ds["body_text"].values)
        }
    w = int(ds.attrs["window"])
    L.window_ = None if w < 0 else w
    if config is not None and w >= 0 and float(ds.attrs["window_seconds"]) != float(cfg.update_interval):
        # windows are numbered in units of update_interval; rescale the clock
        L.window_ = int(np.floor(w * float(ds.attrs["window_seconds"]) / float(cfg.update_interval)))
    L.n_windows_ = int(ds.attrs["n_windows"])
    L.n_events_ = int(ds.attrs["n_events"])
    L.n_late_ = int(ds.attrs["n_late"])
    L.t_first_ = float(ds.attrs["t_first"])
    L.t_last_ = float(ds.attrs["t_last"])
    return L


def save_state(learner: DriftLearner, path: str | os.PathLike) -> Path:
    """Write the state to NetCDF atomically (temp file in the same folder, then rename).

    Holds the state's writer lock (:func:`driftbayes.statefile.state_lock`, re-entrant: a
    caller may already hold it for a read–learn–save cycle) and first deletes ``.tmp`` files
    an interrupted save left behind.
    """
    from driftbayes.statefile import DEFAULT_WAIT_S, remove_orphans, state_lock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = to_dataset(learner)
    with state_lock(path, DEFAULT_WAIT_S):
        remove_orphans(path)
        _write_atomic(ds, path)
    return path


def _write_atomic(ds: xr.Dataset, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a state file is an ordinary file
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_state(path: str | os.PathLike, config: Config | None = None) -> DriftLearner:
    """Load a state saved by :func:`save_state`, with a clear error for anything else."""
    path = Path(path)
    if not path.exists():
        raise StateError(f"{path}: no such state file (run `driftbayes learn` first)")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
        if ds.attrs.get("schema") != SCHEMA:  # an InferenceData export holds it as a group
            ds = _state_group(path) or ds
    except Exception as exc:  # noqa: BLE001 - any decoding failure means "not a state"
        raise StateError(f"{path}: not a driftbayes state (cannot read as NetCDF: {exc})") from exc
    _check_schema(ds, str(path))
    _check_finite(ds, str(path))
    try:
        return from_dataset(ds, config)
    except StateError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        detail = str(exc.args[0] if exc.args else exc).split(". ")[0]
        raise StateError(f"{path}: damaged driftbayes state ({detail}); re-create it with "
                         "`driftbayes learn`") from exc


def _state_group(path: Path) -> xr.Dataset | None:
    """The ``driftbayes_state`` group of an ``driftbayes export --to netcdf`` file, if any."""
    import h5py

    with h5py.File(path, "r") as f:
        if "driftbayes_state" not in f:
            return None
    with xr.open_dataset(path, group="driftbayes_state", engine="h5netcdf") as ds:
        return ds.load()


def _stored_config(text: str) -> Config:
    doc = yaml.safe_load(text) or {}
    block = doc.get("drift_learning", doc) if isinstance(doc, dict) else {}
    return Config.from_dict(block, source="<state config>", warn=False)


def _check_schema(ds: xr.Dataset, where: str) -> None:
    if ds.attrs.get("schema") != SCHEMA:
        raise StateError(f"{where}: not a driftbayes state (no '{SCHEMA}' schema attribute)")
    raw = ds.attrs.get("schema_version", -1)
    try:
        version = int(np.asarray(raw).item())
    except (TypeError, ValueError):
        version = None
    if version is None or version != np.asarray(raw).item():
        raise StateError(f"{where}: schema_version attribute {np.asarray(raw).item()!r} is not "
                         "an integer "
                         f"(driftbayes reads version {SCHEMA_VERSION}); re-create the state "
                         "with `driftbayes learn`")
    if version != SCHEMA_VERSION:
        raise StateError(
            f"{where}: driftbayes state schema version {version} is not supported by driftbayes "
            f"{__version__} (reads version {SCHEMA_VERSION})"
        )


def _check_finite(ds: xr.Dataset, where: str) -> None:
    """Reject a state whose statistics or clocks are not finite numbers (a damaged file)."""
    for name, var in ds.data_vars.items():
        if var.dtype.kind in "fc" and not np.isfinite(var.values).all():
            raise StateError(f"{where}: field {name!r} holds non-finite values (NaN/inf); the "
                             "state is damaged — re-create it with `driftbayes learn`")
    for key in ("window", "window_seconds", "n_windows", "n_events", "n_late", "t_first",
                "t_last"):
        try:
            value = float(np.asarray(ds.attrs[key]).item())
        except (KeyError, TypeError, ValueError):
            raise StateError(f"{where}: attribute {key!r} is missing or not a number; the state "
                             "is damaged — re-create it with `driftbayes learn`") from None
        if np.isinf(value) or (np.isnan(value) and key not in ("t_first", "t_last")):
            raise StateError(f"{where}: attribute {key!r} is {value}; the state is damaged — "
                             "re-create it with `driftbayes learn`")
