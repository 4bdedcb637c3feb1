"""The audio pass: one driver for every audio stage (verify, targets, stems) and any chain of them.

`driver.py` (AudioPass: batches, path resolution, file products, task groups, delivery in row
order), `steps.py` (what a step is; the typed records), `source.py` (verified.parquet's rows),
`run.py` (the configurations: one stage alone, or a chain in one pass).
"""
