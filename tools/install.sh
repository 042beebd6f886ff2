#!/usr/bin/env bash
# One-command install of mmdet_ksdetr and its pinned OpenMMLab stack into the current Python
# environment (a venv or conda env is recommended). Safe to run twice.
#
#   bash tools/install.sh             # torch build chosen automatically (see below)
#   bash tools/install.sh --cpu       # CPU torch (no CUDA packages), mmcv with CPU ops
#   bash tools/install.sh --cuda      # CUDA torch from PyPI, mmcv with CPU + CUDA ops
#   bash tools/install.sh --dry-run   # print the computed settings (KEY=VALUE), install nothing
#
# torch: a torch that is already installed (CPU or CUDA build) is always kept. When torch is
# missing, --auto (the default) installs torch==2.13.0 for CUDA from PyPI if `nvidia-smi` sees a
# GPU, and torch==2.13.0+cpu otherwise: a machine without a GPU cannot use the CUDA build, and the
# CPU build saves about 4.6 GB of CUDA packages. torch+cpu is looked for first where pip looks
# anyway (PIP_FIND_LINKS, pip.conf's find-links and indexes), then on the PyTorch CPU index.
#
# mmcv 2.1.0 with compiled ops (a wheel from PIP_FIND_LINKS when one fits, else a source build):
#   CPU torch  -> CPU ops.
#   CUDA torch -> CPU + CUDA ops, no system CUDA toolkit required: nvcc must have the major
#                 version of torch.version.cuda. A system toolkit ($CUDA_HOME, $CUDA_PATH or
#                 nvcc on PATH) is used when it matches; otherwise NVIDIA's pip toolkit
#                 `cuda-toolkit[nvcc,cccl]==<major>.<minor>.*` is installed into this
#                 environment. Target GPUs: TORCH_CUDA_ARCH_LIST if set, else the visible GPUs,
#                 else 7.5;8.0;8.6;8.9;9.0+PTX (Turing to Hopper; nvcc 13 has nothing below 7.5).
# All of this is computed in one place, tools/misc/mmcv_build_env.py (what --dry-run prints).
#
# Environment:
#   PYTHON                interpreter to install into (default: python)
#   TORCH_BUILD           auto | cpu | cuda, as the flags (a flag wins)
#   PIP_FIND_LINKS        folders with prebuilt wheels (e.g. a cached mmcv 2.1.0 wheel)
#   TORCH_CUDA_ARCH_LIST  GPU architectures to compile for, e.g. "8.0;9.0"
#   MAX_JOBS              parallel compile jobs (default: number of CPUs)
set -euo pipefail
PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TORCH_BUILD:-auto}
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --cpu|--cuda|--auto) BUILD=${arg#--} ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: error: unknown argument '$arg' (use --cpu, --cuda, --auto, --dry-run)" >&2
       exit 2 ;;
  esac
done
case "$BUILD" in auto|cpu|cuda) ;; *)
  echo "install.sh: error: TORCH_BUILD=$BUILD: use auto, cpu or cuda" >&2; exit 2 ;; esac
pip_install() { "$PY" -m pip install --progress-bar off "$@"; }
# load_env: the settings of mmcv_build_env.py into E_<KEY> shell variables (never eval'd).
load_env() {
  local out line
  out=$("$PY" "$ROOT/tools/misc/mmcv_build_env.py" --torch "$BUILD") || exit 1
  [ "$DRY_RUN" = 1 ] && echo "$out"
  while IFS= read -r line; do printf -v "E_${line%%=*}" '%s' "${line#*=}"; done <<< "$out"
}

echo "[install] python: $("$PY" --version 2>&1)" >&2
load_env
[ "$DRY_RUN" = 1 ] && exit 0
# 1. torch: keep the one the user has, install the chosen build otherwise.
if [ "$E_TORCH_ACTION" = keep ]; then
  echo "[install] keeping torch $E_TORCH_VERSION"
elif [ -n "$E_TORCH_INDEX_URL" ]; then
  # a local or configured torch+cpu wheel first: asking an unreachable index costs pip's
  # retries for every package; a spec that is nowhere fails in seconds
  pip_install "$E_TORCH_SPEC" || {
    echo "[install] $E_TORCH_SPEC is not in PIP_FIND_LINKS or pip's indexes:" \
         "trying $E_TORCH_INDEX_URL"
    pip_install "$E_TORCH_SPEC" --extra-index-url "$E_TORCH_INDEX_URL"
  }
