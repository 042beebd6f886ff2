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
HERE=$(dirname "$0")
source "$HERE/dist_launch.sh"
dist_launch "$GPUS" "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
