#!/usr/bin/env bash
# Create .venv and install imagebatch with its worker and test extras; a no-op when nothing changed.
# Needs no stdin. PYTHON=/path/to/python3.11 overrides the interpreter used to create the venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STAMP="$VENV/.imagebatch-pyproject.sha256"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "setup: no Python 3.11+ found; install python3.11 (with venv) or set PYTHON=" >&2
  exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
  python=$(pick_python)
  echo "setup: creating $VENV with $python"
  "$python" -m venv "$VENV"
else
  echo "setup: using existing $VENV ($("$VENV/bin/python" --version))"
fi

# The stamp holds the hash of pyproject.toml at the last successful install.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c 'import imagebatch.core' 2>/dev/null; then
  echo "setup: dependencies match pyproject.toml; nothing to install (remove $STAMP to force)"
  exit 0
fi

# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml, so pip never picks another torch.
echo "setup: pip install -e \".[worker,test]\" into $VENV (the first run installs torch, ~5.5 GB)"
"$VENV/bin/python" -m pip install --quiet -e ".[worker,test]"
echo "$want" >"$STAMP"
echo "setup: done; the command line is $VENV/bin/imagebatch"