else
  pip_install "$E_TORCH_SPEC"
fi
[ "$E_TORCH_ACTION" = keep ] || load_env  # settings of the torch now installed
# 2. build requirements (setuptools<82 is also a runtime pin, see requirements/build.txt).
pip_install -r "$ROOT/requirements/build.txt"
# 3. mmcv 2.1.0 with compiled ops (and CUDA ops for a CUDA torch).
mmcv_ok() {
  "$PY" - "$1" <<'EOF' 2>/dev/null
import sys
import mmcv, mmcv.ops
assert mmcv.__version__ == '2.1.0'
assert sys.argv[1] != 'cuda' or mmcv.ops.get_compiling_cuda_version() != 'not available'
EOF
}
has_wheel() {  # would pip install mmcv 2.1.0 from a wheel (PIP_FIND_LINKS / index)?
  local tmp; tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --only-binary=:all: "mmcv==2.1.0" -d "$tmp" \
    >/dev/null 2>&1 && rm -rf "$tmp" && return 0
  rm -rf "$tmp"; return 1
}
build_mmcv() {  # compile mmcv 2.1.0 in the build environment of mmcv_build_env.py
  [ "$E_MMCV_OPS" = cuda ] && echo "[install] CUDA ops: nvcc of the $E_CUDA_SOURCE toolkit" \
    "$E_CUDA_HOME, TORCH_CUDA_ARCH_LIST=$E_TORCH_CUDA_ARCH_LIST ($E_ARCH_SOURCE)"
  echo "[install] compiling mmcv 2.1.0 from source ($E_MMCV_OPS ops, MAX_JOBS=$E_MAX_JOBS):" \
       "the CPU ops take about 26 CPU-minutes; CUDA ops add about 1 CPU-minute per .cu file" \
       "(59) and architecture"
  # --no-cache-dir: pip's wheel cache does not tell a CPU-torch build from a CUDA-torch one
  "$PY" "$ROOT/tools/misc/mmcv_build_env.py" --torch "$BUILD" --run "$PY" -m pip install \
    --progress-bar off --no-build-isolation --no-cache-dir --no-binary mmcv --force-reinstall \
    --no-deps "mmcv==2.1.0"
}
if mmcv_ok "$E_MMCV_OPS"; then
  echo "[install] keeping mmcv 2.1.0 ($E_MMCV_OPS ops present)"
else
  if [ "$E_MMCV_OPS" = cuda ] && [ "$E_CUDA_SOURCE" = pip-install ]; then
    echo "[install] no nvcc ${E_TORCH_CUDA%%.*}.x found: installing NVIDIA's $E_CUDA_PIP_SPEC"
    pip_install "$E_CUDA_PIP_SPEC"
    load_env
    [ "$E_CUDA_SOURCE" != pip-install ] || { echo "install.sh: error: installed" \
      "$E_CUDA_PIP_SPEC but found no nvcc under this environment's site-packages/nvidia" >&2
      exit 1; }
  fi
  if has_wheel; then
    echo "[install] installing mmcv 2.1.0 from a prebuilt wheel"
    pip_install --no-build-isolation "mmcv==2.1.0"
  fi
  mmcv_ok "$E_MMCV_OPS" || build_mmcv
  mmcv_ok "$E_MMCV_OPS" || { echo "install.sh: error: mmcv 2.1.0 installed without" \
    "$E_MMCV_OPS ops; see the build log above" >&2; exit 1; }
fi
# 4. the rest of the stack, the test requirements and this package (editable).
pip_install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
# openmim without its dataset-download dependency (see requirements/mim.txt)
pip_install -r "$ROOT/requirements/mim.txt"
pip_install --no-deps "openmim==0.3.9"
pip_install --no-build-isolation --no-deps -e "$ROOT"
# mim finds a package at its install location: link site-packages/mmdet_ksdetr to the checkout
"$PY" "$ROOT/tools/misc/link_editable_install.py"
"$PY" - <<'EOF'
import mmdet_ksdetr, mmcv, mmcv.ops, mmdet, mmrazor.models  # mmdet_ksdetr first: torch 2.x shim
cuda = mmcv.ops.get_compiling_cuda_version()
print('[install] ok: mmdet_ksdetr', mmdet_ksdetr.__version__, '| mmcv', mmcv.__version__,
      f'(CUDA ops: {"none" if cuda == "not available" else cuda})', '| mmdet', mmdet.__version__)
EOF
