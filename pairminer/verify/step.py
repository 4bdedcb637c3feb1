"""verify as a step of the audio pass: fingerprint each file once, compare and classify each pair.

`VerifyStep` runs in the Dask tasks (its product is a file's Chromaprint fingerprint, its per-pair
work `compare_pairs`); `VerifyClient` is its session on the client (`VerifySession`: the cache, the
counts, verified.parquet). As the first step of a pass it reads the candidates and gates the later
steps: only verified pairs reach them.
"""

from __future__ import annotations

from typing import Any, Iterator


from ..audio import DecodeRequest
from ..audiopass.source import row_dict
from ..audiopass.steps import SIDES, Batch, PairJob, PairResult
from ..errors import AudioError
from .config import VerifyConfig
from .fingerprint import CHROMAPRINT_SR_HZ, Fingerprint, fingerprint_signal
from .rules import compare_pairs
from .session import VerifySession


class VerifyStep:
    """The per-pair part of verify (picklable: holds the config)."""

    name = "verify"

    def __init__(self, config: VerifyConfig):
        self.config = config
        self.product_request = DecodeRequest(CHROMAPRINT_SR_HZ, max_seconds=config.max_seconds,
                                             min_seconds=config.min_seconds, max_duration_s=config.max_duration_s)

    def requests(self, job: PairJob, side: str) -> list[DecodeRequest]:
        return [] if job.products.get(side) is not None else [self.product_request]

    def make_product(self, path: str, got: Any) -> Fingerprint | str:
        """A file's fingerprint from its decode, or the reason there is none."""
        if isinstance(got, AudioError):
            return str(got)
        y, info = got
        try:
            return fingerprint_signal(y, source_sr_hz=info.source_sr_hz, channels=info.channels)
        except AudioError as exc:
            return str(AudioError(f"{path}: {exc}"))

    def run(self, job: PairJob, audio: dict[str, dict], result: PairResult) -> dict | None:
        """The pair's verify record; None when a file gave no fingerprint (`result.file_errors` says why)."""
        fps = {}
        for side in SIDES:
            path = job.paths[side]
            fp = job.products.get(side) or result.products.get(path)
            if fp is None and path not in result.file_errors:
                fp = self.make_product(path, audio[side][self.product_request])
                if isinstance(fp, str):
                    result.file_errors[path] = fp
                    fp = None
                else:
                    result.products[path] = fp
                    result.decoded_audio_s += fp.duration_s
            fps[side] = fp
        if fps["mix"] is None or fps["version"] is None:
            return None
        delta = float(job.data.get("duration_delta_s") or 0.0)
        kind = str(job.data.get("version_kind") or "instrumental").strip().lower()
        return compare_pairs([(job.row, delta)], [fps["mix"]], [fps["version"]], self.config, [kind])[0]

    def passes(self, outcome: dict | None) -> bool:
        return outcome is not None and outcome.get("status") == "verified"


class _Candidates:
    """The candidates of a verify session, batch by batch, as the pass reads them."""

    def __init__(self, session: VerifySession):
        self.session = session
        self.n = session.n
        self.base_dir = session.base_dir

    def batches(self) -> Iterator[Batch]:
        for start, frame in self.session.batches():
            yield Batch(start, [row_dict(r) for r in frame.to_dict("records")], frame)



class VerifyClient:
    """verify's session in the audio pass (the first step of a pass that reads candidates)."""

    label = "verify"

    def __init__(self, session: VerifySession):
        self.session = session
        self.config = session.config
        self.step = VerifyStep(session.config)
        self.audio_root = session.config.audio_root
        self.timings = session.timings
        self.pairs_per_task = session.config.pairs_per_task
        self.file_step_name = "fingerprint"
        self._records: list[dict] = []

    def task_step_name(self, decoding: bool) -> str:
        return "fingerprint_and_compare" if decoding else "compare"

    # -- the first step of a pass
    def source(self) -> _Candidates:
        return _Candidates(self.session)

    def lookup(self, jobs: list[PairJob]) -> tuple[dict[str, Fingerprint], list[str]]:
        return self.session.lookup([p for j in jobs for p in (j.paths["mix"], j.paths["version"])])

    def store_products(self, fps: dict[str, Fingerprint]) -> None:
        with self.timings.step("cache_write"):
            self.session.cache.append(self.session.cache_records(fps))

    def file_failed(self, path: str, reason: str) -> None:
        self.session.file_errors.setdefault(path, reason)

    def product_seconds(self, fp: Fingerprint) -> float:
        return fp.duration_s

    def early_outcome(self, job: PairJob) -> dict | None:
        """The error record of a pair whose path or file already failed (it gets no task)."""
        e = job.path_errors
        return self.session.error_result(job.row, job.paths["mix"], e.get("mix"), job.paths["version"],
                                         e.get("version"))

    # -- every step
    def wants(self, job: PairJob) -> bool:
        return True

    def cost(self, job: PairJob) -> int:
        return 0

    def deliver(self, job: PairJob, outcome: dict | None) -> None:
        if outcome is None:  # a file failed in the task: the reason is in file_errors
            e = job.path_errors
            outcome = self.session.error_result(job.row, job.paths["mix"], e.get("mix"), job.paths["version"],
                                                e.get("version"))
        self._records.append(outcome)

    def end_batch(self, batch: Batch, stats: dict) -> None:
        records, self._records = self._records, []
        self.session.batch_done(batch.start, batch.frame, {"results": records, "cached": 0, **stats})

    # -- the end of the pass
    def close(self) -> None:
        self.session.close_cache()

    def abort(self) -> None:
        self.session.abort()

    def cleanup(self) -> None:
        self.session.remove_tmp_cache()

    def input_summary(self, results: dict) -> tuple[str, int]:
        """(the verified table the later steps read, its rows)."""
        return results["verify"].verified_path, self.session.n

    def finish(self, scheduler: str, first: Any, results: dict) -> Any:
        return self.session.finish(scheduler)
