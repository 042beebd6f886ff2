#!/usr/bin/env bash
# One-command install of mmdet_ksdetr and its pinned OpenMMLab stack into the current Python
# environment (a venv or conda env is recommended). Safe to run twice.
#
#   bash tools/install.sh            # runtime + test requirements
#
# Environment:
#   PYTHON            interpreter to install into (default: python)
#   TORCH_SPEC        torch requirement used only when torch is missing (default: torch==2.13.0)
#   PIP_FIND_LINKS    folders with prebuilt wheels (e.g. a cached mmcv 2.1.0 wheel). Without a
#                     matching wheel, mmcv 2.1.0 is compiled from source with its ops: this
#                     takes 12-25 minutes on 2 cores.
set -euo pipefail
PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pip_install() { "$PY" -m pip install --progress-bar off "$@"; }

echo "[install] python: $("$PY" --version 2>&1)"
# 1. torch: keep the one the user has (CPU or CUDA build), install the pinned one otherwise.
if "$PY" -c "import torch" 2>/dev/null; then
  echo "[install] keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  pip_install "${TORCH_SPEC:-torch==2.13.0}"
fi
# 2. build requirements (setuptools<82 is also a runtime pin, see requirements/build.txt).
pip_install -r "$ROOT/requirements/build.txt"
# 3. mmcv 2.1.0 with compiled ops: a wheel from PIP_FIND_LINKS when one fits, else a source build.
if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  echo "[install] keeping mmcv 2.1.0 (ops present)"
else
  echo "[install] installing mmcv 2.1.0; with no prebuilt wheel this compiles for 12-25 minutes"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    pip_install --no-build-isolation "mmcv==2.1.0"
fi
# 4. the rest of the stack, the test requirements and this package (editable).
pip_install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
# openmim without its dataset-download dependency (see requirements/mim.txt)
pip_install -r "$ROOT/requirements/mim.txt"
pip_install --no-deps "openmim==0.3.9"
pip_install --no-build-isolation --no-deps -e "$ROOT"
"$PY" -c "import mmdet_ksdetr, mmcv.ops, mmdet, mmrazor.models; print('[install] ok: mmdet_ksdetr', mmdet_ksdetr.__version__, '| mmcv', __import__('mmcv').__version__, '| mmdet', mmdet.__version__)"
