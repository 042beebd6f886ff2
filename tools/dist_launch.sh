# Shared by tools/dist_train.sh and tools/dist_test.sh (sourced, not run on its own).
# dist_launch GPUS SCRIPT [ARGS...]: runs SCRIPT ARGS in GPUS processes with
# torch.distributed.run, mmdet's interface: GPUs with CUDA (NCCL), CPU processes without it
# (gloo). Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500).
dist_launch() {
  local gpus=$1 script=$2
  shift 2
  case "$gpus" in
    ''|*[!0-9]*|0) echo "$(basename "$0"): error: GPUS must be a positive number of processes, got \"$gpus\"" >&2; exit 2 ;;
  esac
  # Keep CPU processes from oversubscribing the cores (torchrun would set 1 thread each).
  if [ -z "$OMP_NUM_THREADS" ]; then
    export OMP_NUM_THREADS=$(( $(nproc) / gpus > 0 ? $(nproc) / gpus : 1 ))
  fi
  PYTHONPATH="$(dirname "$script")/..${PYTHONPATH:+:$PYTHONPATH}" \
  python -m torch.distributed.run \
      --nnodes="${NNODES:-1}" \
      --node_rank="${NODE_RANK:-0}" \
      --master_addr="${MASTER_ADDR:-127.0.0.1}" \
      --nproc_per_node="$gpus" \
      --master_port="${PORT:-29500}" \
      "$script" "$@"
}
