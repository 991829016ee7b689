"""The verl plug-in against the real verl: registry, `compute_advantage` on a `DataProto`, config checks.

Runs in `make test-verl` (its own venv: verl pins transformers < 5.11); skipped where verl is not installed.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("verl", reason="verl is not installed here; `make test-verl` runs these in .venv-verl")

from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.utils.skip.skip_manager import SkipManager

import redit.integrations.verl as plugin

VERL_CONFIG = Path(sys.modules["verl"].__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml"
RESPONSE_LENGTH = 5


@pytest.fixture(autouse=True)
def global_step():
    """verl's trainer publishes its global step through SkipManager; tests play the trainer at step 3."""
    previous = SkipManager.step
    SkipManager.set_step(3)
    yield
    SkipManager.set_step(previous)


def trainer_config(*overrides: str):
    """verl's own full PPO config with command-line style overrides (``+`` adds a key, as on verl's CLI)."""
    base = OmegaConf.load(VERL_CONFIG)
    dotlist = [
        "actor_rollout_ref.rollout.n=8",
        f"{plugin.RUNTIME_ENV_KEY}={plugin.__name__}",
        *(o.removeprefix("+") for o in overrides),
    ]
    return OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))


def make_batch(group_sizes: list[int], rewards: torch.Tensor | None = None, seed: int = 0) -> DataProto:
    """A verl batch: rows shuffled (``rewards`` are in group order), right-padded responses, and the outcome reward
    on each response's last token."""
    generator = torch.Generator().manual_seed(seed)
    uids = np.array([f"uid-{g}" for g, k in enumerate(group_sizes) for _ in range(k)], dtype=object)
    n = len(uids)
    order = torch.randperm(n, generator=generator)
    if rewards is None:
        rewards = torch.randint(0, 3, (n,), generator=generator).float() / 2
    rewards, uids = rewards[order], uids[order.numpy()]
    lengths = torch.randint(1, RESPONSE_LENGTH + 1, (n,), generator=generator)
    mask = (torch.arange(RESPONSE_LENGTH) < lengths[:, None]).float()
    token_level = torch.zeros(n, RESPONSE_LENGTH)
    token_level[torch.arange(n), lengths - 1] = rewards
    return DataProto.from_dict(
        tensors={"token_level_rewards": token_level, "response_mask": mask}, non_tensors={"uid": uids}
    )


def advantages(batch: DataProto, estimator: str, config, norm: bool = True) -> torch.Tensor:
    """verl's driver-side `compute_advantage` on a copy of the batch, as its trainer calls it."""
    out = compute_advantage(
        DataProto.from_dict(tensors=dict(batch.batch.items()), non_tensors=dict(batch.non_tensor_batch)),
        adv_estimator=estimator,
        norm_adv_by_std_in_grpo=norm,
        config=config,
    )
    return out.batch["advantages"]


def per_completion(batch: DataProto, token_advantages: torch.Tensor) -> torch.Tensor:
    mask = batch.batch["response_mask"]
    return (token_advantages * mask).sum(-1) / mask.sum(-1)


GROUP_SIZES = [8, 3, 1, 8, 5, 2, 8, 1, 4]  # any sizes, singletons included; rows are shuffled


@pytest.mark.parametrize(
    ("ours", "theirs", "norm"),
    [
        ("grpo_redit", "grpo", True),
        ("grpo_redit", "grpo", False),
        ("rloo_redit", "rloo", True),
        ("reinforce_plus_plus_baseline_redit", "reinforce_plus_plus_baseline", True),
    ],
)
def test_sigma_zero_equals_verl_estimator(ours, theirs, norm):
    batch = make_batch(GROUP_SIZES)
    config = trainer_config(
        f"algorithm.adv_estimator={ours}", f"algorithm.norm_adv_by_std_in_grpo={norm}", "+algorithm.redit_sigma=0.0"
    )
    plugin.check_config(config)
    expected = advantages(batch, theirs, config.algorithm, norm)
    torch.testing.assert_close(advantages(batch, ours, config.algorithm, norm), expected, atol=1e-6, rtol=0)


def test_dithered_grpo_is_group_centred_reproducible_and_keyed_by_seed_and_step():
    batch = make_batch(GROUP_SIZES)
    config = trainer_config(
        "algorithm.adv_estimator=grpo_redit", "+algorithm.redit_sigma=0.1", "+algorithm.redit_seed=42"
    ).algorithm
    noisy = advantages(batch, "grpo_redit", config)
    assert not torch.allclose(noisy, advantages(batch, "grpo", config), atol=1e-3)
    scalar, uids = per_completion(batch, noisy), batch.non_tensor_batch["uid"]
    for uid, size in zip(sorted(set(uids), key=lambda u: int(u.split("-")[1])), GROUP_SIZES):
        if size > 1:
            assert abs(scalar[uids == uid].sum().item()) < 1e-5, uid
    assert torch.equal(noisy, advantages(batch, "grpo_redit", config))
    SkipManager.set_step(4)
    assert not torch.allclose(noisy, advantages(batch, "grpo_redit", config))
    SkipManager.set_step(3)
    config.redit_seed = 43
    assert not torch.allclose(noisy, advantages(batch, "grpo_redit", config))


