# Training options shared by every config (detectron2's common/train.py names where they
# exist). Override any of them on the command line: train.max_iter=100 train.precision=bf16
train = dict(
    output_dir="./output/run",
    overwrite=False,  # True: start over in an output_dir that holds an earlier run (else refused)
    init_checkpoint="",  # pretrained Swin (Microsoft / mmcv / detectron2 / timm) or a model
    max_iter=90000,
    log_period=20,
    eval_period=5000,  # 0 = evaluate only at the end
    checkpointer=dict(period=5000, max_to_keep=3),
    seed=0,  # < 0: random
    device="cuda",  # cuda: each process's own GPU (its local rank); cpu
    tf32=True,  # CUDA: float32 matmuls / convolutions on TF32 tensor cores (Ampere and newer)
    # how long a rank may wait in a collective (rank 0's COCO evaluation holds the others)
    dist_timeout_minutes=30,
    strategy="ddp",  # ddp | fsdp | deepspeed: same losses, different memory per rank
    ddp=dict(find_unused_parameters=False),
    # FSDP2: backbone blocks, then heads, merged into units of unit_mb MiB of sharded
    # parameters (per_block=None); per_block=True: one unit per block and head; False: one
    # unit for the whole model; frozen weights replicated unless shard_frozen=True;
    # param_dtype / reduce_dtype: "" (parameter dtype) | fp32 | bf16 | fp16
    fsdp=dict(reshard_after_forward=True, shard_frozen=False, per_block=None, unit_mb=25.0,
              param_dtype="", reduce_dtype=""),
    # ZeRO stage 1 / 2 / 3 (3 also shards the frozen backbone); optimizer state offload
    deepspeed=dict(stage=2, offload_optimizer=False),
    precision="fp32",  # fp32 | bf16 | fp16
    activation_checkpointing=False,  # per Swin block, non-reentrant
    compile="",  # torch.compile: "" (eager) | adapters | backbone (see docs/configuration.md)
    grad_accum=1,  # micro-batches per optimizer step
    clip_grad=0.0,  # max global grad norm, 0 = off
    stop_at_iter=0,  # checkpoint and exit after this iteration, as if preempted; 0 = off
    # SIGUSR1 / SIGTERM: checkpoint after the current step and stop; under SLURM then
    # `scontrol requeue` the job, which resumes (sbatch --signal=USR1@120 --requeue)
    requeue=True,
    # wandb: mode auto = online with WANDB_API_KEY, else offline (files in output_dir/wandb)
    wandb=dict(enabled=True, project="mona_scale", name="", mode="auto"),
)
