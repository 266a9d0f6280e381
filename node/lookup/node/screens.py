"""Bulk screening jobs: a whole book of identifiers against a list, with progress.

Why this module exists: screening 10^6 accounts takes minutes, longer than an HTTP
request should be held; so `provnet lookup screen FILE` uploads the file, the node
screens it in a background thread, chunk by chunk (one relay ticket of at most
``max_ticket`` elements per round), and the CLI polls the job for its progress bar and,
once done, its per-row results. A row whose identifier cannot be read is skipped with
its (redacted) reason and the screen goes on; a failure that is not the row's (the
relay unreachable, the epoch rotated) ends the job as ``failed`` with that reason.

Why a job is a directory (``<work_dir>/<job id>/``) and not an object in memory: a
bank's book takes many minutes and every row is charged, so a node restart must not
throw away the chunks already screened, and a million rows of results must not sit in
the node's memory until someone fetches them. The directory holds the uploaded book
(until the job ends), ``results.jsonl`` (one result row per line, appended a chunk at a
time) and ``job.json`` (parameters, state, counters; replaced by write-then-rename).
A chunk's rows are fsynced to ``results.jsonl`` *before* ``job.json`` counts the chunk
as done and records the file's length, so whatever lies past that length after a crash
belongs to a chunk not done: ``resume`` cuts it off and screens that chunk again, and
no row is lost or doubled. A resumed job keeps the epoch it began on: if the list moved
to another epoch meanwhile, the job fails (rows answered by two unions are not one
screen) and the bank screens again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.lookup import anchoring
from node.lookup.listing import ScreenChunk, ScreenFile, open_screen_file
from node.lookup.node.errors import LookupRequestError, UnknownJob, translated
from node.lookup.node.files import write_json_durably
from node.lookup.node.queries import QuerierRole, membership_list
from node.lookup.querier import Querier

__all__ = ["JOB_FILE", "RESULTS_FILE", "ScreenJob", "Screens"]

JOB_FILE = "job.json"
RESULTS_FILE = "results.jsonl"
BOOK_SUFFIXES = (".csv", ".parquet", ".pq")
_JOB_ID = re.compile(r"[0-9a-f]{16}")
STATES = ("running", "done", "failed")


class ScreenInterrupted(Exception):
    """A job that cannot go on after a restart (its epoch is gone, its files damaged);
    the message is the job's ``error`` as the bank reads it."""


