"""OpenTelemetry export of an apply's spans: a collector stand-in on 127.0.0.1 receives
OTLP/HTTP requests, and each body is parsed strictly (unknown fields refused) into
opentelemetry-proto's `ExportTraceServiceRequest`, so the wire format is the one real
collectors read. Checked: the spans of every phase (apply, step, calibrate, backfill,
stage_and_check, commit) in one trace, each child inside its parent's time and linked to
it, the attributes and resource, the configured headers, a blocked step's status ERROR
with its message, and a collector that is down costing the apply nothing but a warning."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from test_interop import ROOT, memlane_bin, store_with_old_space

json_format = pytest.importorskip("google.protobuf.json_format")
trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")



def otlp_ids(body: Dict[str, Any]) -> Dict[str, Any]:
    """OTLP's JSON encoding writes trace and span ids as hex (proto3's JSON mapping would
    use base64): check the hex and its length, and hand protobuf the bytes as base64, the
    way a collector's OTLP JSON reader does."""
    sizes = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key, n in sizes.items():
                    h = span.get(key, "")
                    if key == "parentSpanId" and h == "":
                        continue
                    raw = bytes.fromhex(h)
                    assert len(raw) == n and any(raw), f"{key} {h!r}"
                    span[key] = base64.b64encode(raw).decode()
    return body


class Collector:
    """Keeps every POST to /v1/traces: (headers, parsed request)."""

    def __init__(self) -> None:
        self.requests: List[Tuple[Dict[str, str], Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                req = trace_service.ExportTraceServiceRequest()
                json_format.ParseDict(otlp_ids(body), req)  # strict: an unknown field raises
                collector.requests.append(({k.lower(): v for k, v in self.headers.items()}, req))
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> List[Any]:
        return [s for _, r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def attrs(kvs: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which)
    return out


def apply_with(env: Dict[str, str], *args: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [memlane_bin(), "--json", "apply", *map(str, args), "--yes"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_applys_spans_reach_an_otlp_collector(tmp_path: Path) -> None:
    store, folder = store_with_old_space(tmp_path, 3000, 1000)
    c = Collector()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": c.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=s3cr%20t,tenant=ml",
        "OTEL_SERVICE_NAME": "memory-deploy",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging",
    }
    p = apply_with(env, store, folder)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert c.requests, "no export reached the collector"
    headers, first = c.requests[0]
    assert headers["content-type"] == "application/json"
    assert headers["x-collector-token"] == "s3cr t" and headers["tenant"] == "ml"
    resource = attrs(first.resource_spans[0].resource.attributes)
    assert resource["service.name"] == "memory-deploy"
    assert resource["deployment.environment"] == "staging"

    spans = c.spans()
    names = [s.name for s in spans]
    for phase in ["apply", "step", "calibrate", "backfill", "stage_and_check", "commit"]:
        assert phase in names, f"{phase} missing from {sorted(set(names))}"
    assert len({s.trace_id for s in spans}) == 1, "one apply, one trace"
    by_id = {s.span_id: s for s in spans}
    (root,) = [s for s in spans if s.name == "apply"]
    assert root.parent_span_id == b""
    assert attrs(root.attributes)["version"] == report["version_after"]
    assert attrs(root.attributes)["store"] == str(store)
    for s in spans:
        assert s.start_time_unix_nano <= s.end_time_unix_nano
        if s is root:
            continue
        parent = by_id[s.parent_span_id]
        assert parent.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano <= parent.end_time_unix_nano
    steps = [s for s in spans if s.name == "step"]
    assert [attrs(s.attributes)["op"] for s in steps] == ["add_space", "reembed"]
    assert all(by_id[s.parent_span_id].name == "apply" for s in steps)
    reembed = [s for s in steps if attrs(s.attributes)["op"] == "reembed"][0]
    assert attrs(reembed.attributes)["rows_written"] == 3000
    assert {by_id[s.parent_span_id].name for s in spans if s.name == "backfill"} == {"step"}
    assert all(s.status.code == 0 for s in spans)


def test_a_blocked_step_ends_its_span_with_status_error(tmp_path: Path) -> None:
    store, folder = store_with_old_space(tmp_path, 3000, 1000)
    (folder / "0002_new_model.toml").unlink()
    (folder / "0002_purge.toml").write_text(
        "[[steps]]\nop = \"delete_where\"\npredicate = \"kind = 'episodic'\"\n\n[[invariants]]\ncheck = \"row_count\"\nmin = 2999\n"
    )
    c = Collector()
    p = apply_with({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c.url + "/v1/traces"}, store, folder)
    assert p.returncode == 3, p.stderr
    spans = c.spans()
    (step,) = [s for s in spans if s.name == "step"]
    assert step.status.code == 2 and "row_count" in step.status.message, step.status
    (root,) = [s for s in spans if s.name == "apply"]
    assert root.status.code == 2


def test_a_collector_that_is_down_costs_the_apply_a_warning(tmp_path: Path) -> None:
    store, folder = store_with_old_space(tmp_path, 3000, 1000)
    c = Collector()
    c.server.shutdown()
    c.server.server_close()
    p = apply_with({"OTEL_EXPORTER_OTLP_ENDPOINT": c.url, "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"}, store, folder)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["migrations"][0]["file"] == "0002_new_model.toml"
    assert "OpenTelemetry export to" in p.stderr and c.url in p.stderr, p.stderr


def test_a_collector_that_hangs_costs_the_apply_a_bounded_wait(tmp_path: Path) -> None:
    """A collector that accepts the connection and never answers: each export gives up
    after OTEL_EXPORTER_OTLP_TIMEOUT, the apply completes and says so on stderr."""
    import socket

    store, folder = store_with_old_space(tmp_path, 3000, 1000)
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)  # accepted by the kernel, never read nor answered
    try:
        url = f"http://127.0.0.1:{hang.getsockname()[1]}"
        p = apply_with({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}, store, folder)
    finally:
        hang.close()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["migrations"][0]["file"] == "0002_new_model.toml"
    assert "OpenTelemetry export to" in p.stderr and url in p.stderr, p.stderr
