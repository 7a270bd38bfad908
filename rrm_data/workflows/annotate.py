"""Label the dataset's queried pairs in the browser; `export=true` writes the labels back.

The first run creates the campaign (`campaign=`, default `<data>.annotation/` next to the
dataset: its SQLite store and clip cache) from the dataset's `queries` table (make it with
`rrm-data query`) and `calibration` pairs with known answers, and the question the page
asks (`criterion=`, default "Which completes the task better?"; one campaign per question),
and prints each annotator's link with a secret token, once. Later runs serve the same
campaign (another `criterion=` is refused). The server listens on 127.0.0.1 unless `host=`
says otherwise. `export=true` (no server) writes a new version of the dataset with rows of
teacher `human:<annotator>` and the aggregate `human`; meta/info.json's `annotation` records
which pairs answered which question (`pairs_by_criterion`).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from rrm_data.annotation.app import AnnotationApp
from rrm_data.annotation.campaign import (
    DEFAULT_CRITERION,
    CampaignSpec,
    campaign_criterion,
    campaign_items,
    campaign_queues,
    campaign_settings,
    check_same_dataset,
    pass_mark,
)
from rrm_data.annotation.clips import ClipMaker, check_frames_available
from rrm_data.annotation.export import export_campaign
from rrm_data.annotation.server import bind, serve, url_host
from rrm_data.annotation.store import ADMIN, Store
from rrm_data.config import FRACTION, NON_NEGATIVE, POSITIVE, Range, doc
from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.writer import new_version
from rrm_data.errors import RrmError
from rrm_data.io import CAMPAIGN_STORE, Kind, check_out
from rrm_data.progress import console
from rrm_data.sim.rendering import IMAGE_SIZE, frame_spec

STORE_FILE = CAMPAIGN_STORE
PORT = Range(0, 65535)  # 0: any free port


@dataclass
class Config:
    data: str | None = field(default=None, metadata={"help": "dataset directory"})
    campaign: str | None = field(default=None, metadata={
        "help": "campaign folder: store and clip cache (default <data>.annotation)"})
    annotators: list[str] = field(default_factory=list, metadata={
        "help": "names of the annotators, e.g. [ana,ben] (when creating the campaign)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    hosts: list[str] = field(default_factory=list, metadata={
        "help": "more Host names to answer to, e.g. the machine's name when host=0.0.0.0"})
    port: int = field(default=8765, metadata=doc("port (0: any free port)", PORT))
    calibration: int = field(default=10, metadata=doc(
        "comparisons with a known answer", NON_NEGATIVE))
    calibration_first: int = field(default=5, metadata=doc(
        "calibration items shown first; the rest are mixed in", NON_NEGATIVE))
    calibration_teacher: str = field(default="oracle", metadata={
        "help": "teacher whose train labels are the known answers"})
    threshold: float | None = field(default=None, metadata=doc(
        "calibration accuracy below which labels are kept but marked not passing (default: the "
        "campaign's, 0.7 when it is created)", FRACTION))
    criterion: str | None = field(default=None, metadata={
        "help": "the question asked of each pair, kept with the campaign and its exported "
                f"labels (default when creating: '{DEFAULT_CRITERION}'), e.g. "
                "criterion='Which arm moves more smoothly?'"})
    overlap: float = field(default=0.2, metadata=doc(
        "share of queries shown to every annotator (for agreement)", FRACTION))
    seed: int = field(default=0, metadata=doc(
        "seed of calibration picks and side swaps", NON_NEGATIVE))
    camera: str = field(default="corner", metadata={
        "help": "camera to re-render when the dataset stores no frames"})
    image_size: int = field(default=112, metadata=doc("size of re-rendered frames", IMAGE_SIZE))
    clip_fps: float = field(default=20.0, metadata=doc(
        "steps per second at 1× (Meta-World runs at 80)", POSITIVE))
    export: bool = field(default=False, metadata={
        "help": "write the labels into a new dataset version instead of serving"})
    out: str | None = field(default=None, metadata={
        "help": "with export=true: new dataset directory (default: replace data in place)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a dataset at out"})


def run(cfg: DictConfig) -> None:
    if cfg.data is None:
        raise RrmError("data= is required: a dataset directory")
    dataset = open_dataset(cfg.data)
    campaign = Path(cfg.campaign or f"{str(cfg.data).rstrip('/')}.annotation")
    path = campaign / STORE_FILE
    if cfg.export:
        if not path.is_file():
            raise RrmError(f"no campaign at {campaign} (no {STORE_FILE}); nothing to export")
        with new_version(dataset, cfg.out, cfg.overwrite,
                         inputs={"campaign": campaign}) as target, \
                closing(Store(path)) as store:
            check_same_dataset(store.settings, target.dataset, campaign)
            labels, aggregate = export_campaign(target.dataset, store, target.out,
                                                target.overwrite,
                                                pass_mark(store.settings, cfg.threshold))
        console.print(f"wrote {target.out}: {labels} human labels (teacher human:<annotator>) "
                      f"and {aggregate} aggregate rows (teacher human)")
        return
    # a campaign folder follows the output rule; an existing campaign is served again
    check_out(campaign, Kind.CAMPAIGN, overwrite=False, option="campaign",
              inputs={"data": dataset.root}, reuse=True)
    check_frames_available(dataset)
    frame_spec(cfg.camera, cfg.image_size)  # checks the size range
    spec = CampaignSpec(tuple(cfg.annotators), cfg.calibration, cfg.calibration_first,
                        cfg.calibration_teacher, cfg.overlap,
                        pass_mark({}, cfg.threshold), cfg.seed,
                        str(cfg.criterion or DEFAULT_CRITERION))
    items = None
    if not path.is_file():  # a new campaign: check everything before anything is written
        spec.check()
        items = campaign_items(dataset, spec)
    else:  # served only with the dataset, and the queries, it was made from
        with closing(Store(path)) as existing:
            check_same_dataset(existing.settings, dataset, campaign)
            asked = campaign_criterion(existing.settings)
            if cfg.criterion is not None and cfg.criterion != asked:
                raise RrmError(f"the campaign at {campaign} asks '{asked}', not "
                               f"'{cfg.criterion}'; to ask another question, start a new campaign "
                               "with campaign=NEW_FOLDER")
    sock = bind(cfg.host, cfg.port)
    campaign.mkdir(parents=True, exist_ok=True)
    store = Store(path)
    try:
        base = f"http://{url_host(cfg.host)}:{sock.getsockname()[1]}"
        if items is not None:
            tokens = store.create(items, campaign_queues(items, spec),
                                  campaign_settings(dataset, spec))
            console.print(f"created campaign {campaign}: {len(items)} items, "
                          f"{len(spec.annotators)} annotators. Links with tokens, shown once:")
            for name, token in tokens.items():
                page = "monitor" if name == ADMIN else ""
                print(f"  {name:<12} {base}/{page}#token={token}", flush=True)
        elif cfg.annotators and sorted(cfg.annotators) != store.annotators():
            raise RrmError(f"the campaign at {campaign} is for annotators "
                           f"{', '.join(store.annotators())}; start another with campaign=")
        clips = ClipMaker(dataset, campaign / "clips", cfg.camera, cfg.image_size, cfg.clip_fps)
        hosts = [url_host(h) for h in (cfg.host, "localhost", "127.0.0.1", "::1", *cfg.hosts)]
        app = AnnotationApp(store, clips, pass_mark(store.settings, cfg.threshold), hosts)
        print(f"serving {base}/ (Ctrl-C to stop)", flush=True)
        serve(app, sock)
    finally:
        sock.close()
        store.close()


__all__ = ["Config", "run"]
