"""`pairminer verify`: a few lines over pairminer.verify.stage.run_verify."""

from __future__ import annotations

import click

from . import main
from ._options import init_logging, quiet_verbose_options, scheduler_option


@main.command()
@click.argument("candidates", metavar="CANDIDATES")
@click.option("-o", "--out", "out_dir", required=True, help="Output folder (local or URL).")
@click.option("--audio-root", default=None, help="Rebase relative audio paths on this folder (default: the candidates' folder).")
@click.option("--min-ber", type=float, default=None, help="Below this BER the version is the mix itself (too_similar). [default: 0.10]")
@click.option("--max-ber", type=float, default=None, help="Above this BER the pair is not the same recording (too_different). [default: 0.41]")
@click.option("--max-ber-acapella", type=float, default=None, help="max-ber for acapellas. [default: 0.44]")
@click.option("--peak-check-ber", type=float, default=None,
              help="Pairs with a BER above this also need --min-peak-ratio. [default: 0.30]")
@click.option("--min-peak-ratio", type=float, default=None,
              help="Below this GCC-PHAT envelope peak ratio the pair is too_different. [default: 4]")
@click.option("--min-peak-ratio-acapella", type=float, default=None, help="min-peak-ratio for acapellas (0: not used). [default: 0]")
@click.option("--max-copy-excess-share", type=float, default=None,
              help="A low-BER version whose excess share is below this is the mix itself. [default: 0.0005]")
@click.option("--min-overlap-share", type=float, default=None,
              help="Minimum overlap as a share of the shorter track. [default: 0.5]")
@click.option("--max-offset-s", type=float, default=None, help="Cap of the offset search, seconds. [default: 120]")
@click.option("--max-duration-s", type=float, default=None,
              help="Longer files (from the header) are errors, not decoded. [default: 7200]")
@click.option("--min-overlap-s", type=float, default=None, help="Minimum overlap at the best offset, seconds. [default: 6]")
@click.option("--max-seconds", type=float, default=None, help="Fingerprint at most this many seconds of each file. [default: whole track]")
@click.option("--no-cache", is_flag=True, default=None, help="Do not read or keep cached fingerprints.")
@click.option("--cache-dir", default=None, help="Fingerprint cache folder. [default: OUT/fingerprint-cache]")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file with a verify: section; command-line options override it.")
@scheduler_option
@quiet_verbose_options
def verify(candidates, out_dir, audio_root, min_ber, max_ber, max_ber_acapella, peak_check_ber, min_peak_ratio,
           min_peak_ratio_acapella, max_copy_excess_share, min_overlap_share, max_offset_s, max_duration_s, min_overlap_s, max_seconds, no_cache, cache_dir,
           config_path, scheduler, quiet, verbose):
    """Check each candidate pair by listening: Chromaprint both files, align, classify.

    \b
    Writes OUT/verified.parquet (every candidate with status verified | too_similar |
    too_different | error, ber, offset_s, overlap_s, reason), OUT/verify-report.json and
    OUT/similarity.png. Example:
      pairminer verify OUT/candidates.parquet -o OUT
    """
    from pathlib import Path

    from ..verify.stage import VerifyConfig, run_verify

    init_logging(verbose, quiet)
    base = VerifyConfig.from_yaml(Path(config_path).read_text(encoding="utf-8")) if config_path else VerifyConfig()
    config = base.replace(audio_root=audio_root, min_ber=min_ber, max_ber=max_ber, max_ber_acapella=max_ber_acapella,
                          peak_check_ber=peak_check_ber, min_peak_ratio=min_peak_ratio, min_peak_ratio_acapella=min_peak_ratio_acapella,
                          max_copy_excess_share=max_copy_excess_share, min_overlap_share=min_overlap_share,
                          max_offset_s=max_offset_s, max_duration_s=max_duration_s, min_overlap_s=min_overlap_s,
                          max_seconds=max_seconds, no_cache=no_cache, cache_dir=cache_dir)
    r = run_verify(candidates, out_dir, config, scheduler=scheduler, progress=not quiet)
    click.echo(r.summary())
    click.echo(f"  {r.report_path}")
