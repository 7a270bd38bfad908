"""A static HTML gallery of what rewards like and dislike: top-k and bottom-k by predicted return,
or by a teacher's criterion (``rank_by``: its quantity, ``evaluation.ranking.clip_quality``).

Each card shows an animated filmstrip of an episode (or segment), a plot of the predicted
reward (total, and prior/residual for a residual model) against the true reward over
time, and the episode's task, policy and success. Frames come from the dataset when it
stores the camera, otherwise they are re-rendered from the stored physics state. The
folder holds only relative links and local files, so it opens offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image

from rrm_data.dataset import format as fmt
from rrm_data.evaluation import plots
from rrm_data.evaluation.scoring import Scored, SplitData
from rrm_data.progress import progress
from rrm_data.sim.episode_frames import EpisodeFrames

MIN_FRAME_MS = 40  # browsers slow down GIF frames shorter than 20 ms; keep clips watchable


@dataclass(frozen=True)
class Clip:
    """A window of one episode shown as a card: a whole episode or one segment."""

    kind: str  # "episode" or "segment"
    key: int  # episode_index or segment_index
    first: int  # global step row of the window's first step
    length: int
    episode: dict[str, Any]  # the episode's row (task, policy, success, rand_vec, ...)
    true_return: float

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.key:06d}"


def clips(data: SplitData, kind: str) -> list[Clip]:
    """Every episode (or every segment) of the split, in table order."""
    episodes = {int(r["episode_index"]): r for r in data.episodes.to_dict("records")}
    if kind == "episode":
        return [Clip(kind, e, int(r["index_from"]), int(r["length"]), r, float(r["return"]))
                for e, r in episodes.items()]
    return [Clip(kind, int(s["segment_index"]), int(s["first"]), int(s["length"]),
                 episodes[int(s["episode_index"])], float(s["return"]))
            for s in data.segments.to_dict("records")]


def ranked(predicted: np.ndarray, k: int) -> tuple[list[int], list[int]]:
    """Positions of the k highest (best first) and k lowest (worst first) predictions."""
    order = np.argsort(-predicted, kind="stable")
    return [int(i) for i in order[:k]], [int(i) for i in order[::-1][:k]]


def subsample(first: int, length: int, count: int) -> np.ndarray:
    """At most ``count`` evenly spaced step rows of a window, always keeping its last step."""
    return np.unique(np.linspace(first, first + length - 1, num=min(count, length)).round()
                     .astype(np.int64))


def write_filmstrip(frames: list[np.ndarray], path: Path, frame_ms: int) -> None:
    """An endlessly looping animated GIF."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   optimize=False)


