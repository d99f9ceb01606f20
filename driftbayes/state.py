"""A learner's state as an ``xarray.Dataset`` of sufficient statistics, saved as NetCDF.

Layout (schema ``driftbayes-state`` version 4), each part written by its own module: one
variable per sufficient statistic with a leading ``store`` dim (``evidence``, ``applied``,
``pending``; :mod:`driftbayes.stats`) and named dims ``endpoint``, ``persona``, ``status``,
``lat_bin``, ``think_bin``, ``hour``; the transition counts are sparse, on a ``pair`` dim
(``trans_count_src`` / ``trans_count_dst`` hold each pair's codes in the ``src`` / ``dst``
coords: endpoints plus START/END); one ``gate_<kind>`` per kind
(:mod:`driftbayes.gating`); the open-session table on an ``open_session`` dim
(:mod:`driftbayes.open_sessions`); recorded response bodies (redacted, one per endpoint
× status) on a ``body`` dim (:mod:`driftbayes.bodies`); the run-length posteriors and recent
window sums of online changepoint detection (``run_<kind>``, ``ring_<statistic>``;
:mod:`driftbayes.changepoint`, absent from older files: cells start afresh); fitted
hierarchical priors, when the state has them, as ``hprior_*`` variables on ``prior_group`` /
``prior_endpoint`` dims (:mod:`driftbayes.priors.stored`; optional, older readers ignore them);
knobs and clocks in the attributes. Version-1 to version-3 files load through :func:`migrate`.
Saving is atomic: a temporary file in the same folder is written, flushed and renamed over the
target, so a crash mid-save never leaves a broken state.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from driftbayes import __version__, yamlio
from driftbayes.bodies import recorded_bodies_from_dataset, recorded_bodies_to_dataset
from driftbayes.changepoint import RunLengths, online_kinds
from driftbayes.config import Config
from driftbayes.conjugate import lognormal_bin_probs
from driftbayes.gating import gates_from_dataset, gates_to_dataset
from driftbayes.kinds.histogram import LATENCY, THINK
from driftbayes.learner import END, START, DriftLearner
from driftbayes.open_sessions import OpenSessions
from driftbayes.priors.stored import GroupPriors
from driftbayes.stats import KINDS, N_HOURS, stores_from_dataset, stores_to_dataset

SCHEMA = "driftbayes-state"
SCHEMA_VERSION = 4
#: Versions :func:`migrate` converts from.
READABLE_VERSIONS = (1, 2, 3, 4)
STORES = ("evidence", "applied", "pending")


class StateError(ValueError):
    """A file that is not a readable driftbayes state."""


def to_dataset(learner: DriftLearner) -> xr.Dataset:
    """The learner's full state as a Dataset with named dims (no information lost), merged
    from its parts' own datasets: statistics per store, gates per kind, open sessions,
    recorded bodies; vocabularies as coords; knobs and clocks as attributes."""
    L = learner
    coords = {
        "endpoint": np.array(L.endpoints_, dtype=object),
        "persona": np.array(L.personas_, dtype=object),
        "status": np.array(L.statuses_, dtype=np.int64),
        "lat_bin": np.arange(LATENCY.n_bins), **LATENCY.coords("lat_bin", "lat"),
        "think_bin": np.arange(THINK.n_bins), **THINK.coords("think_bin", "think"),
        "hour": np.arange(N_HOURS),
        "src": np.array(L.endpoints_ + [START], dtype=object),
        "dst": np.array(L.endpoints_ + [END], dtype=object),
    }
    parts = [
        stores_to_dataset({s: getattr(L, f"{s}_") for s in STORES}),
        gates_to_dataset(L.gate_),
        L.sessions.to_dataset(),
        recorded_bodies_to_dataset(L.bodies_),
        L.runs.to_dataset(),
    ]
    if L.group_priors_ is not None:
        parts.append(L.group_priors_.to_dataset())
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
    return xr.merge(parts, combine_attrs="drop").assign_coords(coords).assign_attrs(attrs)


def from_dataset(ds: xr.Dataset, config: Config | None = None) -> DriftLearner:
    """Rebuild a learner from :func:`to_dataset` output (``config`` overrides the stored one);
    a version-1 dataset is migrated first."""
    _check_schema(ds, "<dataset>")
    ds = migrate(ds)
    cfg = config if config is not None else _stored_config(ds.attrs["config_yaml"])
    L = DriftLearner(cfg)
    L.endpoints_ = [str(x) for x in ds["endpoint"].values]
    L.personas_ = [str(x) for x in ds["persona"].values]
    L.statuses_ = [int(x) for x in ds["status"].values]
    for store, stats in stores_from_dataset(ds, L.sizes).items():
        setattr(L, f"{store}_", stats)
    L.gate_ = gates_from_dataset(ds, L.sizes)
    L.sessions = OpenSessions.from_dataset(ds)
    L.runs = RunLengths.from_dataset(ds, online_kinds(float(cfg.changepoint_hazard)), L.sizes)
    L.bodies_ = recorded_bodies_from_dataset(ds)
    L.set_group_priors(GroupPriors.from_dataset(ds))
    w = int(ds.attrs["window"])
    L.window_ = None if w < 0 else w
    stored_s = float(ds.attrs["window_seconds"])
    if config is not None and w >= 0 and stored_s != float(cfg.update_interval):
        # windows are numbered in units of update_interval; rescale the clock
        L.window_ = int(np.floor(w * stored_s / float(cfg.update_interval)))
    L.n_windows_ = int(ds.attrs["n_windows"])
    L.n_events_ = int(ds.attrs["n_events"])
    L.n_late_ = int(ds.attrs["n_late"])
    L.t_first_ = float(ds.attrs["t_first"])
    L.t_last_ = float(ds.attrs["t_last"])
    return L


def migrate(ds: xr.Dataset) -> xr.Dataset:
    """A state dataset in the current schema version (older versions are converted).

    Version 1 kept the gates of every kind but transitions on one ``kind`` dim (``gate``, with
    an all-zero transitions slot) and the transitions gate apart; version 2 has one
    ``gate_<kind>`` per kind with its own dims. Version 2 kept the transition counts dense
    ``(store, persona, src, dst)``; version 3 keeps the observed pairs only. Version 3 kept
    think times as a log-normal summary only (``think_n``, ``_sx``, ``_sxx``); version 4 adds
    their histogram ``think_hist``, which a migrated file gets from that summary: each cell's
    count spread over the bins as the log-normal of its mean and spread (the shape its data
    had is not in the file).
    """
    version = int(np.asarray(ds.attrs.get("schema_version", SCHEMA_VERSION)).item())
    if version == 1:
        kinds = [str(k) for k in ds["kind"].values]
        gates = {k: ds["gate"].values[i] for i, k in enumerate(kinds) if k != "transitions"}
        gates["transitions"] = ds["gate_transitions"].values
        ds = (ds.drop_vars(["gate", "gate_transitions", "kind"])
              .merge(gates_to_dataset({k: gates[k] for k in KINDS}))
              .assign_attrs(schema_version=2))
        version = 2
    if version == 2:
        dense = ds["trans_count"].values  # (store, persona, src, dst)
        src, dst = np.nonzero(dense.any(axis=(0, 1)))
        ds = ds.drop_vars("trans_count").assign(
            trans_count=(("store", "pair", "persona"), dense[:, :, src, dst].transpose(0, 2, 1)),
            trans_count_src=("pair", src.astype(np.int64)),
            trans_count_dst=("pair", dst.astype(np.int64)),
        ).assign_attrs(schema_version=3)
        version = 3
    if version == 3:
        if "think_hist" not in ds:
            ds = ds.assign(think_hist=(("store", "endpoint", "persona", "think_bin"),
                                       _think_hist_from_summary(ds, "think")))
        if "ring_think_n" in ds and "ring_think_hist" not in ds:
            ds = ds.assign(ring_think_hist=(("ring_cell", "persona", "think_bin"),
                                            _think_hist_from_summary(ds, "ring_think")))
        ds = ds.assign_attrs(schema_version=4)
    return ds


def _think_hist_from_summary(ds: xr.Dataset, prefix: str) -> np.ndarray:
    """Think-time bin counts ``n`` · P(bin) under the log-normal of each cell's mean and
    spread of log values (statistics ``<prefix>_n``, ``_sx``, ``_sxx``)."""
    n, sx, sxx = (np.asarray(ds[f"{prefix}_{k}"].values, dtype=float) for k in ("n", "sx", "sxx"))
    has = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(has, sx / n, 0.0)
        sd = np.sqrt(np.maximum(np.where(has, sxx / n, 0.0) - mean**2, 1e-6))
    probs = lognormal_bin_probs(median_ms=np.exp(mean), sigma=sd, log_edges=THINK.log_edges)
    return np.where(has, n, 0.0)[..., None] * probs


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
    doc = yamlio.load(text) or {}
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
    if version not in READABLE_VERSIONS:
        raise StateError(
            f"{where}: driftbayes state schema version {version} is not supported by driftbayes "
            f"{__version__} (reads versions {', '.join(map(str, READABLE_VERSIONS))})"
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
