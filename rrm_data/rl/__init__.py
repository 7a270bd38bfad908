"""The RL bridge: environments rewarded by r̂, replay-buffer relabelling, SAC on a reward."""
