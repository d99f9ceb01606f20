"""``python -m driftbayes``: the command line."""

from driftbayes.cli import app

app(prog_name="driftbayes")
