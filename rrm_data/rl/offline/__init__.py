"""Offline RL on a dataset's own steps: IQL (TorchRL's loss) and CPL (from the preferences)."""
