"""Online preference-based RL (PEBBLE, and RRM on top of it): SAC collects experience with
r̂, a teacher labels segment pairs drawn from it, r̂ is retrained, the replay buffer relabelled.

Parts: ``episodes`` (what SAC did, recorded with its physics), ``queries`` (which pairs to
ask, ranked by ``labels.acquisition``; a ``labels.teachers.Teacher`` answers), ``learner``
(r̂ from all answers, by ``training.fit``), ``entropy`` (PEBBLE's unsupervised phase),
``feedback`` (every query as a dataset), ``settings`` (the knobs and their up-front
checks), ``checkpoint`` (the saved run state), ``loop`` (the rounds, resumable).
"""
