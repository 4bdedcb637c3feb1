"""`pairminer listen`: a blinded, MUSHRA-style listening test of separated sources, and its aggregation.

* `build.build_test` samples tracks and excerpts, loudness-matches them, encodes them (Opus, else MP3)
  and writes one self-contained page (`listen.html`) and its key (`key.json`, never shown to raters).
* `collect.collect_ratings` checks raters' downloaded files against the key, screens raters with the
  hidden reference and the anchor, and writes the statistics, a plot and `listen-results.json`.
* `demo.demo_test` turns `make demo`'s output folder into a test: its model, the mixture and the oracle.

See docs/evaluation.md.
"""

PAGE_VERSION = 1
KEY_FORMAT = "pairminer-listen-key"
RATINGS_FORMAT = "pairminer-listen-ratings"
SOURCES = ("vocals", "instrumental")

# The seed's 1-7 scale (Jansson et al., ISMIR 2017): the wording of its two anchors, per source.
SCALE = {
    "vocals": {1: "poor, can hear instruments clearly", 7: "perfect, only vocals remain"},
    "instrumental": {1: "poor, can hear vocals clearly", 7: "perfect, only instruments remain"},
}
