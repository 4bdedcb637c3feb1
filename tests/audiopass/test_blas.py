"""A task's BLAS call and another task's decoder fork must not deadlock (OpenBLAS's pre-fork handler)."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np

from pairminer.audiopass import driver


def test_the_pass_runs_blas_on_one_thread():
    from threadpoolctl import threadpool_info

    driver.single_threaded_blas()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas)


def test_blas_calls_survive_forks_from_another_thread():
    """The race that hung the suite: dot products in one thread while another forks children."""
    code = r"""
import threading, numpy as np
from pairminer.audiopass.driver import single_threaded_blas
from pairminer.decoders import run_confined
single_threaded_blas()
stop = False
def forks():
    while not stop:
        run_confined(["true"], timeout_s=10, what="fork")
t = threading.Thread(target=forks); t.start()
a = np.random.default_rng(0).standard_normal(200_000)
for _ in range(3000):
    float(np.dot(a, a))
stop = True; t.join(); print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
