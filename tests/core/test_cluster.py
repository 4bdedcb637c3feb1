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
    import distributed

    monkeypatch.setattr("pairminer.parallel.CONNECT_TIMEOUT_S", 2.0)
    clients = []
    monkeypatch.setattr(distributed, "Client", lambda *a, **k: clients.append(a) or pytest.fail("Client made"))
    srv, addr = _server(behaviour)
    try:
        with pytest.raises(InputError, match=match):
            with dask_runner(addr, progress=False):
                pass
    finally:
        srv.close()
    assert clients == []  # refused by the one probe, before distributed's own connect-and-retry loop


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

    wf = os.path.join(os.path.dirname(__file__), "..", "..", "workflows", "cluster-local.yaml")
    for name, sched in (("cluster", cluster.scheduler_address), ("local", "threads")):
        res = CliRunner().invoke(main, ["run", wf, "-o", str(tmp_path / name), "--scheduler", sched, "-q"])
        assert res.exit_code == 0, res.output + (res.stderr or "")
    for f in ("candidates.parquet", "rejects.parquet", "verified.parquet"):
        a, b = pd.read_parquet(tmp_path / "local" / f), pd.read_parquet(tmp_path / "cluster" / f)
        pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_parquet(tmp_path / "local" / "verified.parquet")) > 5


# --------------------------------------------------------------------------- round three #1, #11: progress on a
# cluster, schedulers without workers, schedulers that freeze after the client connected


def _cluster_workflow(tmp_path, scheduler, stages):
    import yaml

    sample = os.path.join(os.path.dirname(__file__), "..", "..", "data", "sample", "catalog.csv")
    doc = {"catalog": os.path.abspath(sample), "out": str(tmp_path / "out"), "scheduler": scheduler,
           "stages": stages, "discover": {"kinds": ["instrumental"], "partition_rows": 1000},
           "verify": {"min_overlap_s": 6.0, "max_seconds": None}}
    p = tmp_path / "wf.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_stages_on_a_cluster_with_progress_on(cluster, tmp_path):
    """Round three #1: every stage with progress on (the default in a terminal, and `targets` even with -q)
    ran into `unexpected ValueError: No clients found` on a tcp:// scheduler."""
    from click.testing import CliRunner

    from pairminer.cli import main

    wf = _cluster_workflow(tmp_path, cluster.scheduler_address, ["discover", "verify", "targets"])
    res = CliRunner().invoke(main, ["run", str(wf)])  # progress on: discover, then verify+targets in one pass
    assert res.exit_code == 0, res.output + (res.stderr or "")
    assert "No clients found" not in res.output + (res.stderr or "")
    out = tmp_path / "out"
    assert len(pd.read_parquet(out / "targets" / "manifest.parquet")) > 0
    # each stage alone, progress on, and targets with -q
    for args in (["verify", str(out / "candidates.parquet"), "-o", str(tmp_path / "v")],
                 ["targets", str(out / "verified.parquet"), "-o", str(tmp_path / "t1")],
                 ["targets", str(out / "verified.parquet"), "-o", str(tmp_path / "t2"), "-q"]):
        res = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
        assert res.exit_code == 0, (args, res.output + (res.stderr or ""))
    a = pd.read_parquet(tmp_path / "t2" / "manifest.parquet")
    assert len(a) == len(pd.read_parquet(out / "targets" / "manifest.parquet"))


def test_a_scheduler_without_workers_says_so_and_gives_up(tmp_path, monkeypatch, caplog):
    """Round three #1/#11: a scheduler with no workers used to hang with no message."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PAIRMINER_WORKER_TIMEOUT_S", "2")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=":0",
                                  silence_logs=40) as c:
        with caplog.at_level("WARNING", logger="pairminer.parallel"):
            with pytest.raises(InputError, match="no workers after waiting 2 s.*PAIRMINER_WORKER_TIMEOUT_S"):
                with dask_runner(c.scheduler_address, progress=True):
                    pass
    assert any("waiting for 1 worker" in r.getMessage() for r in caplog.records)


def test_worker_timeout_setting_is_checked(monkeypatch):
    from pairminer.parallel import worker_timeout_s

    monkeypatch.setenv("PAIRMINER_WORKER_TIMEOUT_S", "-1")
    with pytest.raises(ConfigError, match="positive number"):
        worker_timeout_s()
    monkeypatch.setenv("PAIRMINER_WORKER_TIMEOUT_S", "600")
    assert worker_timeout_s() == 600.0


def _spawn(args, tmp_path, name):
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_scheduler_that_freezes_after_connecting_fails_with_a_reason(tmp_path, monkeypatch):
    """Round three #11: a scheduler that stops answering once pairminer is connected (SIGSTOP here) used to
    hang the run forever; now the liveness check fails it with a reason."""
    import json
    import signal

    import dask

    pytest.importorskip("distributed")
    sfile = tmp_path / "scheduler.json"
    sched = _spawn(["distributed.cli.dask_scheduler", "--port", "0", "--host", "127.0.0.1", "--dashboard-address",
                    ":0", "--scheduler-file", str(sfile)], tmp_path, "scheduler")
    worker = None
    try:
        for _ in range(300):
            if sfile.exists() and sfile.stat().st_size:
                break
            time.sleep(0.1)
        addr = json.loads(sfile.read_text())["address"]
        worker = _spawn(["distributed.cli.dask_worker", addr, "--nthreads", "1", "--no-nanny"], tmp_path, "worker")
        monkeypatch.setattr("pairminer.parallel.CONNECT_TIMEOUT_S", 3.0)
        monkeypatch.setattr("pairminer.parallel.HEARTBEAT_S", 1.0)
        monkeypatch.setenv("PAIRMINER_WORKER_TIMEOUT_S", "60")
        with dask_runner(addr, progress=False) as runner:
            os.kill(sched.pid, signal.SIGSTOP)
            # a frozen scheduler never returns the result: only the liveness check can end this
            with pytest.raises(InputError, match="did not answer within 3 s"):
                runner.compute(dask.delayed(time.sleep)(120))
    finally:
        for p in (worker, sched):
            if p is not None:
                if p is sched:
                    os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait()