TEMPLATE = jinja2.Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Reward gallery: {{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.rewards { display: grid; gap: 1.5em;
           grid-template-columns: repeat({{ columns|length }}, minmax(22em, 1fr)); }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .5em; margin: 0 0 1em 0; }
.card.success { border-left: 6px solid #2a2; }
.card.failure { border-left: 6px solid #c33; }
.card .media { display: flex; gap: .5em; align-items: center; flex-wrap: wrap; }
.card img.plot { max-width: 100%; height: auto; }
.card img.film { width: 168px; height: auto; image-rendering: pixelated; }
figcaption { font-size: .85em; margin-top: .3em; }
code { background: #f3f3f3; padding: 0 .2em; }
</style>
</head>
<body>
<h1>Reward gallery</h1>
<p>Dataset <code>{{ dataset }}</code>, split <code>{{ split }}</code>: {{ n_episodes }} episodes,
{{ n_segments }} segments. Episodes and segments ranked by {{ ranking }}.
Frames: {{ frames_note }}. Plots: predicted reward (left axis) and true reward
(right axis, black) per step. Green edge: successful episode; red: not.</p>
<div class="rewards">
{% for column in columns %}
<section class="reward">
<h2><code>{{ column.ref }}</code></h2>
{% for group in column.groups %}
<h3>{{ group.title }}</h3>
{% for card in group.cards %}
<figure class="card {{ 'success' if card.success else 'failure' }}">
<div class="media">
<img class="film" src="{{ card.film }}" alt="frames of {{ card.label }}">
<img class="plot" src="{{ card.plot }}" alt="reward over time of {{ card.label }}">
</div>
<figcaption>#{{ card.rank }} · <b>{{ card.label }}</b> · {{ card.task }} · policy
<code>{{ card.policy }}</code> · {{ 'success' if card.success else 'no success' }}<br>
predicted return {{ card.predicted }} · true return {{ '%.2f' % card.true_return }}
{%- if card.cost is not none %} · {{ rank_by }} cost {{ '%.4g' % card.cost }}{% endif -%}
</figcaption>
</figure>
{% endfor %}
{% endfor %}
</section>
{% endfor %}
</div>
</body>
</html>
""", autoescape=True, undefined=jinja2.StrictUndefined)


def _predicted_text(parts: dict[str, float], split: bool) -> str:
    if not split:
        return f"{parts['total']:.2f}"
    return f"{parts['total']:.2f} (prior {parts['prior']:.2f}, residual {parts['residual']:.2f})"


@dataclass(frozen=True)
class Ranking:
    """What orders the clips: each reward's predicted return (``quality`` None), or a
    teacher's quality (minus its cost) of each ``episode`` and ``segment`` of the split."""

    teacher: str | None = None
    quality: dict[str, np.ndarray] | None = None

    def text(self) -> str:
        if self.teacher is None:
            return "predicted return (sum of r̂ over their steps)"
        return (f"teacher {self.teacher}'s criterion (lowest cost first; its formula, episodes "
                "as one window each), the same clips for every reward")


def _groups(scored: Scored, data: SplitData, k: int, ranking: Ranking
            ) -> Iterator[tuple[str, Clip, int, dict, float | None]]:
    """(group title, clip, rank, predicted return parts, teacher's cost) of a reward's top
    and bottom clips."""
    for kind, returns in (("episode", scored.episode), ("segment", scored.segment)):
        items = clips(data, kind)
        key = returns.total if ranking.quality is None else ranking.quality[kind]
        top, bottom = ranked(key, k)
        by = "" if ranking.teacher is None else f" by {ranking.teacher}"
        for title, picks in ((f"Top {len(top)} {kind}s{by}", top),
                             (f"Bottom {len(bottom)} {kind}s{by}", bottom)):
            for rank, i in enumerate(picks, 1):
                yield title, items[i], rank, {p: float(v[i]) for p, v in
                                              returns.parts().items()}, (
                    None if ranking.quality is None else -float(key[i]))


def build_gallery(data: SplitData, scored: list[Scored], root: Path, k: int, camera: str,
                  size: int, frames: int, ranking: Ranking | None = None) -> None:
    """Write ``index.html`` with ``media/`` (filmstrips) and ``plots/`` under ``root``."""
    (root / "media").mkdir(parents=True)
    (root / "plots").mkdir()
    fps = float(data.dataset.info.fps)
    true_reward = data.dataset.table("steps", columns=[fmt.REWARD]).column(fmt.REWARD).to_numpy()
    ranking = ranking or Ranking()
    picks = [list(_groups(s, data, k, ranking)) for s in scored]
    needed = {clip.name: clip for column in picks for _, clip, _, _, _ in column}
    source = EpisodeFrames(data.dataset, camera, size)
    try:
        with progress("gallery", total=len(needed), unit="clips") as bar:
            for name, clip in sorted(needed.items()):
                rows = subsample(clip.first, clip.length, frames)
                stride = clip.length / len(rows)
                write_filmstrip(source.frames(clip.episode, rows), root / "media" / f"{name}.gif",
                                max(MIN_FRAME_MS, round(1000 * stride / fps)))
                bar.advance()
    finally:
        source.close()

    columns = []
    for r, (s, column) in enumerate(zip(scored, picks, strict=True)):
        split = len(s.views()) > 1
        groups: dict[str, list[dict]] = {}
        for title, clip, rank, predicted, cost in column:
            plot = f"plots/reward{r}-{clip.name}.png"
            if not (root / plot).exists():
                true = true_reward[clip.first:clip.first + clip.length]
                plots.episode_rewards(s.steps.window(clip.first, clip.length), true,
                                      f"{clip.kind} {clip.key}", root / plot)
            label = (f"episode {clip.key}" if clip.kind == "episode" else
                     f"segment {clip.key} (episode {clip.episode['episode_index']}, "
                     f"steps {clip.first - clip.episode['index_from']}–"
                     f"{clip.first - clip.episode['index_from'] + clip.length - 1})")
            groups.setdefault(title, []).append({
                "rank": rank, "label": label, "film": f"media/{clip.name}.gif", "plot": plot,
                "task": clip.episode["task"], "policy": clip.episode["policy"],
                "success": bool(clip.episode["success"]), "true_return": clip.true_return,
                "predicted": _predicted_text(predicted, split), "cost": cost})
        columns.append({"ref": s.ref, "groups": [{"title": t, "cards": c}
                                                  for t, c in groups.items()]})
    frames_note = (f"stored frames of camera {camera}" if source.stored else
                   f"camera {camera}, re-rendered from the stored physics state")
    html = TEMPLATE.render(title=", ".join(s.ref for s in scored), dataset=data.dataset.root,
                           split=data.split, n_episodes=len(data.episodes),
                           n_segments=len(data.segments), columns=columns,
                           frames_note=frames_note, ranking=ranking.text(),
                           rank_by=ranking.teacher)
    (root / "index.html").write_text(html)
