"""`memlane apply --metrics-addr`: the Prometheus endpoint scraped during a real apply
(a throttled re-embed of 6000 rows) and parsed with prometheus_client's text-format
parser; the values move the way the apply does (rows embedded only grow, the phase names
the backfill while it runs) and the last scrape, after the apply ended, equals the
report: rows embedded, commits, steps, the gate verdict, invariant failures."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from test_interop import ROOT, memlane_bin, store_with_old_space

parser = pytest.importorskip("prometheus_client.parser")



def scrape(url: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "store"))
            out[(s.name, labels)] = s.value
    return out


def value(m: Dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in m, f"{key} not in {sorted(m)}"
    return m[key]


def test_metrics_endpoint_during_a_real_apply(tmp_path: Path) -> None:
    # a slow re-embed: 2000 rows a second, so the backfill is seen in flight
    store, folder = store_with_old_space(tmp_path, 6000, 1000, throttle=2000)
    p = subprocess.Popen(
        [memlane_bin(), "--json", "apply", str(store), str(folder), "--yes", "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "3"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = p.stderr.readline() if p.stderr else ""
    assert line.startswith("metrics: http://"), line
    url = line.split()[1]
    scrapes: List[Dict] = []
    while True:
        try:
            scrapes.append(scrape(url))
        except (urllib.error.URLError, ConnectionError):
            if p.poll() is not None:
                break
        time.sleep(0.05)
    out, err = p.communicate()
    assert p.returncode == 0, err
    report = json.loads(out)
    assert len(scrapes) > 3

    embedded = [value(m, "memlane_rows_embedded_total") for m in scrapes]
    assert embedded == sorted(embedded), "rows embedded went down"
    in_flight = [
        m for m in scrapes
        if 0 < value(m, "memlane_rows_embedded_total") < 6000
        and any(k[0] == "memlane_phase" and ("phase", "backfill") in k[1] for k in m)
    ]
    assert in_flight, "no scrape saw the backfill in flight"
    mid = in_flight[len(in_flight) // 2]
    assert value(mid, "memlane_backfill_remaining_rows") + value(mid, "memlane_rows_embedded_total") <= 6000
    assert value(mid, "memlane_rows_per_second") > 0

    # the last scrape came after the apply ended: it equals the report
    last = scrapes[-1]
    steps = report["migrations"][0]["steps"]
    reembed = steps[1]
    assert value(last, "memlane_rows_embedded_total") == reembed["rows_written"] == 6000
    assert value(last, "memlane_commits_total") == len(steps) + reembed["backfill"]["commits"]
    assert value(last, "memlane_commit_conflicts_total") == reembed["backfill"]["conflicts"]
    assert value(last, "memlane_steps_completed_total") == len(steps)
    assert value(last, "memlane_gate_verdicts_total", verdict=reembed["compat"]["verdict"]) == 1
    assert value(last, "memlane_invariant_failures_total", severity="fail") == 0
    assert value(last, "memlane_backfill_remaining_rows") == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prom_query(base: str, q: str) -> List[Dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is installed by `make deps-system`")
def test_a_prometheus_server_scrapes_an_apply(tmp_path: Path) -> None:
    """Debian's Prometheus 2.42 scrapes `apply --metrics-addr` every 200 ms while a
    throttled re-embed runs; its query API then holds the series the report gives."""
    store, folder = store_with_old_space(tmp_path, 4000, 500, throttle=1000)
    target = free_port()
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n"
        f"scrape_configs:\n  - job_name: memlane\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
    )
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{web}"
    # Prometheus scraping first (its target down until the apply starts), so it sees the
    # whole run: its scrape manager picks targets up a few seconds after it is ready
    for _ in range(600):
        try:
            if prom_query(base, 'up{job="memlane"}'):
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        assert prom.poll() is None, "prometheus exited"
        time.sleep(0.1)
    apply = subprocess.Popen(
        [memlane_bin(), "--json", "apply", str(store), str(folder), "--yes", "--metrics-addr", f"127.0.0.1:{target}", "--metrics-linger", "120"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # until Prometheus holds the apply's end (it lingers with its values up), bounded
        final: List[Dict] = []
        for _ in range(1200):
            try:
                final = prom_query(base, "memlane_rows_embedded_total")
                done = prom_query(base, "memlane_steps_completed_total")
            except (urllib.error.URLError, ConnectionError):
                final, done = [], []
            if done and float(done[0]["value"][1]) == 2:
                break
            assert apply.poll() is None, apply.stderr.read() if apply.stderr else ""
            time.sleep(0.1)
        assert final and float(final[0]["value"][1]) == 4000, final
        assert final[0]["metric"]["job"] == "memlane"
        assert float(prom_query(base, 'up{job="memlane"}')[0]["value"][1]) == 1
        # the series Prometheus stored climbed while the backfill ran
        seen = prom_query(base, "count_over_time(memlane_rows_embedded_total[10m])")
        assert float(seen[0]["value"][1]) >= 2
        low = prom_query(base, "min_over_time(memlane_rows_embedded_total[10m])")
        assert float(low[0]["value"][1]) < 4000
        steps = prom_query(base, "memlane_steps_completed_total")
        assert float(steps[0]["value"][1]) == 2
        fails = prom_query(base, 'memlane_invariant_failures_total{severity="fail"}')
        assert float(fails[0]["value"][1]) == 0
    finally:
        prom.terminate()
        apply.terminate()
        prom.wait(timeout=30)
        apply.wait(timeout=30)
