"""pairminer: mine (mix, instrumental) pairs from a music catalog for source-separation training.

The package root imports nothing heavy, so `pairminer.train` runs on machines that have only
torch, numpy, pandas and pyarrow.
"""

__version__ = "0.1.0"
