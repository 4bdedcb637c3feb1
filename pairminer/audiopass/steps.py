"""The records the audio pass hands around, and what a step of the pass is.

A step (verify, targets, stems) is two small objects:

* a **step** (`Step`), shipped to the Dask tasks: which audio it needs of each side of a pair
  (`requests`), a pure per-pair function (`run`) and whether the later steps get the pair (`passes`);
* a **client** (`StepClient`), on the client: the stage's session (its outputs, counts and report).
  It says which pairs it wants (`wants`), what a pair costs in memory (`cost`), takes each pair's
  outcome in row order (`deliver`) and writes the stage's outputs at the end (`finish`).

The first step of a pass also says where the rows come from (`source`) and what a pair that never
reaches a task becomes (`early_outcome`: a path that cannot be resolved, a file that failed before).
A step whose per-pair work needs only a product of each file (verify: a fingerprint) names it
(`product_request`, `make_product`) and a cache of them (`lookup`, `store_products`); the pass then
decodes such files once per run and, when no later step needs the audio, in file tasks of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

SIDES = ("mix", "version")


@dataclass
class PairJob:
    """One pair, as the pair task sees it.

    Attributes:
        row: the pair's row number in the pass's input table.
        pair_id: its pair_id.
        data: the input row as plain Python values (NaN -> None).
        paths: side ("mix", "version") -> resolved local path or URL.
        products: side -> the first step's file product already known (a cached fingerprint), or None.
        wanted: names of the later steps that want this pair if the steps before it pass it.
        path_errors: side -> why its path cannot be used (None when it resolved).
        early: the first step's outcome when the pair never reaches a task (set on the client).
    """

    row: int
    pair_id: str
    data: dict
    paths: dict[str, str | None]
    products: dict[str, Any] = field(default_factory=dict)
    wanted: tuple[str, ...] = ()
    path_errors: dict[str, str | None] = field(default_factory=dict)
    early: Any = None


@dataclass
class PairResult:
    """What one pair task returns: each step's outcome and what it learnt about the files.

    Attributes:
        outcomes: step name -> its outcome, for the steps that ran (in order; a step that did not pass
            the pair ends the list).
        products: path -> file product made in this task (new fingerprints for the cache).
        file_errors: path -> why the file gave no product.
        decode_s: seconds this task spent (decoding and the steps).
        decoded_audio_s: seconds of audio decoded for products.
    """

    outcomes: dict[str, Any] = field(default_factory=dict)
    products: dict[str, Any] = field(default_factory=dict)
    file_errors: dict[str, str] = field(default_factory=dict)
    decode_s: float = 0.0
    decoded_audio_s: float = 0.0


@dataclass
class FileResult:
    """What a file task returns for one file: its product, or why there is none."""

    path: str
    product: Any = None
    error: str | None = None
    decode_s: float = 0.0


@dataclass
class Batch:
    """Rows of the pass's input read together: `rows[i]` is row `start + i`; `frame` is the raw table."""

    start: int
    rows: list[dict]
    frame: Any = None


class Step(Protocol):
    """The per-pair part of a stage, shipped to the tasks (holds its config only)."""

    name: str

    def requests(self, job: PairJob, side: str) -> list:
        """The `DecodeRequest`s this step needs of `side` of `job` (empty: none)."""

    def run(self, job: PairJob, audio: dict[str, dict], result: PairResult) -> Any:
        """The pair's outcome, from `audio[side][request]` ((y, AudioInfo) or an AudioError) and the
        earlier steps' outcomes in `result.outcomes`. Never raises on bad audio."""

    def passes(self, outcome: Any) -> bool:
        """Whether the later steps get this pair."""


class StepClient(Protocol):
    """The client side of a step: its stage session."""

    step: Step
    label: str

    def wants(self, job: PairJob) -> bool:
        """Whether this step should make the pair if the earlier steps pass it (no counting)."""

    def cost(self, job: PairJob) -> int:
        """Memory units the pair's outcome holds until it is delivered (e.g. STFT frames)."""

    def deliver(self, job: PairJob, outcome: Any) -> None:
        """Take one pair's outcome (in row order); `outcome` is None when the pair reached this step
        but its task made nothing for it (the step did not want it)."""


class PairLedger:
    """What a later step's session knows of pair_ids: done in an earlier run, seen in this one.

    The session sets `done_ids` (pairs in its outputs already) and starts `skipped`, `failures` and
    `_seen` empty; `wanted` counts each delivered pair once as made, skipped or a duplicate.
    """

    done_ids: set[str]
    skipped: int
    failures: list[dict[str, str]]
    _seen: set[str]

    def might_want(self, pair_id: str) -> bool:
        """Whether the pair is still to make (not in the outputs); counts nothing."""
        return str(pair_id) not in self.done_ids

    def wanted(self, pair_id: str) -> bool | None:
        """True: make this pair; False: already made (counted as skipped); None: a duplicate (a failure)."""
        pid = str(pair_id)
        if pid in self.done_ids:
            self.skipped += 1
            return False
        if pid in self._seen:
            self.failures.append({"pair_id": pid, "reason": "duplicate pair_id in the input; only its first row is used"})
            return None
        self._seen.add(pid)
        return True


class LaterStepClient:
    """The client of a step that follows the first one (targets, stems): counts what it is given, hands
    each wanted pair's outcome to its session (`add`), and finishes the session with the pairs seen."""

    label = ""
    pairs_per_task = 1
    file_step_name = "decode"

    def __init__(self, session: Any, step: Any, capacity: int):
        self.session = session
        self.config = session.config
        self.step = step
        self.audio_root = session.config.audio_root
        self.timings = session.timings
        self.capacity = capacity
        self.seen_ids: set[str] = set()  # pairs delivered to this step (verified in this pass)
        self.n_seen = 0

    def task_step_name(self, decoding: bool) -> str:
        return "tasks"

    def wants(self, job: PairJob) -> bool:
        return self.session.might_want(job.pair_id)

    def cost(self, job: PairJob) -> int:
        return 0

    def add(self, job: PairJob, outcome: Any) -> None:
        """Hand a wanted pair's outcome (None: not computed) to the session."""
        raise NotImplementedError

    def deliver(self, job: PairJob, outcome: Any) -> None:
        self.n_seen += 1
        self.seen_ids.add(job.pair_id)
        if self.session.wanted(job.pair_id):
            self.add(job, outcome)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def cleanup(self) -> None:
        pass

    def finish(self, scheduler: str, first: Any, results: dict) -> Any:
        verified_path, rows_in = first.input_summary(results)
        self.session.drop_stale(self.seen_ids)  # the pairs verified now are known only now
        return self.session.finish(verified_path, self.n_seen, rows_in, scheduler)

