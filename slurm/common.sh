# Shared by the sbatch scripts in this folder (sourced, not run): resolves the config and
# the output directory, sets the environment, and runs one training process per task with
# srun (or, with LAUNCHER=torchrun as torchrun.sh sets, one torchrun per node starting
# NPROC_PER_NODE ranks, default: the node's GPUs). The task script sets CONFIG (its default
# config) and sources this file with its own arguments: [--config-file X] [key=value ...].
#
# Environment knobs (set them before sbatch; sbatch exports your environment):
#   MONA_ROOT         the repository (default: the directory sbatch was run from)
#   MONA_PYTHON       the python to run (default: $MONA_ROOT/.venv/bin/python, else python)
#   MONA_OUTPUT_ROOT  where run directories go (default: output/slurm); each job writes to
#                     <root>/<job name>-<job id>, which a requeued job (same id) resumes from.
#                     Pass train.output_dir=... to choose the directory yourself.
#   DETECTRON2_DATASETS  real datasets (default: ./datasets); MONA_DATASETS: synthetic ones
#   OMP_NUM_THREADS   CPU threads per process (default: 1)
#   WANDB_API_KEY / WANDB_MODE  wandb logs online with a key, offline otherwise
#                     (train.wandb.enabled=False turns it off)
# Network knobs are the site's business; typical ones, left for you to set:
#   NCCL_SOCKET_IFNAME=ib0   interface for NCCL's bootstrap and socket transport
#   NCCL_IB_DISABLE=1        no InfiniBand (Ethernet-only clusters)
#   NCCL_IB_HCA=mlx5         which InfiniBand adapters to use
#   NCCL_DEBUG=INFO          NCCL's own log, for hangs at start-up
#   GLOO_SOCKET_IFNAME=eth0  the same for gloo (CPU-only runs)
#   MASTER_PORT=29500        rendezvous port (default: 10000 + job id % 20000)

MONA_ROOT=${MONA_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
if [ ! -f "$MONA_ROOT/projects/train_net.py" ]; then
    echo "error: $MONA_ROOT is not the mona_scale repository: run sbatch from its root" \
         "or set MONA_ROOT" >&2
    exit 2
fi
if [ -z "${MONA_PYTHON:-}" ]; then
    MONA_PYTHON=python
    if [ -x "$MONA_ROOT/.venv/bin/python" ]; then MONA_PYTHON=$MONA_ROOT/.venv/bin/python; fi
fi

# --config-file X anywhere on the command line replaces the script's default CONFIG;
# everything else is passed on to train_net.py: flags (and their values) first, then the
# key=value overrides, in the order given (train_net.py wants flags before overrides).
FLAGS=()
OVERRIDES=()
OUTPUT_DIR=
while [ $# -gt 0 ]; do
    case $1 in
        --config-file) CONFIG=${2:?--config-file needs a path}; shift 2 ;;
        --config-file=*) CONFIG=${1#--config-file=}; shift ;;
        train.output_dir=*) OUTPUT_DIR=${1#train.output_dir=}; shift ;;
        *)
            if [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_.]*= ]]; then OVERRIDES+=("$1")
            else FLAGS+=("$1"); fi
            shift ;;
    esac
done
if [ ! -f "$CONFIG" ] && [ -f "$MONA_ROOT/$CONFIG" ]; then CONFIG=$MONA_ROOT/$CONFIG; fi

# The same job id after a requeue, hence the same directory: the job resumes from it.
if [ -z "$OUTPUT_DIR" ]; then
    OUTPUT_DIR=${MONA_OUTPUT_ROOT:-output/slurm}/${SLURM_JOB_NAME:-mona}-${SLURM_JOB_ID:-local}
fi
case $OUTPUT_DIR in /*) ;; *) OUTPUT_DIR=$PWD/$OUTPUT_DIR ;; esac

export PYTHONPATH=$MONA_ROOT${PYTHONPATH:+:$PYTHONPATH}
export DETECTRON2_DATASETS=${DETECTRON2_DATASETS:-datasets}
export MONA_DATASETS=${MONA_DATASETS:-$DETECTRON2_DATASETS/synthetic}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONUNBUFFERED=1
echo "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST:" \
     "$SLURM_NTASKS tasks, config $CONFIG, output $OUTPUT_DIR"

# --resume: start fresh when the directory has no checkpoint, else continue from it.
TRAIN=("$MONA_ROOT/projects/train_net.py" --config-file "$CONFIG" --resume "${FLAGS[@]}"
       "train.output_dir=$OUTPUT_DIR" "${OVERRIDES[@]}")
if [ "${LAUNCHER:-srun}" = torchrun ]; then
    # The rendezvous on the first node's address (node names need not resolve) and a port
    # derived from the job id, as mona_scale.launch does for srun tasks.
    FIRST_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    MASTER_ADDR=${MASTER_ADDR:-$(scontrol show node "$FIRST_NODE" \
        | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)}
    MASTER_PORT=${MASTER_PORT:-$((10000 + SLURM_JOB_ID % 20000))}
    NPROC_PER_NODE=${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-0}}
    if [ "$NPROC_PER_NODE" -lt 1 ]; then NPROC_PER_NODE=1; fi  # no GPUs: one CPU rank
    # torchrun ignores SIGUSR1 (by default it would die and orphan its ranks); the ranks
    # install their own handler, checkpoint and requeue the job.
    srun --kill-on-bad-exit=1 --ntasks="$SLURM_NNODES" --ntasks-per-node=1 \
        bash -c 'trap "" USR1; exec "$@"' torchrun \
        "$MONA_PYTHON" -m torch.distributed.run --nnodes "$SLURM_NNODES" \
        --nproc-per-node "$NPROC_PER_NODE" --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d \
        --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" "${TRAIN[@]}"
else
    srun --kill-on-bad-exit=1 "$MONA_PYTHON" "${TRAIN[@]}"
fi
exit $?