@pytest.mark.parametrize(
    ("settings", "sigma"),
    [
        (["+algorithm.redit_sigma=0.2"], 0.2),
        (["+algorithm.redit_sigma=0.2", "+algorithm.redit_distribution=uniform"], 0.2),
        (
            ["+algorithm.redit_ratio=0.1", "+algorithm.redit_reward_max=2.0", "+algorithm.redit_distribution=laplace"],
            0.2 / math.sqrt(3),
        ),
        # linear from 0.2 to 0 over 12 steps, at step 3: 0.2 · 9/12
        (["+algorithm.redit_sigma=0.2", "+algorithm.redit_schedule=linear", "+algorithm.redit_max_steps=12"], 0.15),
    ],
)
def test_noise_has_the_configured_std(settings, sigma):
    """All-equal groups under Dr. GRPO: each advantage is ε_i - mean of its group's ε, so the pooled within-group
    variance Σ a² / Σ (k - 1) estimates σ². 4096 groups of 8: relative error of the std ≈ 1/√(2·28672) ≈ 0.4%,
    so 3% is over 7 standard errors."""
    group_sizes = [8] * 4096
    rewards = torch.arange(4096).repeat_interleave(8).remainder(2).float()  # every group is all 0 or all 1
    batch = make_batch(group_sizes, rewards=rewards)
    config = trainer_config("algorithm.adv_estimator=grpo_redit", "algorithm.norm_adv_by_std_in_grpo=False", *settings)
    scalar = per_completion(batch, advantages(batch, "grpo_redit", config.algorithm, norm=False))
    realised = math.sqrt((scalar.double() ** 2).sum().item() / (4096 * 7))
    assert realised == pytest.approx(sigma, rel=0.03)


def test_loaded_through_verl_external_modules_and_bad_settings_fail_at_start_up():
    """As verl loads plug-ins: `VERL_USE_EXTERNAL_MODULES` imports it when verl is imported, and verl's own
    start-up (`main_ppo`'s `validate_config`) then rejects a bad `algorithm.redit_*` before Ray starts."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            "algorithm.adv_estimator=grpo_redit",
            "actor_rollout_ref.rollout.n=8",
            "+algorithm.redit_sigma=0.05",
            "+algorithm.redit_distribution=cauchy",
        ],
        env={**os.environ, "VERL_USE_EXTERNAL_MODULES": "redit.integrations.verl"},
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "ValueError: verl config: algorithm.redit_distribution" in run.stderr, run.stderr[-2000:]
    assert "ray init kwargs" not in run.stdout  # failed before Ray started


def test_example_command_composes_with_verls_config():
    """The overrides of examples/verl_gsm8k_redit.sh are valid verl keys, and pass the plug-in's start-up check."""
    from hydra import compose, initialize_config_dir

    script = (Path(__file__).parents[1] / "examples" / "verl_gsm8k_redit.sh").read_text()
    command = script[script.index("python3 -m verl.trainer.main_ppo") :].replace("\\\n", " ").replace('"$@"', "")
    values = {"PLUGIN": plugin.__name__, "DATA": "/data", "MODEL": "model", "GPUS": "8"}
    overrides = shlex.split(re.sub(r"\$(\w+)", lambda m: values[m.group(1)], command))[3:]
    with initialize_config_dir(config_dir=str(VERL_CONFIG.parent), version_base=None):
        config = compose("ppo_trainer", overrides=overrides)
    plugin.check_config(config)
    assert config.algorithm.adv_estimator == "grpo_redit"
    assert config.ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES == plugin.__name__
    settings = plugin.settings_from_config(config.algorithm)
    assert settings.dither.sigma(1, settings.r_max) == pytest.approx(0.02 / math.sqrt(3))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["+algorithm.redit_sigma=0.1", "+algorithm.redit_distribution=cauchy"], "algorithm.redit_distribution"),
        (["+algorithm.redit_sigma=-1"], "algorithm.redit_sigma"),
        (["+algorithm.redit_sigma=0.1", "+algorithm.redit_ratio=0.1"], "algorithm.redit_sigma"),
        (["+algorithm.redit_ratio=0.1"], "algorithm.redit_reward_max"),
        (["+algorithm.redit_sigma=0.1", "+algorithm.redit_schedule=cosine"], "algorithm.redit_max_steps"),
        (
            [
                "+algorithm.redit_sigma=0.1",
                "+algorithm.redit_schedule=sqrt",
                "+algorithm.redit_schedule_params.period=-3",
            ],
            "algorithm.redit_schedule_params.period",
        ),
        (["+algorithm.redit_sigma=0.1", "+algorithm.redit_sigmaa=0.1"], "algorithm.redit_sigmaa"),
        # wrong types
        (["+algorithm.redit_sigma=abc"], "algorithm.redit_sigma"),
        (["+algorithm.redit_sigma=true"], "algorithm.redit_sigma"),
        (["+algorithm.redit_sigma=0.1", "+algorithm.redit_seed=1.5"], "algorithm.redit_seed"),
        (["+algorithm.redit_sigma=0.1", "+algorithm.redit_schedule_params=5"], "algorithm.redit_schedule_params"),
        (
            ["+algorithm.redit_sigma=0.1", "+algorithm.redit_schedule=linear", "+algorithm.redit_max_steps=ten"],
            "algorithm.redit_max_steps",
        ),
        (["+algorithm.redit_ratio=0.1", "+algorithm.redit_reward_max=x"], "algorithm.redit_reward_max"),
        # the estimators would not be registered in verl's Ray actors
        (
            ["+algorithm.redit_sigma=0.1", f"{plugin.RUNTIME_ENV_KEY}=verl_other_plugin"],
            re.escape(f"+{plugin.RUNTIME_ENV_KEY}=redit.integrations.verl"),
        ),
        (["+algorithm.redit_sigma=0.1", "actor_rollout_ref.rollout.n=1"], "actor_rollout_ref.rollout.n"),
        (["algorithm.adv_estimator=grpo", "+algorithm.redit_sigma=0.1"], "algorithm.adv_estimator=grpo"),
    ],
)
def test_bad_settings_name_the_verl_key(overrides, key):
    config = trainer_config("algorithm.adv_estimator=grpo_redit", *overrides)
    with pytest.raises(ValueError, match=f"verl config: .*{key}"):
        plugin.check_config(config)


