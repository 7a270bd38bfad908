"""The online loop's settings (B-Pref's defaults; recipes ``rrm`` and ``pebble`` set them)
and the up-front checks that refuse, each with one line, what the loop cannot run."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from omegaconf import DictConfig

from rrm_data.config import (
    COUNT,
    FRACTION,
    HELD_OUT,
    NON_NEGATIVE,
    POSITIVE,
    SEED32,
    check_fields,
    config_dict,
    doc,
)
from rrm_data.dataset import format as fmt
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.errors import RrmError
from rrm_data.labels.acquisition import STRATEGY_HELP, check_strategy
from rrm_data.labels.teachers import Teacher, make_teacher
from rrm_data.reward.networks import build_network
from rrm_data.reward.spec import MODEL_RANGES, finetune_blocks, reward_spec
from rrm_data.rl.sac import SacSettings, check_sac
from rrm_data.sim.envs import episode_length

STATE_INPUTS = {fmt.STATE: STATE_DIM, fmt.ACTION: ACTION_DIM}


@dataclass
class OnlineSettings:
    """Knobs of the loop, with B-Pref's defaults; recipes ``rrm`` and ``pebble`` set them."""

    task: str = field(default="button-press-v3", metadata=doc("Meta-World v3 task name"))
    steps: int = field(default=100_000, metadata=doc("environment steps in all", COUNT))
    seed: int = field(default=0, metadata=doc("seed of envs, networks, queries, teacher", SEED32))
    feedback: int = field(default=2000, metadata=doc("total queries the teacher is asked", COUNT))
    labels_per_round: int = field(default=50, metadata=doc("queries per round", COUNT))
    round_every: int = field(default=5000, metadata=doc("env steps between rounds", COUNT))
    segment_length: int = field(default=50, metadata=doc("steps per queried window", COUNT))
    strategy: str = field(default="uniform", metadata=doc(STRATEGY_HELP))
    pool_factor: int = field(default=10, metadata=doc(
        "candidate pool = pool_factor x labels_per_round (disagreement, entropy)", COUNT))
    recent_episodes: int = field(default=100, metadata=doc(
        "queries draw windows from this many newest episodes", COUNT))
    unsupervised_steps: int = field(default=0, metadata=doc(
        "PEBBLE's state-entropy pre-training steps (0: none)", NON_NEGATIVE))
    entropy_k: int = field(default=5, metadata=doc("k of the k-NN state entropy", COUNT))
    reset_critic: bool = field(default=True, metadata=doc("re-initialize the critics "
                                                          "after unsupervised pre-training"))
    reset_updates: int = field(default=100, metadata=doc(
        "gradient steps on the first learned reward right after the reset", NON_NEGATIVE))
    teacher: str = field(default="oracle", metadata=doc(
        "scripted teacher (oracle, stochastic, mistake, skip, equal, myopic)"))
    teacher_params: dict[str, Any] = field(default_factory=dict,
                                           metadata=doc("the teacher's parameters"))
    reward_max_epochs: int = field(default=10, metadata=doc(
        "epoch cap per round (B-Pref Meta-World: 10)", COUNT))
    target_agreement: float = field(default=0.97, metadata=doc(
        "stop a round's reward training at this train agreement", FRACTION))
    reward_batch_size: int = field(default=128, metadata=doc("pairs per reward step", COUNT))
    reward_lr: float = field(default=3e-4, metadata=doc("Adam step size of the reward", POSITIVE))
    test_fraction: float = field(default=0.2, metadata=doc(
        "oracle test pairs of the feedback dataset, x labels", HELD_OUT))
    model: dict[str, Any] = field(default_factory=dict, metadata=doc(
        "reward model (as train-reward's model)", keys=MODEL_RANGES))
    reward_pessimism: float = field(default=0.0, metadata=doc(
        "κ: SAC is paid mean − κ·std of r̂'s ensemble members, in the envs and the "
        "relabelled buffer (ensemble pessimism; 0: their mean)", NON_NEGATIVE))
    reward_normalize: bool = field(default=False, metadata=doc(
        "SAC trains on r̂ divided by the running std of its discounted return, as "
        "train-sac's reward_normalize; the buffer keeps the raw r̂ that rounds relabel"))
    sac: SacSettings = field(default_factory=SacSettings, metadata=doc("SAC settings (sbx)"))
    eval_every: int = field(default=10_000, metadata=doc(
        "env steps between evaluations", NON_NEGATIVE))
    eval_episodes: int = field(default=10, metadata=doc("deterministic episodes per eval", COUNT))
    episode_steps: int | None = field(default=None, metadata=doc(
        "cut episodes shorter than Meta-World's 500 steps", COUNT))

    @property
    def first_round(self) -> int:
        return self.sac.learning_starts + self.unsupervised_steps

    @property
    def episode_length(self) -> int:
        """Steps of every training episode."""
        return episode_length(self.episode_steps)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> OnlineSettings:
        """The settings among a command's config keys."""
        every = config_dict(cfg)
        values = {f.name: every[f.name] for f in fields(cls)}
        return cls(**{**values, "sac": SacSettings(**values["sac"])})


