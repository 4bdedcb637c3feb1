"""The audit of what was mined: funnel, genre breakdown, hours of audio, plots and one HTML page.

`run_report(out_dir, report_dir, config)` reads whichever stage outputs exist in `out_dir`:

* discover: ``candidates.parquet``, ``rejects.parquet``, ``discover-report.json``
* verify:   ``verified.parquet``, ``verify-report.json``
* targets:  ``targets/manifest.parquet``, ``targets/targets-report.json``

and writes into `report_dir`: ``report.html`` (one self-contained page, images embedded),
``report.json`` (the same numbers, schema ``report``), ``genre_breakdown.csv`` / ``.parquet``
(schema ``genre-breakdown``) and one PNG per plot. A stage whose outputs are absent gets a section
saying it has not run; numbers are taken from the Parquet tables where present and from the stage's
JSON report otherwise.

Hours of audio of a set of pairs are always ``sum(mix_duration_s + version_duration_s) / 3600``:
both sides of every pair, since both are audio the pipeline decodes and keeps.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass

import pandas as pd

from .. import storage as pio
from ..errors import InputError
from ..runinfo import Timings, versions
from .clips import Listening, build_listening, examples
from .config import ReportConfig
from .funnel import build_funnel, format_funnel, funnel_checks, near_miss_summary
from .genres import (final_pairs, format_genre_table, genre_breakdown, genre_by_stage, genre_key, round_to_total,
                     split_genres, split_sizes)
from .html import render_html
from .load import StageOutputs, _stage_summary, load_outputs
from .plots import (plot_ber, plot_duration_delta, plot_funnel, plot_genres, plot_title_score,
                    plot_vocal_energy)

__all__ = ["ReportConfig", "ReportResult", "format_funnel", "format_genre_table", "genre_breakdown", "genre_key",
           "round_to_total", "run_report", "split_genres"]

log = logging.getLogger(__name__)

@dataclass
class ReportResult:
    """What `run_report` wrote and the numbers it found.

    Attributes:
        report_dir: The output folder.
        html_path, json_path: report.html and report.json.
        genre_csv_path, genre_parquet_path: The genre breakdown table.
        plot_paths: Plot name -> PNG path, for the plots that had data.
        stages_present: Stages whose outputs were found, in pipeline order.
        funnel: The funnel steps (dicts as in report.json).
        genre_table: The genre breakdown (columns of schemas/genre-breakdown.schema.json).
        genre_stage: Whose pairs the genre table counts (targets, verified or candidates), or None.
    """

    report_dir: str
    html_path: str
    json_path: str
    genre_csv_path: str
    genre_parquet_path: str
    plot_paths: dict[str, str]
    stages_present: tuple[str, ...]
    funnel: list[dict]
    genre_table: pd.DataFrame
    genre_stage: str | None
    listening: Listening | None = None


def _empty_numbers(empty: dict, config: ReportConfig, listening_cls) -> tuple:
    """The sections of a report of nothing (what a damaged section falls back to)."""
    funnel = build_funnel(empty)
    gpairs = pd.DataFrame({"genre": [], "pair_s": []})
    gtable = genre_breakdown(gpairs, top_n=config.top_n, mode=config.genre_mode,
                             separators=tuple(config.genre_separators), stage="candidates")
    return (funnel, funnel_checks(funnel), None, gtable,
            genre_by_stage(empty, top_n=config.top_n, mode=config.genre_mode,
                           separators=tuple(config.genre_separators)),
            split_sizes(empty), near_miss_summary(empty, config.near_miss_rows),
            build_listening(empty, "", config, progress=False), examples(empty, config.examples_per_status,
                                                                         config.example_seed))


def _valid_sections(doc: dict, empty_doc, errors: dict[str, str]) -> dict:
    """`doc` with each top-level section that breaks the report schema replaced by its empty form
    (recorded in `errors`), so that one damaged input costs its sections, not report.json."""
    import json

    from ..errors import SchemaError
    from ..schemas import json_schema

    schema = json_schema("report")
    clean = json.loads(json.dumps(pio._clean_floats(doc), default=pio._json_default))
    clean["timings_s"] = {}
    try:
        schema.validate(clean)
        return doc
    except SchemaError as exc:
        bad = {}
        for problem in exc.problems:
            key = problem.split("/", 1)[0].split(":", 1)[0]
            bad.setdefault(key, problem)
    fallback = empty_doc()
    for key, problem in bad.items():
        if key in fallback and key in doc:
            log.warning("report: section %s dropped, it does not fit the report schema: %s", key, problem)
            errors[key] = f"schema: {problem}"
            doc[key] = fallback[key]
    return doc


def run_report(
    out_dir: str,
    report_dir: str,
    config: ReportConfig | None = None,
    *,
    progress: bool = True,
) -> ReportResult:
    """Write the audit of `out_dir` into `report_dir`.

    Args:
        out_dir: The folder the pipeline stages wrote (local path or fsspec URL).
        report_dir: Where report.html, report.json, genre_breakdown.csv/.parquet and the PNGs go.
        config: ReportConfig (defaults when None).
        progress: Log each step at INFO level, and show the progress of the clips (pairminer.progress).

    Returns:
        ReportResult with the output paths and the numbers.

    Raises:
        InputError: `out_dir` does not exist or holds no pairminer output at all.
    """
    config = config or ReportConfig()
    timings = Timings()
    out_dir = str(out_dir)
    if not pio.exists(out_dir):
        raise InputError(f"{out_dir} does not exist; give the -o folder of `pairminer discover`")
    with timings.step("load"):
        stages = load_outputs(out_dir)
    if not any(so.present for so in stages.values()):
        probs = [p for so in stages.values() for p in so.problems]
        why = f" ({'; '.join(probs)})" if probs else ""
        raise InputError(f"{out_dir} holds no readable pairminer output (candidates.parquet, verified.parquet, "
                         f"targets/manifest.parquet or their JSON reports){why}; run `pairminer discover CATALOG "
                         f"-o {out_dir}` first or point at the right folder")
    say = log.info if progress else log.debug
    say("report: stages found in %s: %s", out_dir, ", ".join(s for s, so in stages.items() if so.present))

    # Each section is computed on its own: a damaged table (a manifest with null splits, a column of the
    # wrong type) costs the sections that read it, recorded in `section_errors`, never the whole report.
    errors: dict[str, str] = {}
    empty = {s: StageOutputs(s) for s in stages}

    def section(name: str, fn, *args, fallback=None, **kw):
        try:
            return fn(stages, *args, **kw)
        except Exception as exc:  # noqa: BLE001 - one section's failure is recorded, the report goes on
            log.warning("report: section %s skipped: %s: %s", name, type(exc).__name__, exc, exc_info=log.isEnabledFor(10))
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return fallback(empty, *args, **kw) if fallback is not None else fn(empty, *args, **kw)

    def _genres(st, cfg):
        gstage, gpairs = final_pairs(st)
        return gstage, genre_breakdown(gpairs if gpairs is not None else pd.DataFrame({"genre": [], "pair_s": []}),
                                       top_n=cfg.top_n, mode=cfg.genre_mode,
                                       separators=tuple(cfg.genre_separators), stage=gstage or "candidates")

    with timings.step("numbers"):
        funnel = section("funnel", build_funnel)
        checks = funnel_checks(funnel)
        for c in checks:
            if not c["ok"]:
                log.warning("counts do not add up: %s (%s)", c["name"], c["detail"])
        gstage, gtable = section("genre_breakdown", _genres, config)
        ex = section("examples", examples, config.examples_per_status, config.example_seed)
        by_stage = section("genre_by_stage", genre_by_stage, top_n=config.top_n, mode=config.genre_mode,
                           separators=tuple(config.genre_separators))
        splits = section("splits", split_sizes)
        near = section("near_misses", near_miss_summary, config.near_miss_rows)

    with timings.step("stems"):  # the stems stage's table: its own section, failing alone
        from . import stems as stems_section

        try:
            stems_doc = stems_section.summary(stems_section.load_stems(out_dir))
            stems_blobs = (stems_section.clips(out_dir, stems_doc, config.clip_s, config.clip_bitrate_kbps)
                           if config.clips_per_status > 0 else {})
            stems_png = stems_section.plot_cancellation(stems_doc)
        except Exception as exc:  # noqa: BLE001 - one section's failure is recorded, the report goes on
            log.warning("report: section stems skipped: %s: %s", type(exc).__name__, exc)
            errors["stems"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            stems_doc, stems_blobs, stems_png = None, {}, None

    from . import listen_results  # `pairminer listen --collect` results under OUT: their own section

    try:
        listen_docs = listen_results.find_results(out_dir)
    except Exception as exc:  # noqa: BLE001 - one section's failure is recorded, the report goes on
        errors["listen_results"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        listen_docs = []

    with timings.step("listening"):
        listening = section("listening", build_listening, out_dir, config, progress=progress)
        say("report: %d pair(s) with clips (%.1f MiB)%s", len(listening.blobs), listening.bytes_total / 2**20,
            f"; {listening.note}" if listening.note else "")

    def _plots(st):
        cands = st["discover"].tables.get("candidates")
        ver = st["verify"].tables.get("verified")
        man = st["targets"].tables.get("manifest")
        vconf = st["verify"].report.get("config")
        out = {}
        for name, make in (
                ("funnel", lambda: plot_funnel(funnel)),
                ("genre_breakdown", lambda: plot_genres(gtable, gstage) if gstage else None),
                ("duration_delta", lambda: plot_duration_delta(cands, config.hist_bins) if cands is not None else None),
                ("title_score", lambda: plot_title_score(cands, config.hist_bins) if cands is not None else None),
                ("ber_by_status", lambda: plot_ber(ver, config.hist_bins, vconf if isinstance(vconf, dict) else {})
                 if ver is not None else None),
                ("vocal_energy_ratio", lambda: plot_vocal_energy(man, config.hist_bins) if man is not None else None)):
            try:
                out[name] = make()
            except Exception as exc:  # noqa: BLE001 - one plot's failure costs that plot
                log.warning("report: plot %s skipped: %s: %s", name, type(exc).__name__, exc)
                errors[f"plot:{name}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                out[name] = None
        return out

    with timings.step("plots"):
        plots = _plots(stages)
        plots["stems_cancellation"] = stems_png

    with timings.step("write"):
        pio.ensure_dir(report_dir)
        paths = {name: pio.join(report_dir, f"{name}.png") for name, png in plots.items() if png}
        for name, path in paths.items():
            pio.write_bytes(path, plots[name])
        csv_path = pio.join(report_dir, "genre_breakdown.csv")
        pq_path = pio.join(report_dir, "genre_breakdown.parquet")
        pio.write_table(pq_path, gtable, "genre-breakdown")
        pio.write_bytes(csv_path, gtable.to_csv(index=False, float_format="%.6g").encode("utf-8"))

        def _doc(st, funnel, checks, gstage, gtable, by_stage, splits, near, listening, ex):
            return {
                "stage": "report",
                "out_dir": out_dir,
                "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": config.to_dict(),
                "versions": versions(),
                "stages": {s: _stage_summary(so) for s, so in st.items()},
                "funnel": funnel,
                "checks": checks,
                "genre_breakdown": {
                    "stage": gstage,
                    "mode": config.genre_mode,
                    "top_n": config.top_n,
                    "pairs_total": float(gtable["pairs"].sum()),
                    "hours_total": float(gtable["hours"].sum()),
                    "rows": gtable.drop(columns=["stage"]).to_dict("records"),
                },
                "genre_by_stage": by_stage.to_dict("records"),
                "splits": splits,
                "near_misses": near,
                "listening": listening.to_json(),
                "examples": ex,
                "plots": sorted(paths),
            }

        doc = _doc(stages, funnel, checks, gstage, gtable, by_stage, splits, near, listening, ex)
        doc["stems"] = stems_doc
        if listen_docs:
            doc["listen_results"] = listen_results.summary_json(listen_docs)
        doc = _valid_sections(doc, lambda: _doc(empty, *_empty_numbers(empty, config, listening_cls=Listening)),
                              errors)
        if errors:
            doc["section_errors"] = dict(errors)
        html_path = pio.join(report_dir, "report.html")
        json_path = pio.join(report_dir, "report.json")
        try:
            html = render_html(doc, plots, stages, gtable, listening)
        except Exception as exc:  # noqa: BLE001 - the page from the sections that held
            log.warning("report: the HTML page failed (%s: %s); writing it without the damaged tables",
                        type(exc).__name__, exc)
            errors["html"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            doc["section_errors"] = dict(errors)
            html = render_html(doc, plots, empty, gtable, listening)
        html = html.replace('<h2 id="listening">', stems_section.section_html(stems_doc, stems_blobs, stems_png)
                            + listen_results.section_html(listen_docs) + '<h2 id="listening">', 1)
        pio.write_bytes(html_path, html.encode("utf-8"))
        doc["timings_s"] = timings.to_dict()
        pio.write_json(json_path, doc, "report")
    if errors:
        log.warning("report: %d section(s) could not be made from damaged inputs: %s (see section_errors in %s)",
                    len(errors), ", ".join(sorted(errors)), json_path)
    say("report: wrote %s (%.1f s)", html_path, timings.total_s)
    return ReportResult(
        report_dir=str(report_dir),
        html_path=html_path,
        json_path=json_path,
        genre_csv_path=csv_path,
        genre_parquet_path=pq_path,
        plot_paths=paths,
        stages_present=tuple(s for s, so in stages.items() if so.present),
        funnel=funnel,
        genre_table=gtable,
        genre_stage=gstage,
        listening=listening,
    )

