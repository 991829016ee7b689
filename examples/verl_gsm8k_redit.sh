#!/usr/bin/env bash
# GRPO + ReDit on GSM8K with verl >= 0.9 (GPU machine; see docs/verl.md for every option).
# Model, learning rate, clipping, group size, length, temperature, KL (k3, 0.04), LoRA, steps and the noise follow
# the paper's GSM8K setting (src/redit/configs/paper-gsm8k.yaml); batch and parallel sizes are choices for 8 GPUs.
# Data: verl's examples/data_preprocess/gsm8k.py writes $DATA/train.parquet and $DATA/test.parquet, whose rows
# verl scores with its built-in GSM8K rule (1 for a correct final answer, else 0), so R_max = 1.
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-7B-Instruct}
DATA=${DATA:-$HOME/data/gsm8k}
GPUS=${GPUS:-8}
PLUGIN=redit.integrations.verl

# This process imports the plug-in when it imports verl, so a bad algorithm.redit_* fails before Ray starts;
# the runtime_env line below loads it in the Ray actors, where verl computes advantages.
export VERL_USE_EXTERNAL_MODULES=$PLUGIN

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo_redit \
    +algorithm.redit_distribution=uniform \
    +algorithm.redit_ratio=0.02 \
    +algorithm.redit_reward_max=1.0 \
    +algorithm.redit_seed=42 \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=$PLUGIN \
    algorithm.use_kl_in_reward=False \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.train_batch_size=64 \
    data.max_prompt_length=512 \
    data.max_response_length=512 \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.model.lora_rank=8 \
    actor_rollout_ref.model.lora_alpha=64 \
    actor_rollout_ref.model.target_modules=all-linear \
    actor_rollout_ref.actor.optim.lr=5e-6 \
    actor_rollout_ref.actor.grad_clip=0.1 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.04 \
    actor_rollout_ref.actor.kl_loss_type=low_var_kl \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.temperature=0.9 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16 \
    trainer.logger='["console","tensorboard"]' \
    trainer.project_name=redit \
    trainer.experiment_name=gsm8k-grpo-redit-uniform-m0.02 \
    trainer.n_gpus_per_node="$GPUS" \
    trainer.nnodes=1 \
    trainer.test_freq=10 \
    trainer.save_freq=100 \
    trainer.total_training_steps=1000 \
    "$@"
