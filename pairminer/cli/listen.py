"""`pairminer listen`: build a blinded listening test page, or (--collect) aggregate its ratings."""

from __future__ import annotations

import click

from . import main
from ._options import init_logging, quiet_verbose_options


@main.command()
@click.argument("paths", nargs=-1, metavar="SYSTEM_DIRS... | RATINGS...")
@click.option("-o", "--out", "out_dir", required=True,
              help="Folder for listen.html and key.json (with --collect: for the results).")
@click.option("--mix-dir", default=None, help="The mixes: <track>.wav or <track>/mixture.wav (the page's reference).")
@click.option("--references", default=None,
              help="Reference sources, <track>/{vocals,instrumental}.wav: the hidden reference of each trial.")
@click.option("--stems", default=None, help="Mined stems (OUT/stems): rated as the system 'mined stems'; their "
              "mixture.wav also serves as the mix.")
@click.option("--name", "names", multiple=True, help="A name per system folder, in order. [default: the folder names]")
@click.option("--mixture-system", is_flag=True, help="Also rate the unprocessed mix as the system 'mixture'.")
@click.option("--demo", "demo_out", default=None, metavar="OUT",
              help="Build the test from `make demo`'s folder (pairminer-out/demo): its model, the mixture and "
              "the oracle (the mined stems, as the hidden reference).")
@click.option("--source", "sources", type=click.Choice(["vocals", "instrumental", "both"]), default="both",
              show_default=True, help="The source(s) to rate.")
@click.option("--tracks", type=int, default=8, show_default=True, help="Tracks to sample.")
@click.option("--excerpt-s", type=float, default=10.0, show_default=True, help="Excerpt length in seconds (1-60).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the tracks, excerpts, sample order and ids (and, with --collect, the bootstrap).")
@click.option("--max-mb", type=float, default=25.0, show_default=True,
              help="Size cap of the page in MiB; tracks over it are left out and the page says so.")
@click.option("--bitrate-kbps", type=int, default=64, show_default=True, help="Opus bitrate (MP3: twice this).")
@click.option("--target-lufs", type=float, default=-23.0, show_default=True, help="Loudness of every excerpt.")
@click.option("--no-anchor", is_flag=True, help="Leave out the low anchor (the low-passed mix).")
@click.option("--anchor-hz", type=float, default=3500.0, show_default=True, help="The low anchor's cut-off.")
@click.option("--no-hidden-reference", is_flag=True, help="Leave out the hidden reference.")
@click.option("--title", default="Listening test", show_default=True, help="The page's title.")
@click.option("--collect", is_flag=True, help="Aggregate raters' files (the arguments) instead of building a test.")
@click.option("--test", "test_dir", default=None, help="With --collect: the test's folder (or its key.json).")
@click.option("--ref-min", type=int, default=6, show_default=True,
              help="With --collect: a hidden-reference rating below this is low.")
@click.option("--anchor-max", type=int, default=3, show_default=True,
              help="With --collect: an anchor rating above this is high.")
@click.option("--screen-share", type=float, default=0.15, show_default=True,
              help="With --collect: drop a rater with more than this share of low reference / high anchor ratings.")
@click.option("--bootstrap", type=int, default=2000, show_default=True, help="With --collect: bootstrap resamples.")
@click.option("--device", default="cpu", show_default=True, help="With --demo: where the model separates.")
@quiet_verbose_options
def listen(paths, out_dir, mix_dir, references, stems, names, mixture_system, demo_out, sources, tracks, excerpt_s,
           seed, max_mb, bitrate_kbps, target_lufs, no_anchor, anchor_hz, no_hidden_reference, title, collect,
           test_dir, ref_min, anchor_max, screen_share, bootstrap, device, quiet, verbose):
    """A blinded listening test of separated sources (the seed's 1-7 scale, MUSHRA-style controls).

    \b
    Build a test: one self-contained page (listen.html, works offline) and its key (key.json):
      pairminer listen separated/modelA separated/modelB --mix-dir mixes --references refs -o test
      pairminer listen --demo pairminer-out/demo -o test        # make demo's model vs mixture vs oracle
    Give test/listen.html to raters; each downloads a ratings file (JSON or CSV). Then:
      pairminer listen --collect ratings/*.json --test test -o results
    writes listen-results.json, ratings.csv and listen-results.png (docs/evaluation.md).
    """
    init_logging(verbose, quiet)
    from ..errors import ConfigError

    if collect:
        from ..listen.collect import collect_ratings
        from ..listen.config import CollectConfig

        if demo_out or mix_dir or references or stems:
            raise ConfigError("--collect takes ratings files and --test; --demo, --mix-dir, --references and "
                              "--stems belong to building a test")
        if not test_dir:
            raise ConfigError("--collect needs --test, the folder that `pairminer listen` wrote (with key.json)")
        res = collect_ratings(list(paths), test_dir, out_dir,
                              CollectConfig(ref_min=ref_min, anchor_max=anchor_max, screen_share=screen_share,
                                            bootstrap=bootstrap, seed=seed))
        click.echo(res.summary())
        if not res.doc["counts"]["files_used"]:
            raise click.exceptions.Exit(1)
        return
    from ..listen.config import ListenConfig

    cfg = ListenConfig(seed=seed, tracks=tracks, excerpt_s=excerpt_s, max_mb=max_mb, bitrate_kbps=bitrate_kbps,
                       target_lufs=target_lufs, anchor=not no_anchor, anchor_hz=anchor_hz,
                       hidden_reference=not no_hidden_reference, mixture_system=mixture_system,
                       sources=("vocals", "instrumental") if sources == "both" else (sources,))
    if demo_out:
        if paths or mix_dir or references or stems:
            raise ConfigError("--demo takes the demo's folder alone; drop the other inputs")
        from ..listen.demo import demo_test

        res = demo_test(demo_out, out_dir, cfg, device=device, progress=not quiet)
    else:
        from ..listen.build import build_test

        res = build_test(list(paths), out_dir, cfg, names=list(names), mix_dir=mix_dir, references=references,
                         stems=stems, title=title, progress=not quiet)
    click.echo(res.summary())