def check_settings(s: OnlineSettings) -> None:
    """Refuse settings the loop cannot run, each with one line."""
    check_strategy(s.strategy, "the reward model (model.members=1)", s.model.get("members"))
    check_fields(OnlineSettings, s)
    members = int(s.model.get("members", 1))
    if s.reward_pessimism > 0 and members < 2:
        raise RrmError(f"reward_pessimism={s.reward_pessimism:g} needs an ensemble to disagree; "
                       f"model.members={members} (use model.members=3)")
    if s.feedback < s.labels_per_round:
        raise RrmError(f"feedback={s.feedback} is smaller than one round "
                       f"(labels_per_round={s.labels_per_round})")
    if s.first_round >= s.steps:
        raise RrmError(f"steps={s.steps} ends before the first round (learning_starts + "
                       f"unsupervised_steps = {s.first_round})")
    if s.episode_length < s.segment_length:
        raise RrmError(f"episodes of {s.episode_length} steps (episode_steps) are shorter than "
                       f"segment_length={s.segment_length}")
    n_envs = max(s.sac.n_envs, 1)  # steps count over all envs, which step together
    if -(-s.first_round // n_envs) < s.episode_length:
        raise RrmError(f"the first round (step {s.first_round} = sac.learning_starts + "
                       f"unsupervised_steps) comes before the first episodes end (step "
                       f"{s.episode_length * n_envs} = {s.episode_length} steps x "
                       f"sac.n_envs={n_envs}): nothing to query; raise sac.learning_starts or "
                       "shorten episode_steps")
    unknown = set(s.model.get("inputs", [])) - set(STATE_INPUTS)
    if unknown:
        raise RrmError(f"train-online learns from state and action; model.inputs has "
                       f"{', '.join(sorted(unknown))}")
    if finetune_blocks(s.model):
        raise RrmError("train-online learns from state and action: it fine-tunes no image "
                       "encoder (model.finetune_blocks is train-reward's)")
    make_teacher_for(s)
    check_sac(s.sac)
    spec = reward_spec(s.model, STATE_INPUTS, None)
    with torch.device("meta"):  # shapes only: refuses a window the network cannot read
        build_network(spec.network, sum(STATE_INPUTS.values()), spec.params,
                      spec.window.length)


def make_teacher_for(s: OnlineSettings) -> Teacher:
    teacher = make_teacher(s.teacher, s.teacher_params)
    if teacher.reads_motion:
        raise RrmError(f"teacher '{s.teacher}' judges stored hand motion, which train-online's "
                       "queries do not carry yet; use it with collect or rrm-data label")
    return teacher