@dataclass
class ScreenJob:
    """One job: what ``job.json`` holds, and what ``status`` answers from."""

    job_id: str
    list_name: str
    purpose: str = ""
    grant_id: bytes = b""
    default_type: str | None = None
    book: str = ""
    chunk_rows: int = 1
    created: float = 0.0
    total: int = 0
    rows: int = 0
    listed: int = 0
    skipped: int = 0
    state: str = "running"
    error: str | None = None
    epoch: int | None = None
    chunks: int = 0
    results_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        """The API's answer without results (the shape callers poll)."""
        out: dict[str, Any] = {
            "jobId": self.job_id,
            "list": self.list_name,
            "state": self.state,
            "epoch": self.epoch,
            "totalRows": self.total,
            "rows": self.rows,
            "listed": self.listed,
            "skipped": self.skipped,
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def to_file(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "list": self.list_name,
            "purpose": self.purpose,
            "grantId": self.grant_id.hex(),
            "defaultType": self.default_type,
            "book": self.book,
            "chunkRows": self.chunk_rows,
            "created": self.created,
            "epoch": self.epoch,
            "state": self.state,
            "error": self.error,
            "totalRows": self.total,
            "rows": self.rows,
            "listed": self.listed,
            "skipped": self.skipped,
            "chunksDone": self.chunks,
            "resultsBytes": self.results_bytes,
        }

    @classmethod
    def from_file(cls, job_id: str, data: object) -> ScreenJob:
        """The job ``job.json`` describes; ``ValueError`` names the first bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")

        def get(name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
            if name not in data:
                raise ValueError(f"field {name!r} is missing")
            value = data[name]
            if value is None and optional:
                return None
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"field {name!r} has the wrong type ({value!r})")
            if isinstance(value, int) and value < 0:
                raise ValueError(f"field {name!r} must not be negative ({value})")
            return value

        if get("jobId", str) != job_id:
            raise ValueError(f"field 'jobId' is {data['jobId']!r}, not its directory {job_id!r}")
        state = get("state", str)
        if state not in STATES:
            raise ValueError(f"field 'state' must be one of {STATES}, got {state!r}")
        try:
            grant_id = bytes.fromhex(get("grantId", str))
        except ValueError:
            raise ValueError(f"field 'grantId' is not hex ({data['grantId']!r})") from None
        job = cls(
            job_id,
            get("list", str),
            purpose=get("purpose", str),
            grant_id=grant_id,
            default_type=get("defaultType", str, optional=True),
            book=get("book", str),
            chunk_rows=get("chunkRows", int),
            created=float(get("created", (int, float))),
            total=get("totalRows", int),
            rows=get("rows", int),
            listed=get("listed", int),
            skipped=get("skipped", int),
            state=state,
            error=get("error", str, optional=True),
            epoch=get("epoch", int, optional=True),
            chunks=get("chunksDone", int),
            results_bytes=get("resultsBytes", int),
        )
        if job.chunk_rows < 1:
            raise ValueError(f"field 'chunkRows' must be at least 1, got {job.chunk_rows}")
        if Path(job.book).name != job.book:
            raise ValueError(f"field 'book' must be a bare file name, got {job.book!r}")
        return job


class Screens:
    """The screening jobs of one querier node, kept under ``work_dir``.

    ``after_chunk(job_id, chunks_done)`` is called from a job's thread once a chunk is
    durable (for tests and monitoring: calling ``stop()`` from it interrupts the job at
    a known chunk, as a node shutdown does at an unknown one).
    """

    def __init__(
        self,
        querier: QuerierRole,
        work_dir: Path,
        max_jobs: int = 16,
        *,
        after_chunk: Callable[[str, int], None] | None = None,
    ) -> None:
        self.querier = querier
        self.work_dir = work_dir
        self.max_jobs = max_jobs
        self.after_chunk = after_chunk
        self._lock = threading.Lock()
        self._jobs: dict[str, ScreenJob] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ API

    def start(
        self,
        path: Path,
        *,
        list_name: str,
        purpose: str,
        grant_id: bytes,
        default_type: str | None,
    ) -> dict[str, Any]:
        """Open the file (header errors raise here, naming ``path``, nothing started)
        and screen it in the background; the file at ``path`` is the job's from now on:
        it is moved into the job's directory, and its own directory is removed if that
        leaves it empty (the API's staging directory)."""
        roster = self.querier.roster(list_name)
        inner = membership_list(roster.list_name, "blacklist")
        with translated("file"):
            screen = open_screen_file(
                path,
                list_name=inner,
                default_kind=default_type,
                chunk_rows=self.querier.max_ticket,
            )
            querier = self.querier.querier(list_name, purpose, grant_id)
        job = ScreenJob(
            secrets.token_hex(8),
            list_name,
            purpose=purpose,
            grant_id=grant_id,
            default_type=default_type,
            book=path.name,
            chunk_rows=self.querier.max_ticket,
            created=time.time(),
            total=screen.total_rows,
            epoch=querier.epoch,
        )
        job_dir = self._dir(job.job_id)
        try:
            job_dir.mkdir(parents=True)
            # An open CSV is already in memory and an open Parquet file keeps its
            # descriptor, so `screen` reads on from the moved book.
            shutil.move(path, job_dir / job.book)
            self._save(job)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        self._admit([job])
        self._spawn(job, screen, querier)
        return self.status(job.job_id, with_results=False)

    def status(self, job_id: str, *, with_results: bool = True) -> dict[str, Any]:
        """The job's progress; with ``with_results`` and once done, its rows, read from
        ``results.jsonl`` (up to the length ``job.json`` recorded)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob("job", f"no screening job {job_id!r} on this node")
            out = job.to_json()
            size = job.results_bytes if with_results and job.state == "done" else None
        if size is not None:
            out["results"] = self._results(job_id, size)
        return out

    def resume(self) -> None:
        """Reload every job directory under ``work_dir`` (once, when the node starts):
        finished jobs answer ``status`` again, running ones go on in the background
        from their next chunk. A directory that cannot be read becomes a failed job
        saying why; nothing here raises for a job's sake."""
        try:
            entries = sorted(p for p in self.work_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return
        loaded: list[ScreenJob] = []
        for entry in entries:
            if _JOB_ID.fullmatch(entry.name) is None:
                continue  # not a job directory of this module
            with self._lock:
                if entry.name in self._jobs:
                    continue
            loaded.append(self._load(entry))
        self._admit(loaded)
        for job in loaded:
            if job.state == "running":
                self._spawn(job, None, None)
            else:
                self._delete_book(job)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every job after its current chunk (a node shutdown): each stays
        ``running`` in its ``job.json``, for ``resume`` to go on with. Waits up to
        ``timeout`` seconds per job; a chunk still in flight then is screened again
        after the restart (it was never counted)."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # ------------------------------------------------------------------ job threads

    def _spawn(self, job: ScreenJob, screen: ScreenFile | None, querier: Querier | None) -> None:
        thread = threading.Thread(
            target=self._run,
            args=(job, screen, querier),
            name=f"lookup-screen-{job.job_id}",
            daemon=True,
        )
        with self._lock:
            self._threads[job.job_id] = thread
        thread.start()

    def _run(self, job: ScreenJob, screen: ScreenFile | None, querier: Querier | None) -> None:
        """Screen the chunks not done yet; ``screen`` and ``querier`` are None for a
        resumed job (reopened here, off the node's start-up path)."""
        # Threads verify the holders' proofs side by side: rbcl releases the GIL during
        # each scalar multiplication (docs/lookup-scaling.md, screening).
        pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="lookup-screen")
        try:
            if screen is None or querier is None:
                screen, querier = self._reopen(job)
            if self._screen(job, screen, querier, pool):
                self._finish(job, "done", None)
        except Exception as exc:  # the job reports it; the node goes on
            if not self._stopping.is_set():  # else most likely the shutdown's doing
                reason = str(exc) if isinstance(exc, ScreenInterrupted) else None
                self._finish(job, "failed", reason or f"{type(exc).__name__}: {exc}")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                self._threads.pop(job.job_id, None)

    def _reopen(self, job: ScreenJob) -> tuple[ScreenFile, Querier]:
        """A resumed job's book (same chunking as before) and a querier on its epoch."""
        roster = self.querier.roster(job.list_name)
        with translated():
            current = anchoring.current_epoch(
                self.querier.anchors,
                roster.list_name,
                roster.relay,
                roster.providers,
                roster.quorum,
            ).epoch
        if current != job.epoch:
            raise ScreenInterrupted(
                f"list {job.list_name!r} is now at epoch {current}, but this job screened "
                f"its first {job.rows} rows against epoch {job.epoch} before the node "
                "restarted; answers from two epochs' unions are not one screen, so the "
                "job stops here: screen the book again"
            )
        book = self._dir(job.job_id) / job.book
        if not book.is_file():
            raise ScreenInterrupted(f"the job's book {job.book!r} is gone; screen it again")
        with translated("file"):
            screen = open_screen_file(
                book,
                list_name=membership_list(roster.list_name, "blacklist"),
                default_kind=job.default_type,
                chunk_rows=job.chunk_rows,
            )
        if screen.total_rows != job.total:
            raise ScreenInterrupted(
                f"the job's book {job.book!r} now has {screen.total_rows} rows, not the "
                f"{job.total} it was started with; screen it again"
            )
        querier = self.querier.querier(job.list_name, job.purpose, job.grant_id, job.epoch)
        return screen, querier

    def _screen(self, job: ScreenJob, screen: ScreenFile, querier: Querier, pool: Executor) -> bool:
        """Append each chunk not done to ``results.jsonl``, then count it in
        ``job.json``; False when stopped before the end."""
        results = self._dir(job.job_id) / RESULTS_FILE
        results.touch()
        size = results.stat().st_size
        if size < job.results_bytes:
            raise ScreenInterrupted(
                f"{RESULTS_FILE} has {size} bytes but {JOB_FILE} records "
                f"{job.results_bytes} for {job.chunks} chunks done; screen the book again"
            )
        with results.open("r+b") as out:
            out.truncate(job.results_bytes)  # a chunk written but not counted: again
            out.seek(job.results_bytes)
            for index, chunk in enumerate(screen):
                if index < job.chunks:
                    continue
                if self._stopping.is_set():
                    return False
                rows = self._chunk_rows(chunk, querier, screen.list_name, pool)
                data = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in rows)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
                done = dataclasses.replace(
                    job,
                    rows=job.rows + chunk.row_count,
                    listed=job.listed + sum(1 for r in rows if r.get("listed")),
                    skipped=job.skipped + sum(1 for r in rows if "skipped" in r),
                    chunks=index + 1,
                    results_bytes=job.results_bytes + len(data),
                )
                self._save(done)
                with self._lock:
                    job.rows, job.listed, job.skipped = done.rows, done.listed, done.skipped
                    job.chunks, job.results_bytes = done.chunks, done.results_bytes
                if self.after_chunk is not None:
                    self.after_chunk(job.job_id, job.chunks)
        return True

    def _chunk_rows(
        self, chunk: ScreenChunk, querier: Querier, inner: str, pool: Executor
    ) -> list[dict[str, Any]]:
        """One chunk's result rows, in row order; a skipped row's reason names the
        book by its file name only, never where the node keeps it."""
        inputs = [query.input for query in chunk.queries]
        answers = (
            list(
                querier.screen(
                    inputs, list_name=inner, chunk_size=self.querier.max_ticket, executor=pool
                )
            )
            if inputs
            else []
        )
        rows: list[dict[str, Any]] = []
        for query, result in zip(chunk.queries, answers, strict=True):
            if result.answer is None:
                rows.append({"row": query.row, "skipped": result.error})
            else:
                rows.append(
                    {
                        "row": query.row,
                        "listed": result.answer.listed,
                        "multiplicity": result.answer.multiplicity,
                    }
                )
        for error in chunk.skipped:
            rows.append({"row": error.row, "skipped": f"{Path(error.file).name}: {error.detail}"})
        rows.sort(key=lambda r: int(r["row"]))
        return rows

    def _finish(self, job: ScreenJob, state: str, error: str | None) -> None:
        """Record the job's end, then delete its book (a crash in between leaves a
        finished job with its book, deleted by ``resume``)."""
        try:
            self._save(dataclasses.replace(job, state=state, error=error))
        except OSError as exc:  # the job still ends, in memory at least
            state, error = "failed", f"{error or 'done'}; and {JOB_FILE} not saved: {exc}"
        with self._lock:
            job.state, job.error = state, error
        self._delete_book(job)

    # ------------------------------------------------------------------ files

    def _dir(self, job_id: str) -> Path:
        return self.work_dir / job_id

    def _save(self, job: ScreenJob) -> None:
        write_json_durably(self._dir(job.job_id) / JOB_FILE, job.to_file(), 0o600)

    def _load(self, job_dir: Path) -> ScreenJob:
        """The job ``job_dir`` holds, or a failed job saying why it cannot be read."""
        try:
            data = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
            return ScreenJob.from_file(job_dir.name, data)
        except FileNotFoundError:
            why = f"{JOB_FILE} is missing (the node stopped while the job was being set up)"
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError too
            why = f"{JOB_FILE} cannot be read: {exc}"
        try:
            created = job_dir.stat().st_mtime
        except OSError:
            created = 0.0
        return ScreenJob(
            job_dir.name,
            "",
            created=created,
            state="failed",
            error=f"screening job {job_dir.name} cannot be resumed: {why}; screen the book again",
        )

    def _delete_book(self, job: ScreenJob) -> None:
        """A finished job's uploaded book is of no further use: remove it (for a job
        whose ``job.json`` is unreadable, any book-like file in its directory)."""
        job_dir = self._dir(job.job_id)
        if job.book:
            (job_dir / job.book).unlink(missing_ok=True)
        elif job.list_name == "":
            with contextlib.suppress(OSError):
                for path in job_dir.iterdir():
                    if path.suffix.lower() in BOOK_SUFFIXES and path.is_file():
                        path.unlink(missing_ok=True)

    def _admit(self, jobs: list[ScreenJob]) -> None:
        """Add ``jobs``; beyond ``max_jobs``, the oldest finished jobs go, with their
        directories."""
        with self._lock:
            for job in sorted(jobs, key=lambda j: j.created):
                self._jobs[job.job_id] = job
            finished = sorted(
                (j for j in self._jobs.values() if j.state != "running"),
                key=lambda j: j.created,
            )
            doomed = finished[: max(0, len(self._jobs) - self.max_jobs)]
            for old in doomed:
                del self._jobs[old.job_id]
        for old in doomed:
            shutil.rmtree(self._dir(old.job_id), ignore_errors=True)

    def _results(self, job_id: str, size: int) -> list[dict[str, Any]]:
        path = self._dir(job_id) / RESULTS_FILE
        try:
            with path.open("rb") as fh:
                data = fh.read(size)
        except FileNotFoundError:
            raise UnknownJob("job", f"no screening job {job_id!r} on this node") from None
        if len(data) != size:
            raise LookupRequestError(
                "job",
                f"{RESULTS_FILE} of screening job {job_id} has {len(data)} bytes, "
                f"{JOB_FILE} records {size}; screen the book again",
            )
        try:
            return [json.loads(line) for line in data.splitlines()]
        except ValueError as exc:
            raise LookupRequestError(
                "job", f"{RESULTS_FILE} of screening job {job_id} is damaged ({exc})"
            ) from None
