"""Bulk screening jobs: a whole book of identifiers against a list, with progress.

Why this module exists: screening 10^6 accounts takes minutes, longer than an HTTP
request should be held; so `provnet lookup screen FILE` uploads the file, the node
screens it in a background thread, chunk by chunk (one relay ticket of at most
``max_ticket`` elements per round), and the CLI polls the job for its progress bar and,
once done, its per-row results. A row whose identifier cannot be read is skipped with
its (redacted) reason and the screen goes on; a failure that is not the row's (the
relay unreachable, the epoch rotated) ends the job as ``failed`` with that reason.
Jobs live in memory: a restarted node forgets them (screen again).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.lookup.listing import open_screen_file
from node.lookup.node.errors import UnknownJob, translated
from node.lookup.node.queries import QuerierRole, membership_list

__all__ = ["ScreenJob", "Screens"]


@dataclass
class ScreenJob:
    job_id: str
    list_name: str
    total: int = 0
    rows: int = 0
    listed: int = 0
    skipped: int = 0
    state: str = "running"
    error: str | None = None
    epoch: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, with_results: bool) -> dict[str, Any]:
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
        if with_results and self.state == "done":
            out["results"] = self.results
        return out


class Screens:
    """The screening jobs of one querier node."""

    def __init__(self, querier: QuerierRole, work_dir: Path, max_jobs: int = 16) -> None:
        self.querier = querier
        self.work_dir = work_dir
        self.max_jobs = max_jobs
        self._lock = threading.Lock()
        self._jobs: dict[str, ScreenJob] = {}

    def start(
        self,
        path: Path,
        *,
        list_name: str,
        purpose: str,
        grant_id: bytes,
        default_type: str | None,
    ) -> dict[str, Any]:
        """Open the file (header errors raise here, nothing started) and screen it in
        the background; the file at ``path`` is the job's from now on."""
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
        job = ScreenJob(secrets.token_hex(8), list_name, total=screen.total_rows)
        job.epoch = querier.epoch
        with self._lock:
            done = [j for j, v in self._jobs.items() if v.state != "running"]
            for old in done[: max(0, len(self._jobs) - self.max_jobs + 1)]:
                del self._jobs[old]
            self._jobs[job.job_id] = job

        def run() -> None:
            # Threads verify the holders' proofs side by side: rbcl releases the GIL
            # during each scalar multiplication (docs/lookup-scaling.md, screening).
            pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="lookup-screen")
            try:
                for chunk in screen:
                    inputs = [query.input for query in chunk.queries]
                    answers = (
                        list(
                            querier.screen(
                                inputs,
                                list_name=inner,
                                chunk_size=self.querier.max_ticket,
                                executor=pool,
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
                        rows.append({"row": error.row, "skipped": str(error)})
                    rows.sort(key=lambda r: int(r["row"]))
                    with self._lock:
                        job.results.extend(rows)
                        job.rows += chunk.row_count
                        job.listed += sum(1 for r in rows if r.get("listed"))
                        job.skipped += sum(1 for r in rows if "skipped" in r)
                with self._lock:
                    job.state = "done"
            except Exception as exc:  # the job reports it; the node goes on
                with self._lock:
                    job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                shutil.rmtree(path.parent, ignore_errors=True)

        threading.Thread(target=run, name=f"lookup-screen-{job.job_id}", daemon=True).start()
        return self.status(job.job_id, with_results=False)

    def status(self, job_id: str, *, with_results: bool = True) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob("job", f"no screening job {job_id!r} on this node")
            return job.to_json(with_results)
