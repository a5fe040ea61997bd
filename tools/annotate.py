"""Run models over pictures and write one Darwin JSON 2.0 file per picture, ready for V7's import.

  python run.py annotate photos/ --model pose --out darwin/
  python run.py annotate a.jpg b.png --model opencv-face --model pose --out darwin/ --jobs 2
  darwin dataset import TEAM/DATASET darwin darwin/      (darwin-py, once the pictures are in V7)

PATH is a picture or a folder (searched recursively for .jpg .jpeg .png .webp .bmp .tif .tiff .gif;
hidden files and folders are skipped). Each picture gives OUT/<its path below the folder>.json,
e.g. photos/trip/a.jpg -> darwin/trip/a.jpg.json, holding the item (file name, slot size) and one
annotation per result: its V7 class name, its geometry and the `inference` sub-annotation
(confidence, model name). Models run in this process exactly as the server runs them (same driver,
same image decoder with EXIF orientation and size limits, same class mapping file: V7 class names,
disabled classes and thresholds come from it; --config or BYOM_CONFIG names it). With no --model,
the default endpoint's models are used.

Existing output files are kept (so an interrupted run resumes where it stopped) unless --overwrite.
Unreadable files are skipped with a message. Exit status: 0 when every picture has its file, 1 when
some could not be read or annotated, 2 for bad options (unknown model, missing model files, bad
mapping file, nothing found).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class UsageError(ValueError):
    """Bad options, unknown models, missing files, a bad mapping: reported, exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="pictures and folders of pictures")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the Darwin JSON files")
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="NAME",
        help="model to run (repeat, or NAME,NAME; default: the default endpoint's models). "
        "`python run.py models` lists them",
    )
    parser.add_argument(
        "--model-file",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="also load the model classes of this Python file (your own model; then --model its name)",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="redo pictures whose output file exists")
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="confidence threshold 0..1 (as Auto-Annotate sends it; class thresholds of the mapping still apply)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="class-mapping file (default: $BYOM_CONFIG or ~/.byom-playground/config.json)",
    )
    parser.add_argument(
        "--preserve-folders",
        action="store_true",
        help="record each picture's folder (below PATH) "
        "as its V7 item path, as `darwin dataset push --preserve-folders` does (default: '/')",
    )


# -- what to do -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One picture: where it is, where its Darwin JSON goes, and its V7 item name and folder."""

    source: str
    output: str
    file_name: str
    item_path: str


@dataclass(frozen=True)
class Outcome:
    source: str
    written: bool
    annotations: int = 0
    message: str = ""
    #: The models could not be set up: nothing else can succeed either.
    fatal: bool = False


@dataclass(frozen=True)
class Setup:
    """Everything a worker process needs to build its `Annotator` (picklable, hashable)."""

    model_names: tuple[str, ...]
    extra_models: tuple[str, ...]
    config_path: str
    threshold: float | None


def find_pictures(paths: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, its path relative to the folder given) for every picture; a file given is taken as is."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                hidden = any(part.startswith(".") for part in relative.parts)
                if file.is_file() and not hidden and file.suffix.lower() in IMAGE_SUFFIXES:
                    yield file, relative
        elif path.is_file():
            yield path, Path(path.name)
        else:
            raise UsageError(f"{path} is neither a file nor a folder")


def plan_jobs(paths: Iterable[Path], out_dir: Path, preserve_folders: bool) -> list[Job]:
    """One job per picture; two pictures that would write the same output file are an error."""
    jobs: dict[Path, Job] = {}
    for file, relative in find_pictures(paths):
        output = out_dir / relative.parent / f"{relative.name}.json"
        if output in jobs:
            raise UsageError(
                f"{file} and {jobs[output].source} would both be written to {output}; "
                "annotate them into separate --out folders"
            )
        folder = relative.parent.as_posix()
        item_path = "/" + folder if preserve_folders and folder != "." else "/"
        jobs[output] = Job(str(file), str(output), relative.name, item_path)
    return list(jobs.values())


def model_names_of(option_values: list[str]) -> tuple[str, ...]:
    names = [name.strip() for value in option_values for name in value.split(",") if name.strip()]
    return tuple(dict.fromkeys(names))


# -- running models -------------------------------------------------------------------------------


