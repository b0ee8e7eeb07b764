#!/bin/bash
# Pascal VOC 07+12 detection: RetinaNet on Swin-L + Mona, 1x.
#   sbatch [sbatch options] slurm/voc.sh [--config-file X] [key=value ...]
# from the repository root; see slurm/common.sh for the environment knobs.
#SBATCH --job-name=mona-voc
# The paper's total batch is 2 (one image per GPU on 2 GPUs): one node, 2 tasks. For more
# GPUs raise the batch with them, e.g. sbatch --nodes=2 --ntasks-per-node=8
# --gpus-per-node=8 slurm/voc.sh dataloader.train.total_batch_size=16 optimizer.lr=8e-4
#SBATCH --nodes=1 --ntasks-per-node=2 --gpus-per-node=2 --cpus-per-task=8
#SBATCH --time=24:00:00 --signal=USR1@120 --requeue
#SBATCH --output=%x-%j.out --open-mode=append
CONFIG=configs/voc/retinanet_swin_l_mona_1x.py
source "${MONA_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"
