"""The reference for benchmarks/sac.py: SAC written in plain PyTorch, as SB3 runs it.

Same networks (ReLU MLPs for the actor and two critics, separate nets, tanh-squashed
Gaussian with log std clamped to [-20, 2]), same losses and order of updates (temperature,
critics, actor, Polyak every ``target_update_interval`` gradient steps), same Adam
settings, and a numpy replay buffer. What is left out is everything around the update
that a library adds: callbacks, loggers, vector-env wrappers, schedules.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from rrm_data.rl.sac import SacSettings
from rrm_data.rl.wrapper import task_env


def mlp(sizes: list[int], out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out))


class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.body = mlp([obs_dim, *hidden[:-1]], hidden[-1])  # ReLU applied in forward
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.body(obs))
        mu, log_std = self.mu(h), self.log_std(h).clamp(-20, 2)
        std = log_std.exp()
        pre = mu + std * torch.randn_like(mu)
        action = torch.tanh(pre)
        log_prob = (-0.5 * ((pre - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(1 - action ** 2 + 1e-6).sum(-1)
        return action, log_prob


class BareSac:
    """Actor, twin critics and targets, learned temperature; ``update`` = one gradient step."""

    def __init__(self, obs_dim: int, act_dim: int, s: SacSettings, capacity: int) -> None:
        hidden = list(s.net_arch)
        self.s = s
        self.actor = Actor(obs_dim, act_dim, hidden)
        self.critics = nn.ModuleList(mlp([obs_dim + act_dim, *hidden], 1) for _ in range(2))
        self.targets = nn.ModuleList(mlp([obs_dim + act_dim, *hidden], 1) for _ in range(2))
        self.targets.load_state_dict(self.critics.state_dict())
        self.targets.requires_grad_(False)
        init = float(str(s.ent_coef).partition("_")[2] or 1.0)
        self.log_alpha = torch.tensor([math.log(init)], requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=s.learning_rate)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=s.learning_rate)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=s.learning_rate)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.rew = np.zeros((capacity, 1), np.float32)
        self.done = np.zeros((capacity, 1), np.float32)
        self.size, self.updates = 0, 0

    def add(self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray,
            done: bool) -> None:
        i = self.size % len(self.obs)
        self.obs[i], self.act[i], self.rew[i], self.next_obs[i], self.done[i] = \
            obs, act, rew, next_obs, done
        self.size += 1

    @torch.no_grad()
    def act_stochastic(self, obs: np.ndarray) -> np.ndarray:
        return self.actor(torch.as_tensor(obs, dtype=torch.float32)[None])[0][0].numpy()

    def _q(self, nets: nn.ModuleList, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=1)
        return torch.cat([net(x) for net in nets], dim=1)

    def update(self) -> None:
        s = self.s
        rows = np.random.randint(0, min(self.size, len(self.obs)), s.batch_size)
        obs, act, rew, nxt, done = (torch.from_numpy(a[rows]) for a in
                                    (self.obs, self.act, self.rew, self.next_obs, self.done))
        pi, log_prob = self.actor(obs)
        alpha = self.log_alpha.detach().exp()
        alpha_loss = -(self.log_alpha * (log_prob + self.target_entropy).detach()).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            next_act, next_log_prob = self.actor(nxt)
            next_q = self._q(self.targets, nxt, next_act).min(dim=1, keepdim=True).values
            target = rew + (1 - done) * s.gamma * (next_q - alpha * next_log_prob[:, None])
        q = self._q(self.critics, obs, act)
        critic_loss = 0.5 * sum(nn.functional.mse_loss(q[:, k:k + 1], target) for k in range(2))
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        q_pi = self._q(self.critics, obs, pi).min(dim=1, keepdim=True).values
        actor_loss = (alpha * log_prob[:, None] - q_pi).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self.updates += 1
        if self.updates % s.target_update_interval == 0:
            with torch.no_grad():
                for p, t in zip(self.critics.parameters(), self.targets.parameters(),
                                strict=True):
                    t.mul_(1 - s.tau).add_(p, alpha=s.tau)


def bare_loop_steps_per_s(task: str, settings: SacSettings, steps: int, seed: int = 0
                          ) -> tuple[float, float]:
    """Env steps per second of wall time and per second of this process's CPU time, of
    env.step + one update per step, after ``learning_starts`` random steps."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    env = task_env(task, seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = BareSac(obs_dim, act_dim, settings, settings.learning_starts + steps)
    obs, _ = env.reset(seed=seed)
    started, cpu = 0.0, 0.0
    for t in range(settings.learning_starts + steps):
        if t == settings.learning_starts:
            started, cpu = time.perf_counter(), time.process_time()
        if t < settings.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act_stochastic(obs)
        nxt, reward, terminated, truncated, _ = env.step(action)
        agent.add(obs, action, float(reward), nxt, terminated)
        obs = env.reset()[0] if terminated or truncated else nxt
        if t >= settings.learning_starts:
            agent.update()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    env.close()
    return steps / wall, steps / cpu
