"""Stems: turn an aligned (mix, instrumental/acapella) pair into vocal and accompaniment waveforms.

Pure numpy/scipy/soxr functions, no I/O and no Dask. The entry point is
`pairminer.stems.align.subtract_pair`; `lag` measures lag, polarity and clock drift, `matchfilter`
fits and applies the frequency-dependent matching filter, `grade` measures cancellation and holds the
spectral fallback. The method is described in docs/stems-method.md.
"""
