"""The bench's machinery at tiny counts: the drain sweep (real dramatiq workers, foodapp and
plain Dramatiq, two prefetches, and the 2-process run), plain Dramatiq's batch baselines,
Sidekiq's drain with its CPU a job, and the record of a run (latest.json, history.jsonl,
ratios.svg, the docs table).

Structure only: rows present, ratios positive, the history appended, the SVG well-formed.
No timing is asserted (timings belong to `make bench`).
"""
import json
import xml.etree.ElementTree as ET

import dramatiq
import dramatiq.broker
import pytest

from tests.servers import RedisServer

pytestmark = pytest.mark.e2e

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def bench_env(monkeypatch):
    """bench.run sets these variables and Dramatiq's global broker: put them back afterwards."""
    for name in ("FOODAPP_REDIS_URL", "BENCH_REDIS_URL"):
        monkeypatch.setenv(name, "redis://127.0.0.1:1/0")
    saved = dramatiq.broker.global_broker
    yield
    dramatiq.broker.global_broker = saved


def test_drain_sweep_and_record(tmp_path, bench_env):
    from bench import history, run

    details = {}
    rows = run.drain_rows(str(tmp_path), jobs=300, prefetches=[None, 32], details=details)
    assert [r["key"] for r in rows] == ["drain_best", "drain_cpu", "drain_default", "rss", "drain_scales",
                                        "drain_scales_plain", "drain_scales_cores"]
    for r in rows:
        assert r["foodapp"] > 0 and r["baseline_value"] > 0 and r["ratio"] > 0, r
        assert r["figure"] and r["baseline"]
    assert "prefetch" in rows[0]["figure"] and "prefetch" in rows[0]["baseline"]
    for kind in ("foodapp", "plain"):
        # 2 processes ÷ 1: both measured afresh, in as many rounds each.
        tries = details["drain_scaling"][kind]
        assert len(tries["1 process"]) == len(tries["2 processes"]) == run.SCALE_ROUNDS
        assert all(v > 0 for v in tries["1 process"] + tries["2 processes"])
        # What bounds the scaling: the cores the 2-process drain kept busy, and the cores 1.7
        # times the 1-process rate would take at the same CPU a job (1.7 x best 1 ÷ best 2).
        cores = tries["cores"]
        assert cores["busy"] > 0 and cores["cpu_us"] > 0
        assert cores["needed"] == pytest.approx(
            1.7 * max(tries["1 process"]) / max(tries["2 processes"]) * cores["busy"], rel=0.05)
        assert set(details["drain_sweep"][kind]) == {"default (8)", "32"}
        assert all(v > 0 for v in details["drain_sweep"][kind].values())
        # CPU counted both sides: the worker's processes and redis-server each did some work.
        assert details["drain_cpu_us"][kind]["worker"] > 0 and details["drain_cpu_us"][kind]["redis"] > 0

    results = tmp_path / "results"
    doc = tmp_path / "bench.md"
    doc.write_text("# Benchmarks\n\n<!-- table -->\nold\n<!-- /table -->\n\nafter\n")
    machine = run.machine_description(1.0)
    run.record(rows, machine, details, results=results, doc=doc)
    run.record(rows, machine, details, results=results, doc=None)

    latest = json.loads((results / "latest.json").read_text())
    assert [r["key"] for r in latest["rows"]] == [r["key"] for r in rows]
    entries = history.load(results / "history.jsonl")
    assert len(entries) == 2
    for entry in entries:
        assert entry["timestamp"].endswith("Z") and entry["commit"] and entry["machine"]["cpus"]
        assert [r["key"] for r in entry["rows"]] == [r["key"] for r in rows]
        assert all(r["ratio"] > 0 for r in entry["rows"])
    text = doc.read_text()
    assert "old" not in text and text.endswith("<!-- /table -->\n\nafter\n")
    assert "| drain scales:" in text and "drain sweep, plain" in text and "drain scaling, foodapp" in text

    svg = ET.parse(results / "ratios.svg").getroot()
    assert svg.tag == f"{SVG}svg"
    targeted = [r for r in rows if r["met"] is not None]
    assert len(svg.findall(f"{SVG}polyline")) == len(targeted)  # two runs: a line per targeted figure
    assert len(svg.findall(f"{SVG}circle")) == 2 * len(targeted)


