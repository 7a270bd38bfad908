"""The RL bridge: environments rewarded by r̂, replay-buffer relabelling, SAC on a reward."""

from rrm_data.rl.relabel import frame_cameras, relabel, relabel_replay_buffer, step_columns
from rrm_data.rl.sac import evaluate, make_sac, make_vec_env
from rrm_data.rl.wrapper import (
    TRUE_REWARD,
    RewardWrapper,
    SeededReset,
    VecRewardWrapper,
    frame_spec,
    task_env,
)

__all__ = [
    "TRUE_REWARD",
    "RewardWrapper",
    "SeededReset",
    "VecRewardWrapper",
    "evaluate",
    "frame_cameras",
    "frame_spec",
    "make_sac",
    "make_vec_env",
    "relabel",
    "relabel_replay_buffer",
    "step_columns",
    "task_env",
]
