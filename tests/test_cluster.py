"""Issue 15: discover on a real dask.distributed cluster (a LocalCluster of 2 worker processes).

The workers read the catalog themselves (the client process never reads a block, and the read tasks ran
on the workers); the output is identical to the local scheduler's; a worker killed in the middle of a
read loses no rows. Issue 17 #8: scheduler addresses are validated and a scheduler that accepts but never
answers (or answers with other bytes) fails fast with a reason.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import pandas as pd
import pytest

from pairminer.discover import catalog as catalog_mod
from pairminer.discover.stage import DiscoverConfig, run_discover
from pairminer.errors import ConfigError, InputError
from pairminer.parallel import check_scheduler, dask_runner
from pairminer.storage import read_json
from pairminer.testing import make_catalog, write_catalog_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env=env, silence_logs=40) as c:
        yield c


def _catalog(tmp_path, fmt):
    gen = make_catalog(6000, seed=3)
    df = gen.catalog.copy()
    df["duration"] = df["duration"].astype(str)
    df.loc[df.index[100], "duration"] = "abc"  # a reject in some block
    df.loc[df.index[4000], "track_id"] = df.loc[df.index[10], "track_id"]  # a duplicate id across blocks
    if fmt == "csv":
        p = tmp_path / "catalog.csv"
        write_catalog_csv(df, str(p))
    else:
        p = tmp_path / "ds"
        p.mkdir()
        df["duration"] = pd.to_numeric(df["duration"], errors="coerce")
        for k, chunk in enumerate(range(0, len(df), 2500)):
            df.iloc[chunk:chunk + 2500].to_parquet(p / f"part-{k}.parquet", row_group_size=1000, index=False)
    return p


def _outputs(out):
    c = pd.read_parquet(out / "candidates.parquet")
    r = pd.read_parquet(out / "rejects.parquet")
    return c, r, read_json(out / "discover-report.json")["counts"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_workers_read_the_catalog_and_output_is_identical(cluster, tmp_path, fmt, monkeypatch):
    from distributed import Client

    path = _catalog(tmp_path, fmt)
    cfg = DiscoverConfig(partition_rows=1000)
    run_discover(path, tmp_path / "local", cfg, scheduler="threads", progress=False)

    calls = []
    real = catalog_mod.read_block
    monkeypatch.setattr(catalog_mod, "read_block", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    with Client(cluster.scheduler_address) as probe:
        probe.get_task_stream()  # starts the scheduler's task stream
        t0 = time.time()
        run_discover(path, tmp_path / "cluster", cfg, scheduler=cluster.scheduler_address, progress=False)
        stream = probe.get_task_stream(start=t0)
    assert calls == []  # the client process read no block
    plan = catalog_mod.plan_catalog(path, partition_rows=1000)
    n_blocks = len(plan.blocks)
    assert n_blocks >= 5
    ran = {}
    for t in stream:
        ran.setdefault(t["key"].split("-")[0] if not t["key"].startswith("part-again") else "part-again", set()).add(
            t["worker"])
    assert {"scan", "part", "part-again"} <= set(ran)
    assert all(str(w).startswith("tcp://") for w in ran["scan"] | ran["part"] | ran["part-again"])
    keys = [t["key"] for t in stream]
    assert sum(k.startswith("scan-") for k in keys) == n_blocks  # one read task per block, on the workers
    a, b = _outputs(tmp_path / "local"), _outputs(tmp_path / "cluster")
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2]
    assert a[2]["rejected_by_reason"] == {"bad_duration": 1, "duplicate_track_id": 1}
    assert a[2]["rows_read"] == a[2]["rows_used"] + a[2]["rows_rejected"] and a[2]["kept"] > 20


class _KillOnce:
    """Worker plugin: the first worker to start `key` dies on the spot (os._exit), once."""

    name = "pairminer-kill-once"

    def __init__(self, key: str, marker: str):
        self.key, self.marker = key, marker

    def setup(self, worker):
        pass

    def teardown(self, worker):
        pass

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key) == self.key and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)


def test_worker_death_mid_read_loses_no_rows(cluster, tmp_path):
    import cloudpickle
    from distributed import Client
    from distributed.diagnostics.plugin import WorkerPlugin

    path = _catalog(tmp_path, "csv")
    cfg = DiscoverConfig(partition_rows=1000)
    run_discover(path, tmp_path / "local", cfg, scheduler="threads", progress=False)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    plugin = type("KillOnce", (_KillOnce, WorkerPlugin), {})("scan-2", str(tmp_path / "killed"))
    with Client(cluster.scheduler_address) as c:
        c.register_plugin(plugin)
        try:
            run_discover(path, tmp_path / "cluster", cfg, scheduler=cluster.scheduler_address, progress=False)
        finally:
            c.unregister_worker_plugin(plugin.name)
        c.wait_for_workers(2, timeout=60)
    assert os.path.exists(tmp_path / "killed")  # a worker did die mid-read
    a, b = _outputs(tmp_path / "local"), _outputs(tmp_path / "cluster")
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2] and b[2]["rows_read"] == b[2]["rows_used"] + b[2]["rows_rejected"]


# --------------------------------------------------------------------------- issue 17 #8: scheduler addresses


@pytest.mark.parametrize("spec,match", [
    ("tcp://", "host and port"), ("tcp://head", "host and port"), ("tcp://head:99999", "host and port"),
    ("tls://head:8786", "tls:// needs certificates"), ("ucx://head:8786", "not supported"),
    ("inproc://x", "not supported"), ("head:8786", "tcp://head:8786"), ("gpu", "unknown scheduler"),
])
def test_scheduler_addresses_are_validated(spec, match):
    with pytest.raises(ConfigError, match=match):
        check_scheduler(spec)


def _server(behaviour):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    conns = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conns.append(conn)
            if behaviour == "junk":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            elif behaviour == "close":
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, f"tcp://127.0.0.1:{srv.getsockname()[1]}"


@pytest.mark.parametrize("behaviour,match", [
    ("silent", "accepts connections but does not answer"),
    ("junk", "not a Dask scheduler"),
    ("close", "closed the connection"),
])
def test_bad_schedulers_fail_fast_with_a_reason(monkeypatch, behaviour, match):
    monkeypatch.setattr("pairminer.parallel.CONNECT_TIMEOUT_S", 2.0)
    srv, addr = _server(behaviour)
    t0 = time.monotonic()
    try:
        with pytest.raises(InputError, match=match):
            with dask_runner(addr, progress=False):
                pass
    finally:
        srv.close()
    assert time.monotonic() - t0 < 10


def test_nothing_listening_is_a_clean_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        with dask_runner(f"tcp://127.0.0.1:{port}", progress=False):
            pass


def test_cli_bad_scheduler_is_one_line(tmp_path):
    from click.testing import CliRunner

    from pairminer.cli import main

    p = tmp_path / "c.csv"
    p.write_text("track_id,artist,title,duration\na,A,S,100\n")
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(tmp_path / "o"), "--until", "discover", "-q",
                                    "--scheduler", "tls://head:8786"])
    assert res.exit_code == 2 and "Traceback" not in res.output + res.stderr
    assert res.stderr.strip().startswith("error: ") and "tls://" in res.stderr


def test_example_cluster_workflow_runs_on_the_cluster(cluster, tmp_path):
    """workflows/cluster-local.yaml (the README's example) runs as written on a 2-worker cluster, and
    gives the same discover and verify outputs as the local scheduler."""
    from click.testing import CliRunner

    from pairminer.cli import main

    wf = os.path.join(os.path.dirname(__file__), "..", "workflows", "cluster-local.yaml")
    for name, sched in (("cluster", cluster.scheduler_address), ("local", "threads")):
        res = CliRunner().invoke(main, ["run", wf, "-o", str(tmp_path / name), "--scheduler", sched, "-q"])
        assert res.exit_code == 0, res.output + (res.stderr or "")
    for f in ("candidates.parquet", "rejects.parquet", "verified.parquet"):
        a, b = pd.read_parquet(tmp_path / "local" / f), pd.read_parquet(tmp_path / "cluster" / f)
        pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_parquet(tmp_path / "local" / "verified.parquet")) > 5