def test_plain_batch_ways(tmp_path, bench_env):
    from bench import run

    server = RedisServer(tmp_path).start()
    try:
        found = run.plain_batch(server.url, 0.3, max_batches=20)
    finally:
        server.stop()
    assert set(found) == {"group(...).run()", "its enqueue pipelined (one round trip)"}
    assert all(v > 0 for v in found.values())


def test_sidekiq_drain_counts_its_cpu_a_job(tmp_path):
    from bench import others

    if not others.SIDEKIQ:
        pytest.skip("no `sidekiq` command: apt-get install ruby-sidekiq (`make bench` does, as root)")
    cpu = {}
    assert others.drain_sidekiq(str(tmp_path), 200, concurrency=2, cpu=cpu) > 0
    assert set(cpu) == {"worker", "redis"} and all(v > 0 for v in cpu.values()), cpu


def test_sidekiq_idle_pickup_is_timed_from_before_the_push(tmp_path):
    from bench import others

    if not others.SIDEKIQ:
        pytest.skip("no `sidekiq` command: apt-get install ruby-sidekiq (`make bench` does, as root)")
    p50, p99, most, push = others.latency_sidekiq(str(tmp_path), 12)
    # Each delay includes the push, which is timed on its own too.
    assert 0 < push and 0 < p50 <= p99 <= most


def test_the_pickup_floor_is_sidekiqs_pickup_and_the_enqueue_scripts_redis_time(bench_env, monkeypatch):
    from bench import run

    monkeypatch.setattr(run, "LATENCY_SAMPLES", 15)
    details = {}
    floor = run.pickup_floor_row(0.5, details)
    # Measured by a real worker, stage by stage: the message reached the worker, then ran.
    stages = details["pickup_stages_ms"]
    assert 0 < stages["fetched"] <= stages["runs"], stages
    enqueue_us = details["pickup_scripts_us"]["enqueue"]
    assert enqueue_us > 0 and {"fetch", "start"} <= set(details["pickup_scripts_us"])
    assert floor["foodapp"] == pytest.approx(0.5 + enqueue_us / 1000, abs=0.001)
    assert floor["baseline_value"] == 0.5 and floor["met"] is None


def test_chart_of_no_runs_and_one_run(tmp_path):
    from bench import history

    history.write_svg(tmp_path / "empty.svg", [])
    assert ET.parse(tmp_path / "empty.svg").getroot().tag == f"{SVG}svg"
    row = {"key": "k", "figure": "a <figure> & more", "foodapp": 2.0, "baseline": "b", "baseline_value": 1.0,
           "ratio": float("inf"), "target": ">= 1", "met": True}
    history.append(tmp_path / "h.jsonl", [row, {**row, "key": "j", "ratio": 3.0}], {"cpus": 2})
    entries = history.load(tmp_path / "h.jsonl")
    assert entries[0]["rows"][0]["ratio"] is None  # not a number JSON can hold
    history.write_svg(tmp_path / "one.svg", entries)
    root = ET.parse(tmp_path / "one.svg").getroot()
    assert len(root.findall(f"{SVG}circle")) == 1


def test_the_benchs_own_results_are_not_uncommitted_measured_code():
    # A run writes latest.json before it records itself: that alone must not mark the run
    # as made "with uncommitted changes". A change to measured code still does.
    from bench import history

    before = history.measured_changes()
    probes = [history.ROOT / "bench" / "results" / f".probe-{id(before)}",
              history.ROOT / "bench" / f".probe-{id(before)}.py"]
    try:
        probes[0].write_text("not measured code\n")
        assert history.measured_changes() == before
        probes[1].write_text("# measured code\n")
        assert f"bench/{probes[1].name}" in history.measured_changes()
    finally:
        for probe in probes:
            probe.unlink(missing_ok=True)
