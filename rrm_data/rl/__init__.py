"""The RL bridge: environments rewarded by r̂, replay-buffer relabelling, SAC on a reward."""

from rrm_data.rl.relabel import frame_cameras, live_step_columns, relabel, relabel_replay_buffer
from rrm_data.rl.sac import evaluate, make_sac, make_vec_env
from rrm_data.rl.wrapper import (
    TRUE_REWARD,
    RewardWrapper,
    SeededReset,
    VecRewardWrapper,
    reward_frame_spec,
    task_env,
)

__all__ = [
    "TRUE_REWARD",
    "RewardWrapper",
    "SeededReset",
    "VecRewardWrapper",
    "evaluate",
    "frame_cameras",
    "reward_frame_spec",
    "make_sac",
    "make_vec_env",
    "relabel",
    "relabel_replay_buffer",
    "live_step_columns",
    "task_env",
]