class Annotator:
    """The models, the class mapping and the image limits, loaded once; `annotate` does one picture."""

    def __init__(self, setup: Setup) -> None:
        from models.mapping import ConfigError, MappingFile
        from models.registry import ModelRegistry
        from server.settings import Settings

        self.setup = setup
        self.settings = Settings.from_env()
        self.registry = ModelRegistry.with_plugins(setup.extra_models)
        failures = [str(f) for f in self.registry.plugin_failures if f.fatal]
        if failures:
            raise UsageError("; ".join(failures))
        specs = {name: self.registry.spec(name) for name in self.registry.names()}
        mapping_file = MappingFile(Path(setup.config_path), validate=lambda m: m.validate(specs))
        self.mapping = mapping_file.load()
        if mapping_file.last_error:
            raise UsageError(f"the class-mapping file is not valid: {mapping_file.last_error}")
        self.model_names = setup.model_names or tuple(self.mapping.default_models)
        try:
            chosen = [self.registry.spec(name) for name in self.model_names]
            #: V7 class name -> annotation type, as GET /classes of these models would list them.
            self.class_types = {c.name: c.type for c in self.mapping.endpoint_classes(chosen)}
        except (KeyError, ConfigError) as exc:  # UnknownModel (a KeyError) says which models exist
            raise UsageError(str(exc)) from None
        missing = [line for name in self.model_names for line in self.registry.missing_files(name)]
        if missing:
            names = " ".join(self.model_names)
            raise UsageError("model files are missing: " + "; ".join(missing) + f" (python run.py models pull {names})")
        self._models: list[Any] | None = None

    def load_models(self) -> list[Any]:
        """The loaded models (loading takes a while: only done when there is work)."""
        from models.driver import ModelFailed
        from models.files import ModelUnavailable

        if self._models is None:
            try:
                self._models = [self.registry.get(name) for name in self.model_names]
            except (ModelFailed, ModelUnavailable) as exc:  # ModelLoadFailed is a ModelFailed
                raise UsageError(str(exc)) from None
        return self._models

    def close(self) -> None:
        """Free the models' native resources now (MediaPipe tasks left to interpreter exit complain)."""
        for model in self._models or []:
            close = getattr(model, "close", None)
            if callable(close):
                close()
        self._models = None

    def annotate(self, job: Job) -> Outcome:
        from models.darwin_json import darwin_json_from_results
        from models.driver import ModelContractError, ModelFailed, Request, run_model
        from server.contract import ApiError
        from server.images import decode_image

        try:
            data = Path(job.source).read_bytes()
        except OSError as exc:
            return Outcome(job.source, False, message=f"cannot read the file: {exc.strerror or exc}")
        try:
            image = decode_image(
                data, max_pixels=self.settings.max_image_pixels, max_side_px=self.settings.max_image_side_px
            )
        except ApiError as exc:
            return Outcome(job.source, False, message=f"not a usable picture: {exc.message}")
        height, width = image.shape[:2]
        request = Request(threshold=self.setup.threshold)
        document: dict[str, Any] | None = None
        for model in self.load_models():
            try:
                results = run_model(model, image, request, self.mapping)
            except (ModelContractError, ModelFailed) as exc:
                return Outcome(job.source, False, message=str(exc))
            part = darwin_json_from_results(
                results,
                file_name=job.file_name,
                width=width,
                height=height,
                model_name=model.spec.name,
                class_types=self.class_types,
                path=job.item_path,
            )
            if document is None:
                document = part
            else:
                document["annotations"].extend(part["annotations"])
        assert document is not None  # there is always at least one model
        write_json_atomically(Path(job.output), document)
        return Outcome(job.source, True, len(document["annotations"]))


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Temp file + rename: an interrupted run never leaves a half-written file that looks done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def worker_loop(setup: Setup, jobs: Any, outcomes: Any) -> None:
    """A worker process: load the models once, annotate jobs from `jobs` until None, close the models.

    Closing here, before the process exits, matters: a spawned worker ends with a normal interpreter
    exit, where MediaPipe tasks still open fail noisily (their dispatcher threads are gone by then).
    """
    try:
        annotator = Annotator(setup)
        annotator.load_models()
    except Exception as exc:  # reported once by the parent, which then stops
        outcomes.put(Outcome("", False, message=f"{exc}", fatal=True))
        return
    try:
        while (job := jobs.get()) is not None:
            try:
                outcomes.put(annotator.annotate(job))
            except Exception as exc:  # one picture's surprise must not stall the run
                outcomes.put(Outcome(job.source, False, message=f"{type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        pass
    finally:
        annotator.close()


# -- progress -------------------------------------------------------------------------------------


class Progress:
    """A one-line bar on a terminal (redrawn at most 10 times a second); a line per 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = self.failed = self.annotations = 0
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_step = -1
        self._drawn = False

    def line(self) -> str:
        width = 24
        filled = width * self.done // max(self.total, 1)
        rate = self.done / max(time.monotonic() - self._started, 1e-6)
        failed = f", {self.failed} skipped" if self.failed else ""
        return (
            f"annotate [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} pictures, "
            f"{self.annotations} annotations, {rate:.1f}/s{failed}"
        )

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self._last_draw = 0.0
        self.update(None)

    def update(self, outcome: Outcome | None) -> None:
        if outcome is not None:
            self.done += 1
            self.failed += not outcome.written
            self.annotations += outcome.annotations
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or self.done == self.total:
                self._last_draw = now
                self._drawn = True
                self.stream.write("\r" + self.line() + "\033[K")
        else:
            step = 10 * self.done // max(self.total, 1)
            if outcome is not None and step > self._last_step:
                self._last_step = step
                self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def run_jobs(setup: Setup, annotator: Annotator, jobs: list[Job], workers: int, progress: Progress) -> list[Outcome]:
    """Every job, in this process (workers == 1) or in `workers` processes that each load the models once."""
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if not outcome.written and not outcome.fatal:
            progress.message(f"skipped {outcome.source}: {outcome.message}")
        progress.update(outcome)

    if workers <= 1:
        annotator.load_models()
        for job in jobs:
            record(annotator.annotate(job))
        return outcomes

    import multiprocessing
    import queue

    # spawn, not fork: MediaPipe and OpenCV hold threads and native state that must not be forked.
    context = multiprocessing.get_context("spawn")
    job_queue, outcome_queue = context.Queue(), context.Queue()
    for job in jobs:
        job_queue.put(job)
    for _ in range(workers):
        job_queue.put(None)
    processes = [
        context.Process(target=worker_loop, args=(setup, job_queue, outcome_queue), daemon=True) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        while len(outcomes) < len(jobs):
            try:
                outcome = outcome_queue.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in processes):
                    raise UsageError("the worker processes ended before every picture was done") from None
                continue
            if outcome.fatal:
                raise UsageError(f"a worker could not load the models: {outcome.message}")
            record(outcome)
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():  # only after an error or Ctrl-C: files written so far are complete
                process.terminate()
                process.join()
    return outcomes


# -- the command ----------------------------------------------------------------------------------


def config_path_of(args: argparse.Namespace) -> Path:
    from server.settings import Settings

    if args.config is not None:
        return args.config.expanduser().resolve()
    return Settings.from_env().config_path


def main(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    try:
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if args.threshold is not None and not 0 <= args.threshold <= 1:
            raise UsageError("--threshold must be from 0 to 1")
        jobs = plan_jobs(args.paths, out_dir, args.preserve_folders)
        if not jobs:
            raise UsageError(
                f"no pictures found in {' '.join(map(str, args.paths))} (looked for {' '.join(IMAGE_SUFFIXES)})"
            )
        from models.plugins import absolute_source, parse_sources

        extra = [*parse_sources(os.environ.get("BYOM_EXTRA_MODELS", "")), *map(str, args.model_file)]
        setup = Setup(
            model_names=model_names_of(args.models),
            extra_models=tuple(dict.fromkeys(absolute_source(s) for s in extra)),
            config_path=str(config_path_of(args)),
            threshold=args.threshold,
        )
        annotator = Annotator(setup)
        setup = Setup(annotator.model_names, setup.extra_models, setup.config_path, setup.threshold)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    existing = sum(Path(job.output).exists() for job in jobs)
    todo = [job for job in jobs if args.overwrite or not Path(job.output).exists()]
    kept = len(jobs) - len(todo)
    workers = min(args.jobs, max(len(todo), 1))
    try:
        if todo and workers == 1:
            annotator.load_models()  # before the header: MediaPipe's native start-up lines come first
        print(
            f"annotate: {len(jobs)} pictures with {', '.join(annotator.model_names)} -> {out_dir} "
            f"({existing} already done{': redoing them' if args.overwrite and existing else ''})",
            file=sys.stderr,
        )
        progress = Progress(len(todo))
        try:
            outcomes = run_jobs(setup, annotator, todo, workers, progress) if todo else []
        finally:
            progress.finish()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files written so far are kept; run the same command again to go on", file=sys.stderr)
        return 130
    finally:
        annotator.close()
    written = [o for o in outcomes if o.written]
    skipped = [o for o in outcomes if not o.written]
    print(
        f"{len(jobs)} pictures: {len(written)} written ({sum(o.annotations for o in written)} annotations), "
        f"{kept} kept from an earlier run{' (--overwrite redoes them)' if kept else ''}, "
        f"{len(skipped)} skipped -> {out_dir}"
    )
    return 1 if skipped else 0
