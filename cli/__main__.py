"""`python -m imagebatch.cli`: the same as the `imagebatch` console script."""

from imagebatch.cli import app

app()
