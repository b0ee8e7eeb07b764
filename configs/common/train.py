# Training options shared by every config (detectron2's common/train.py names where they
# exist). Override any of them on the command line: train.max_iter=100 train.precision=bf16
train = dict(
    output_dir="./output/run",
    init_checkpoint="",  # pretrained Swin (Microsoft / mmcv / detectron2 / timm) or a model
    max_iter=90000,
    log_period=20,
    eval_period=5000,  # 0 = evaluate only at the end
    checkpointer=dict(period=5000, max_to_keep=3),
    seed=0,  # < 0: random
    device="cuda",
    strategy="ddp",  # ddp (fsdp, deepspeed: planned)
    ddp=dict(find_unused_parameters=False),
    precision="fp32",  # fp32 | bf16 | fp16
    activation_checkpointing=False,  # per Swin block, non-reentrant
    grad_accum=1,  # micro-batches per optimizer step
    clip_grad=0.0,  # max global grad norm, 0 = off
    # wandb: mode auto = online with WANDB_API_KEY, else offline (files in output_dir/wandb)
    wandb=dict(enabled=True, project="mona_scale", name="", mode="auto"),
)
