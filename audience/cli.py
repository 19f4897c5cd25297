"""The ``audience`` command: the root of every subcommand, and its one exit path.

Each package registers its own commands (``register`` in ``<package>/cli.py``); the
commands that compose several stages (``run``, ``analyze``, ``bench pipeline``) live here.
Every error a user can cause or fix is an :class:`~audience.core.errors.AudienceError`: it
is printed as one line and the process exits with the error's own code.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from audience import __version__
from audience.core.console import echo_json
from audience.core.errors import AudienceError

if TYPE_CHECKING:
    from audience.ingest.counting import GenderFn


def _escape_placeholders(text: str) -> str:
    """Markdown help treats ``<store>`` as an HTML tag and drops it: escape ``<`` outside
    code spans (inside backticks it is shown as is)."""
    parts = text.split("`")
    parts[::2] = [re.sub(r"<(?=[A-Za-z])", r"\\<", p) for p in parts[::2]]
    return "`".join(parts)


def _quiet_help_option(cmd: Any) -> None:
    get = cmd.get_help_option

    def get_help_option(ctx: Any) -> Any:
        opt = get(ctx)
        if opt is not None:
            opt.metavar = ""  # Typer shows a flag's metavar in place of its type
        return opt

    cmd.get_help_option = get_help_option


def _polish_help(cmd: Any) -> None:
    """Help text for every command, in one place: placeholders such as ``<store>`` survive the
    Markdown rendering, and flags (``--json``, ``--help``) show no ``<bool>`` type.

    Duck-typed: Typer builds its commands on its own copy of Click (``typer._click``)."""
    if cmd.help:
        cmd.help = _escape_placeholders(cmd.help)
    for param in cmd.params:
        if getattr(param, "help", None):
            param.help = _escape_placeholders(param.help)
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    _quiet_help_option(cmd)
    for sub in getattr(cmd, "commands", {}).values():
        _polish_help(sub)


class _Root(TyperGroup):
    """Turns an AudienceError from any subcommand into one line on stderr and its exit code
    (the same for the installed command and for Typer's test runner); polishes every
    command's help once, when Typer builds the tree."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _polish_help(self)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except AudienceError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Root,
    help="Anonymous, aggregate retail audience analytics from store cameras.\n\n"
    "Quick start: `audience run --source clip.mp4` then `audience report --store store-1`.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    rich_markup_mode="markdown")
bench_app = typer.Typer(help="Measure speed on this machine (prints figures; --json for machines).",
                        no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure accuracy on a named dataset split.",
                           no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(evaluate_app, name="evaluate")

ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config file (camera, analyzer, "
                                                "database, report, kafka sections).")]
BrokerOpt = Annotated[str | None, typer.Option(
    "--bootstrap-servers", help="Kafka brokers host:port,... (default from config).")]
# Options the two pipeline benches share.
DEFAULT_FACES = Path("../shared/datasets/utkface/crop_part1")
FacesOpt = Annotated[Path, typer.Option(help="UTKFace-named face images the crops are cut from.")]
BenchDbOpt = Annotated[str | None, typer.Option(
    help="Database URL (PostgreSQL for real figures). A new, empty database is migrated "
    "first; one with tables must be at the latest revision (`audience db upgrade`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"audience {__version__}")
        raise typer.Exit()


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings only.")] = False,
          version: Annotated[bool, typer.Option(
              "--version", callback=_print_version, is_eager=True,
              help="Print the version and exit.")] = False,
          ) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # migration chatter ("Context impl SQLiteImpl") is not news to a user
        logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def run(
    source: Annotated[str | None, typer.Option(help="Video file, image folder, rtsp:// or "
                                               "http(s):// URL, or webcam index.")] = None,
    store: Annotated[str | None, typer.Option(help="Store id (default from config).")] = None,
    camera: Annotated[str | None, typer.Option(help="Camera id (default from config).")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL (default sqlite:///audience.db; "
                                           "env DATABASE_URL).")] = None,
    config: ConfigOpt = None,
    fps: Annotated[float | None, typer.Option(help="Frames analysed per second.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for files.")] = True,
    annotate: Annotated[Path | None, typer.Option(
        "--annotate", metavar="OUT.mp4", help="Also write every analysed frame with boxes, "
        "track ids, exclusion masks and counts to this video (.mp4 or .avi). Off by default; "
        "the database never holds an image either way.")] = None,
    preview: Annotated[bool, typer.Option(
        "--preview", help="Serve a live view (frames, boxes, masks, live counts) on "
        "http://127.0.0.1:8090/; frames stay in memory. A file plays at its own speed and "
        "the page stays up after it ends until Ctrl-C.")] = False,
    preview_port: Annotated[int, typer.Option(
        "--preview-port", min=0, max=65535, help="Port of the live view (0: any free one).")]
    = 8090,
    preview_host: Annotated[str, typer.Option(
        "--preview-host", help="Address the live view binds to; anything but 127.0.0.1 shows "
        "the camera to whoever can reach it.")] = "127.0.0.1",
) -> None:
    """Run camera, inference and storage in one process on one source; store one visit per
    person seen, with dwell time and aggregated attributes."""
    from audience.pipeline import run_pipeline
    from audience.settings import load_settings

    cfg = load_settings(config, {
        "camera": {"source": source, "store": store, "id": camera, "fps": fps},
        "database": {"url": db}})
    with _observers(cfg.camera.fps, cfg.camera.id, annotate, preview, preview_host,
                    preview_port) as (on_frame, view):
        summary = run_pipeline(cfg, progress=progress, on_frame=on_frame)
        where = cfg.database.url.split("@")[-1]  # never echo a password
        typer.echo(f"{summary.visits} visits stored for store {summary.store_id}, camera "
                   f"{summary.camera_id} in {summary.seconds:.1f} s ({where})")
        if annotate:
            typer.echo(f"annotated video: {annotate}")
        if view is not None and not summary.stopped:  # a signal ends the view too
            _hold(view, summary.visits)
    if summary.exit_code:  # Ctrl-C: the visits are stored, the shell still learns of it
        raise typer.Exit(summary.exit_code)


def _hold(view: Any, visits: int) -> None:
    """Keep the live view's last frame and final counts up until Ctrl-C or SIGTERM."""
    import threading

    from audience.core.signals import install_sigterm

    view.done(visits)
    typer.echo(f"source ended; live view still on {view.url} until Ctrl-C", err=True)
    stop = threading.Event()
    install_sigterm(stop)
    while not stop.wait(0.5):
        pass


@contextmanager
def _observers(fps: float, title: str, annotate: Path | None, preview: bool, host: str,
               port: int) -> Iterator[tuple[Any, Any]]:
    """The opt-in frame observers of `run`: (one callback for all or None, the live view)."""
    from audience.ingest.annotate import VideoAnnotator
    from audience.ingest.preview import LiveView

    observers: list[Any] = []
    writer = VideoAnnotator(annotate, fps) if annotate else None
    view = LiveView(host, port, title=title).start() if preview else None
    if view is not None:
        typer.echo(f"live view: {view.url}", err=True)
        observers.append(view)
    if writer is not None:
        observers.append(writer)

    def fan_out(*args: Any) -> None:
        for observe in observers:
            observe(*args)

    try:
        yield (fan_out if observers else None), view
    finally:
        if writer is not None:
            writer.close()
        if view is not None:
            view.close()


@app.command()
def analyze(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    aligned: Annotated[bool, typer.Option(help="Treat each image as one face crop.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per face per line.")]
    = False,
    attributes: Annotated[str | None, typer.Option(
        help="Heads to run, e.g. emotion,age,gender,ethnicity (default: policy in config; "
        "ethnicity is off unless enabled).")] = None,
    annotate: Annotated[Path | None, typer.Option(
        "--annotate", metavar="OUT", help="Also write each image with its face boxes and "
        "labels, same size: OUT is a .png/.jpg file for one image, else a folder "
        "(<name>-annotated.png per image).")] = None,
) -> None:
    """Detect faces (YuNet) in each image and analyse them."""
    from audience.api import analyze_files
    from audience.inference.config import AnalyzerConfig, AttributePolicy
    from audience.ingest.annotate import annotate_faces, annotated_paths, write_image

    try:
        policy = AttributePolicy.from_names(attributes) if attributes else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--attributes") from exc
    targets = annotated_paths(annotate, images) if annotate else []
    for i, (img, faces) in enumerate(analyze_files(
            images, aligned=aligned, config=AnalyzerConfig(), policy=policy)):
        for face in faces:
            _print_face(face.to_dict(), as_json)
        if targets:
            out = write_image(targets[i], annotate_faces(img, faces))
            typer.echo(f"annotated: {out}", err=True)


def _print_face(row: dict, as_json: bool) -> None:
    if as_json:
        echo_json(row)
        return
    parts = [f"{row['source']} face {row['face']}:"]
    if row["emotion"]:
        parts.append(f"emotion={row['emotion']}")
    if row["age"] is not None:
        parts.append(f"age={row['age']:.0f} ({row['age_bracket']})")
    if row["gender"]:
        parts.append(f"gender={row['gender']} ({row['gender_score']:.2f})")
    if row["ethnicity"]:
        parts.append(f"ethnicity={row['ethnicity']}")
    typer.echo(" ".join(parts))


@bench_app.command("pipeline")
def bench_pipeline(
    cameras: Annotated[int, typer.Option(min=1, help="Simulated cameras.")] = 4,
    workers: Annotated[int, typer.Option(min=1, help="Inference workers (threads).")] = 2,
    duration: Annotated[float, typer.Option(min=3, help="Seconds of video per camera.")] = 20.0,
    realtime: Annotated[bool, typer.Option(help="Pace the cameras at 5 fps (latency) instead "
                                           "of as fast as possible (throughput).")] = False,
    faces: FacesOpt = DEFAULT_FACES,
    db: BenchDbOpt = None,
    bootstrap_servers: BrokerOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Visits/s, faces/s and p50/p95 camera -> database latency of the scaled-out pipeline
    (fresh topics and a bench-TAG store id: live data is never touched)."""
    from audience.bench_pipeline import bench_pipeline as run_bench
    from audience.settings import load_settings

    cfg = load_settings(config, {"database": {"url": db},
                                 "kafka": {"bootstrap_servers": bootstrap_servers}})
    local = _own_broker(cfg, bootstrap_servers)
    try:
        r = run_bench(cfg, cameras, workers, duration, faces=faces, realtime=realtime)
    finally:
        if local is not None:
            local.close()
    r["broker"] = "local tansu" if local is not None else "given"
    if as_json:
        echo_json(r)
        return
    typer.echo(f"{r['cameras']} cameras, {r['workers']} workers: {r['visits']}/{r['visitors']} "
               f"visits in {r['seconds']} s = {r['visits_per_s']} visits/s, "
               f"{r['faces_per_s']} faces/s; {r['rows']} rows for {r['visitors']} visitors; "
               f"track end -> {r['database']} commit latency p50 {r['latency_p50_s']} s, "
               f"p95 {r['latency_p95_s']} s")
    typer.echo("  stages p50/p95 ms: " + ", ".join(
        f"{name} {_ms(v['p50'])}/{_ms(v['p95'])}" for name, v in r["stages_s"].items())
        + f"; mean batch {r['mean_batch']} messages of {r['message_bytes']} bytes")


@bench_app.command("workers")
def bench_workers(
    workers: Annotated[str, typer.Option(help="Worker counts to compare, e.g. 1,2.")] = "1,2",
    tracks: Annotated[int, typer.Option(min=1, help="Tracks in the backlog of each run.")]
    = 3000,
    faces: FacesOpt = DEFAULT_FACES,
    pin: Annotated[bool, typer.Option(help="Pin worker i to core i mod cores.")] = True,
    db: BenchDbOpt = None,
    bootstrap_servers: BrokerOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Backlog drain rate with W real `audience infer` processes (one analyzer thread each,
    pinned), for each W; and the database's batched upsert rate. Fresh topics and
    bench-wW-TAG store ids: live data is never touched. Without --bootstrap-servers (and
    none in the config), a local broker (tansu, in memory) runs for the benchmark; a new,
    empty database is migrated first."""
    from audience.bench_workers import bench_workers as run_bench
    from audience.bench_workers import check_counts
    from audience.core.errors import InputError
    from audience.settings import load_settings

    try:
        counts = [int(x) for x in workers.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--workers {workers!r}: give worker counts like 1,2") from None
    cfg = load_settings(config, {"database": {"url": db},
                                 "kafka": {"bootstrap_servers": bootstrap_servers}})
    check_counts(cfg, counts, tracks)
    local = _own_broker(cfg, bootstrap_servers)
    try:
        r = run_bench(cfg, counts, tracks, faces, pin)
    finally:
        if local is not None:
            local.close()
    r["broker"] = "local tansu" if local is not None else "given"
    if as_json:
        echo_json(r)
        return
    typer.echo(f"{r['cores']} cores, load {r['load_avg_1m']}, {r['partitions']} partitions, "
               f"{r['crops_per_visit']} crops/visit, messages of {r['message_bytes']} bytes, "
               f"broker: {r['broker']}")
    first = min(run["workers"] for run in r["runs"])
    for run in r["runs"]:
        share = ", ".join(f"{k} {100 * v:.0f}%" for k, v in run["stage_share"].items())
        typer.echo(f"W={run['workers']}: {run['tracks']} tracks drained in {run['drain_s']} s "
                   f"= {run['drain_visits_per_s']} visits/s; all busy: "
                   f"{run['steady_visits_per_s']} visits/s ({run['speedup']}x W={first}); "
                   f"{run['rows']} rows for {run['tracks']} tracks; mean batch "
                   f"{run['mean_batch']}; the workers got {run['worker_cores']} cores "
                   f"({run['visits_per_cpu_s']} visits per CPU-second); time: {share}")
    u = r["upserts"]
    typer.echo(f"{u['database']} batched upserts: {u['visits_per_s']} visits/s "
               f"({u['batch']} per transaction, {u['ms_per_batch']} ms each)")


def _own_broker(cfg: Any, bootstrap_servers: str | None) -> Any:
    """A local broker for one bench run (its caller stops it) when neither the option nor the
    config file or environment names one; None when one is named. Points ``cfg`` at it."""
    from audience.core.local_broker import LocalBroker

    if bootstrap_servers is not None or "bootstrap_servers" in cfg.kafka.model_fields_set:
        return None
    local = LocalBroker().start()
    cfg.kafka = cfg.kafka.model_copy(update={"bootstrap_servers": local.bootstrap})
    typer.echo(f"no --bootstrap-servers given: started a local Kafka-protocol broker "
               f"(tansu, in memory) on {local.bootstrap} for this run", err=True)
    return local


@app.command()
def capacity(
    stores: Annotated[int, typer.Option(min=1, help="Stores in the chain.")] = 500,
    cameras: Annotated[int, typer.Option(min=1, help="Cameras per store.")] = 4,
    visitors: Annotated[float, typer.Option(
        "--visitors-per-camera-hour", min=0.001,
        help="Tracks per camera in the peak hour.")] = 1000.0,
    utilisation: Annotated[float, typer.Option(min=0.01, max=1.0, help="Target busy share "
                                               "of a worker at peak.")] = 0.6,
    outage: Annotated[float, typer.Option("--outage-min", min=0, help="Outage at peak to "
                                          "absorb (minutes).")] = 15.0,
    catch_up: Annotated[float, typer.Option("--catch-up-min", min=0.1, help="Minutes to clear "
                                            "that backlog in.")] = 15.0,
    measured: Annotated[Path | None, typer.Option(
        help="JSON of `audience bench workers --json` (default: the shipped "
        "deploy/capacity/bench-workers.json).")] = None,
    check_run: Annotated[Path | None, typer.Option(
        "--check", help="JSON of `audience bench pipeline --realtime --json`: print the model "
        "at that run's scale beside what it measured.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Workers, Kafka partitions, topic size at 1 h retention, PostgreSQL write rate and the
    KEDA settings for a chain at its peak hour, from measured worker and database figures."""
    from audience.capacity import Measured, Scenario, check, plan, table
    from audience.core.errors import ConfigError

    m = Measured.load(measured)
    s = Scenario(stores=stores, cameras=cameras, visitors_per_camera_hour=visitors,
                 utilisation=utilisation, outage_min=outage, catch_up_min=catch_up)
    p = plan(s, m)
    checked = None
    if check_run is not None:
        try:
            checked = check(json.loads(check_run.read_text()), m)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--check {check_run}: {exc}") from None
    if as_json:
        echo_json({"scenario": s.model_dump(), "measured": m.model_dump(), "plan": p,
                   "check": checked})
        return
    width = max(len(k) for k, _ in table(s, m, p))
    for what, figure in table(s, m, p):
        typer.echo(f"{what:<{width}}  {figure}")
    if checked and check_run is not None:
        typer.echo(f"\nmodel vs measured at {check_run.name}'s scale:")
        for what, model, got in checked:
            typer.echo(f"  {what:<28} model {model:<10} measured {got}")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


@app.command("broker")
def broker(
    port: Annotated[int, typer.Option("--port", min=1, max=65535,
                                      help="Port on 127.0.0.1.")] = 9092,
) -> None:
    """A local Kafka-protocol broker (tansu, in memory) on 127.0.0.1 until Ctrl-C, to try the
    scaled-out path (`audience camera`, `audience infer`, `audience simulate --publish`) on
    one machine. Not for production: every message is gone when it stops."""
    import threading

    from audience.core.errors import ServiceError
    from audience.core.local_broker import LocalBroker
    from audience.core.signals import install_sigterm

    stop = threading.Event()
    install_sigterm(stop)  # Ctrl-C or SIGTERM: stop tansu too, never leave it behind
    with LocalBroker(port=port) as local:
        typer.echo(f"local Kafka-protocol broker (tansu, in memory) on {local.bootstrap}: "
                   f"pass --bootstrap-servers {local.bootstrap}; Ctrl-C stops it")
        while not stop.wait(0.5):
            if local.proc is None or local.proc.poll() is not None:
                break
        else:
            return
    raise ServiceError(f"the local broker on {local.bootstrap} exited unexpectedly (code "
                       f"{local.proc.returncode if local.proc else '?'}): run it again")


def _track_genders(config: Path | None) -> GenderFn:
    """`evaluate counting`'s gender labeller (loaded only when that command runs)."""
    from audience.api import track_genders

    return track_genders(config)


def _register() -> None:
    from audience.inference.cli import register as register_inference
    from audience.ingest.cli import register as register_ingest
    from audience.models.cli import register as register_models
    from audience.reports.cli import register as register_reports
    from audience.reports.dashboards.cli import register as register_dashboards
    from audience.settings import load_settings
    from audience.storage.cli import register as register_storage

    register_ingest(app, bench_app, evaluate_app, load_settings, _track_genders)
    register_inference(app, bench_app, load_settings)
    register_storage(app)
    register_reports(app, load_settings)
    register_dashboards(app)
    register_models(app, evaluate_app)


_register()


def main() -> None:
    """Entry point of the installed ``audience`` command."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
