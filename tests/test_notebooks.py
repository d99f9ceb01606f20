"""Every notebook in notebooks/ runs top to bottom (executed with nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftbayes.io.recordings import RECORDINGS
from tests.helpers import missing_reason, real_path

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: The real recordings each notebook reads (the others need nothing beside the repository).
NEEDS = {"01-quickstart": ("trainticket",), "02-real-traffic": ("nasa", "trainticket")}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.manager import KernelManager  # nbclient's own dependency
    for name in NEEDS.get(path.stem, ()):
        rel = RECORDINGS[name].path
        if real_path(rel) is None:
            pytest.skip(missing_reason(name, rel))
    monkeypatch.setenv("DRIFTBAYES_NOTEBOOK_SMALL", "1")  # notebooks that sweep run a small grid
    nb = nbformat.read(path, as_version=4)
    # the kernel talks over Unix sockets in tmp_path, not TCP ports: two notebooks run at once
    # (pytest-xdist) and must not pick the same port
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    client = nbclient.NotebookClient(nb, km=km, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
