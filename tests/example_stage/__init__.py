"""The worked example of docs/architecture.md, "Add a stage": `tally` counts the candidate pairs per kind.

It is a stage package like pairminer/verify/: a light config.py, a stage.py with the run function and
its schema (tally.schema.json; a real stage keeps it in schemas/). tests/core/test_example_stage.py adds it
to the registry with one entry and checks it behaves like every built-in stage.
"""