def test_estimator_missing_from_rays_runtime_env_is_named():
    config = OmegaConf.merge(
        OmegaConf.load(VERL_CONFIG),
        OmegaConf.from_dotlist(
            ["algorithm.adv_estimator=grpo_redit", "actor_rollout_ref.rollout.n=8", "algorithm.redit_sigma=0.1"]
        ),
    )
    with pytest.raises(ValueError, match=re.escape(f"add +{plugin.RUNTIME_ENV_KEY}=redit.integrations.verl")):
        plugin.check_config(config)


@pytest.mark.parametrize("version", ["0.8.0", "0.9.0", "0.10.0", "1.0.0"])
def test_untested_verl_version_is_refused_naming_it(version):
    with pytest.raises(ImportError, match=rf"tested with verl .* and found verl {re.escape(version)}"):
        plugin.check_verl_version(version)
    plugin.check_verl_version(sys.modules["verl"].__version__)


def test_missing_group_ids_or_step_fail_with_the_fix():
    batch = make_batch([4, 4])
    config = trainer_config("algorithm.adv_estimator=grpo_redit", "+algorithm.redit_sigma=0.1").algorithm
    batch.non_tensor_batch.pop("uid")
    with pytest.raises(ValueError, match=r"needs group ids.*non_tensor_batch\['uid'\]"):
        advantages(batch, "grpo_redit", config)
    SkipManager.set_step(-1)
    estimator = get_adv_estimator_fn("grpo_redit")
    with pytest.raises(RuntimeError, match="SkipManager.set_step"):
        estimator(batch.batch["token_level_rewards"], batch.batch["response_mask"], index=np.arange(8), config=config)


def test_noise_modes_through_verl():
    """std_floor: a noise-only group's advantages are (ε - mean ε) / floor; flat_only leaves mixed groups clean."""
    rewards = torch.tensor([1.0] * 8 + [1.0, 0, 0, 0, 1, 1, 0, 0])
    batch = make_batch([8, 8], rewards=rewards)
    uids = batch.non_tensor_batch["uid"]
    floor = trainer_config(
        "algorithm.adv_estimator=grpo_redit",
        "+algorithm.redit_sigma=0.05",
        "+algorithm.redit_mode=std_floor",
        "+algorithm.redit_std_floor=0.5",
    ).algorithm
    plain = trainer_config("algorithm.adv_estimator=grpo_redit", "+algorithm.redit_sigma=0.05").algorithm
    flat = per_completion(batch, advantages(batch, "grpo_redit", floor))[uids == "uid-0"]
    faithful = per_completion(batch, advantages(batch, "grpo_redit", plain))[uids == "uid-0"]
    torch.testing.assert_close(flat * 0.5, faithful * flat.std() * 0.5 / faithful.std(), atol=1e-4, rtol=1e-3)
    assert flat.std().item() < 0.2 < faithful.std().item()
    only = trainer_config(
        "algorithm.adv_estimator=grpo_redit", "+algorithm.redit_sigma=0.05", "+algorithm.redit_mode=flat_only"
    ).algorithm
    mixed = uids == "uid-1"
    expected = per_completion(batch, advantages(batch, "grpo", only))[mixed]
    torch.testing.assert_close(
        per_completion(batch, advantages(batch, "grpo_redit", only))[mixed], expected, atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="rloo takes algorithm.redit_mode=faithful"):
        advantages(batch, "rloo_redit", only)
