#!/usr/bin/env bash
# Distributed training, mmdet's interface: bash tools/dist_train.sh CONFIG GPUS [train.py args]
# GPUS is the number of processes: GPUs with CUDA (NCCL), CPU processes without it (gloo).
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500).
set -e
CONFIG=$1
GPUS=$2
if [ -z "$CONFIG" ] || [ -z "$GPUS" ]; then
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py options]" >&2
  exit 2
fi
case "$GPUS" in
  ''|*[!0-9]*|0) echo "$(basename "$0"): error: GPUS must be a positive number of processes, got \"$GPUS\"" >&2; exit 2 ;;
esac
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
HERE=$(dirname "$0")
# Keep CPU processes from oversubscribing the cores (torchrun would set 1 thread each).
if [ -z "$OMP_NUM_THREADS" ]; then
  export OMP_NUM_THREADS=$(( $(nproc) / GPUS > 0 ? $(nproc) / GPUS : 1 ))
fi
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$HERE/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
