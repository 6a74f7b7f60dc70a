"""Report objects: dict-backed, JSON out, rendered as HTML in notebooks."""

from __future__ import annotations

import html
import json
from typing import Any, Dict, Iterator, List, NamedTuple, Optional

_COLOURS = {
    "pass": "#1a7f37",
    "ok": "#1a7f37",
    "same": "#1a7f37",
    "differ": "#9a6700",
    "incompatible": "#cf222e",
    "review": "#9a6700",
    "warn": "#9a6700",
    "warning": "#9a6700",
    "block": "#cf222e",
    "fail": "#cf222e",
    "error": "#cf222e",
    "blocked": "#cf222e",
}


def _badge(verdict: Any) -> str:
    v = str(verdict).lower()
    c = _COLOURS.get(v, "#57606a")
    return (
        f'<span style="background:{c};color:#fff;border-radius:4px;padding:1px 6px;'
        f'font-weight:600;font-size:0.85em">{html.escape(v.upper())}</span>'
    )


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return _e(x)


def _table(headers: List[str], rows: List[List[str]]) -> str:
    th = "".join(f'<th style="text-align:left;padding:2px 8px">{_e(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="padding:2px 8px;vertical-align:top">{c}</td>' for c in r) + "</tr>"
        for r in rows
    )
    return f'<table style="border-collapse:collapse"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


class Report:
    """A report as memlane's Rust core produced it: ``report.data`` is the dict (the same
    JSON the CLI prints with ``--json``); keys are also readable as ``report["key"]``;
    ``str(report)`` is the CLI's text where the core renders one."""

    def __init__(self, data: Dict[str, Any], text: Optional[str] = None) -> None:
        self.data = data
        self.text = text

    def __str__(self) -> str:
        return self.text if self.text is not None else self.to_json()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.data, indent=indent)

    def __repr__(self) -> str:
        """The report's scalar fields and the size of its lists, never cut mid-value
        (``str()`` gives the whole text, ``.data`` the whole dict)."""
        parts = []
        for k, v in self.data.items():
            if isinstance(v, (str, int, float, bool)) or v is None:
                parts.append(f"{k}={v!r}")
            elif isinstance(v, (list, dict)):
                parts.append(f"{k}=<{len(v)} {'items' if isinstance(v, list) else 'keys'}>")
            if len(parts) == 8:
                parts.append("...")
                break
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_html_(self) -> str:  # pragma: no cover - overridden
        return f"<pre>{_e(self.to_json())}</pre>"


class Plan(Report):
    """What an apply would do: migrations and steps, lint findings, embedders needed."""

    @property
    def migrations(self) -> List[Dict[str, Any]]:
        return self.data["migrations"]

    @property
    def findings(self) -> List[Dict[str, Any]]:
        return self.data["findings"]

    @property
    def embedders(self) -> List[str]:
        return self.data["embedders"]

    @property
    def blocked(self) -> bool:
        """Whether a lint finding is an error (apply would refuse)."""
        return any(str(f.get("level")).lower() == "error" for f in self.findings)

    def _repr_html_(self) -> str:
        rows = []
        for m in self.migrations:
            for i, s in enumerate(m.get("steps", [])):
                rows.append([_e(m.get("file")) if i == 0 else "", _e(s.get("op")), _e(s.get("description"))])
        out = [
            f"<b>memlane plan</b> against version {_e(self.data['version'])} "
            f"({_e(self.data['rows'])} rows, {_e(self.data['applied'])} applied, "
            f"{len(self.migrations)} pending) {_badge('block' if self.blocked else 'pass')}",
            _table(["migration", "op", "what it does"], rows),
        ]
        if self.findings:
            out.append(
                _table(
                    ["level", "code", "finding"],
                    [[_badge(f.get("level")), _e(f.get("code")), _e(f.get("message"))] for f in self.findings],
                )
            )
        if self.embedders:
            out.append(f"embedders needed: {_e(', '.join(self.embedders))}")
        return "<div>" + "<br>".join(out) + "</div>"


def _checks(step: Dict[str, Any]) -> List[Dict[str, Any]]:
    c = step.get("compat")
    return [c] if c else []


class ApplyReport(Report):
    """What an apply did: per migration and step, rows, durations, invariants, gates."""

    @property
    def migrations(self) -> List[Dict[str, Any]]:
        return self.data["migrations"]

    @property
    def steps(self) -> List[Dict[str, Any]]:
        return [s for m in self.migrations for s in m.get("steps", [])]

    @property
    def compat_checks(self) -> List[Dict[str, Any]]:
        """The compatibility checks of the re-embeds (metrics, gates, verdict, adapter)."""
        return [c for s in self.steps for c in _checks(s)]

    @property
    def ok(self) -> bool:
        return all(str(m.get("outcome")) != "blocked" for m in self.migrations)

    def _repr_html_(self) -> str:
        rows = []
        for m in self.migrations:
            for s in m.get("steps", []):
                inv = "".join(
                    f"<div>{_badge('pass' if i['passed'] else i.get('severity', 'fail'))} {_e(i['name'])}: "
                    f"{_e(i['failed'])} of {_e(i['total'])} failed</div>"
                    for i in s.get("invariants", [])
                )
                rows.append(
                    [
                        _e(m["file"]),
                        _e(s["op"]),
                        f"{_e(s['rows_before'])} → {_e(s['rows_after'])}",
                        _e(s["rows_written"]),
                        f"{_e(s['duration_ms'])} ms",
                        inv,
                    ]
                )
        out = [
            f"<b>memlane apply</b>: version {_e(self.data['version_before'])} → "
            f"{_e(self.data['version_after'])}{' (dry run)' if self.data.get('dry_run') else ''} "
            f"{_badge('pass' if self.ok else 'block')}",
            _table(["migration", "op", "rows", "written", "time", "invariants"], rows),
        ]
        ctx = self.context
        if ctx:
            # a measure, not a verdict: the gates and invariants above decide
            kept = ctx["context_kept"]
            nb = ctx.get("neighbours_kept")
            out.append(
                f"<b>context kept</b> {kept * 100:.1f}%: {_e(ctx['records_lost'])} of "
                f"{_e(ctx['records_before'])} records lost, {_e(ctx['content_changed'])} with changed content"
                + (f"; {nb * 100:.1f}% of {_e(ctx['k'])} nearest neighbours kept on {_e(ctx['sample'])} records "
                   f"({_e(ctx['space_before'])} → {_e(ctx['space_after'])})" if nb is not None else "")
            )
        for c in self.compat_checks:
            out.append(_compat_check_html(c))
        return "<div>" + "<br>".join(out) + "</div>"

    @property
    def context(self) -> Optional[Dict[str, Any]]:
        """How much context the apply lost: records lost, content changed, neighbours kept."""
        return self.data.get("context")

    def plot(self, ax: Any = None) -> Any:
        """The gated compatibility metrics of the re-embeds against their thresholds
        (matplotlib bar chart, coloured by verdict). Returns the figure."""
        import matplotlib.pyplot as plt  # type: ignore[import-untyped]

        gates = [(c["to"], g) for c in self.compat_checks for g in c.get("gates", [])]
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(gates) + 2), 3.5))
        else:
            fig = ax.figure
        labels = [f"{to}: {g['metric']}" for to, g in gates]
        values = [g.get("value") or 0.0 for _, g in gates]
        colours = [_COLOURS.get(str(g.get("verdict")), "#57606a") for _, g in gates]
        ax.bar(range(len(values)), values, color=colours)
        for i, (_, g) in enumerate(gates):
            for key, style in (("review_below", ":"), ("block_below", "--")):
                t = g.get("thresholds", {}).get(key)
                if t is not None:
                    ax.hlines(t, i - 0.4, i + 0.4, colors="#24292f", linestyles=style)
        ax.set_xticks(range(len(values)), labels, rotation=20, ha="right")
        ax.set_title("compatibility gates (dotted: review below, dashed: block below)")
        fig.tight_layout()
        return fig


def _compat_check_html(c: Dict[str, Any]) -> str:
    gates = [
        [
            _e(g.get("metric")),
            _num(g.get("value")),
            _num(g.get("thresholds", {}).get("review_below")),
            _num(g.get("thresholds", {}).get("block_below")),
            _badge(g.get("verdict")),
        ]
        for g in c.get("gates", [])
    ]
    metrics = [[_e(k), _num(v)] for k, v in sorted(c.get("metrics", {}).items())]
    appr = c.get("approval")
    approval = f"<br>approved by {_e(appr['by'])} at {_e(appr['at'])}: {_e(appr['reason'])}" if appr else ""
    return (
        f"<b>compatibility</b> {_e(c['from'])} → {_e(c['to'])} on {_e(c['sample'])} rows (k={_e(c['k'])}) "
        f"{_badge(c['verdict'])}<br>{_e(c.get('adapter_summary'))}{approval}"
        + (_table(["gate", "value", "review below", "block below", "verdict"], gates) if gates else "")
        + "<details><summary>metrics</summary>"
        + _table(["metric", "value"], metrics)
        + "</details>"
    )


class CompatReport(Report):
    """Neighbourhood overlap / recall with baselines, CKA, Procrustes, norms, adapter fit."""

    @property
    def metrics(self) -> Dict[str, float]:
        return self.data["metrics"]

    def _repr_html_(self) -> str:
        d = self.data
        rows = [
            ["overlap@k (Jaccard)", _num(d["overlap"]["mean"]), _num(d["overlap"]["baseline"])],
            ["recall@k of old neighbours", _num(d["recall"]["mean"]), _num(d["recall"]["baseline"])],
            ["linear CKA", _num(d["cka"]), ""],
            ["Procrustes mean cosine", _num(d["procrustes"].get("mean_cosine")), ""],
            ["Procrustes residual", _num(d["procrustes"].get("residual")), ""],
        ]
        r = d.get("retrieval")
        if r:
            rows.append(["retrieval recall old / new", f"{_num(r['old_recall'])} / {_num(r['new_recall'])}", ""])
        a = d.get("adapter")
        adapter = f"<br>adapter: {_e(a.get('summary') or a.get('chosen'))}" if a else ""
        return (
            f"<b>memlane compat</b> on {_e(d['n'])} paired rows, k={_e(d['k'])}, "
            f"{_e(d['old_dim'])}-d → {_e(d['new_dim'])}-d; suggested mode <b>{_e(d['suggested_mode'])}</b>"
            + _table(["metric", "value", "shuffled baseline"], rows)
            + adapter
        )

    def plot(self, ax: Any = None) -> Any:
        """Histograms of per-row neighbour overlap and of the vector norms, old vs new
        (matplotlib). Returns the figure."""
        import matplotlib.pyplot as plt  # type: ignore[import-untyped]

        d = self.data
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        else:
            axes = ax
            fig = axes[0].figure
        ov = d["overlap"].get("per_row") or []
        axes[0].hist(ov, bins=20, range=(0, 1), color="#0969da")
        axes[0].axvline(d["overlap"]["baseline"], color="#cf222e", linestyle="--", label="shuffled baseline")
        axes[0].set_title(f"neighbour overlap@{d['k']} per record")
        axes[0].legend()
        for key, label, c in (("norms_old", "old", "#57606a"), ("norms_new", "new", "#1a7f37")):
            vals = d[key].get("per_row") or []
            if vals:
                axes[1].hist(vals, bins=30, alpha=0.6, label=label, color=c)
        axes[1].set_title("vector norms")
        axes[1].legend()
        fig.tight_layout()
        return fig


class History(Report):
    """Every version of the store with memlane's entry (action, migration, report)."""

    def __init__(self, data: List[Dict[str, Any]]) -> None:  # type: ignore[override]
        super().__init__({"versions": data})

    @property
    def versions(self) -> List[Dict[str, Any]]:
        return self.data["versions"]

    def __repr__(self) -> str:
        v = self.versions
        if not v:
            return "History(0 versions)"
        last = v[-1]
        action = (last.get("entry") or {}).get("action", last.get("operation"))
        return f"History({len(v)} versions, latest v{last['version']}: {action} at {last['timestamp']})"

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)

    def _repr_html_(self) -> str:
        rows = []
        for v in self.versions:
            e = v.get("entry") or {}
            rows.append(
                [
                    _e(v["version"]),
                    _e(v["timestamp"]),
                    _e(e.get("action", v["operation"])),
                    _e(e.get("file") or ""),
                    _e(e.get("reason") or ""),
                    _e(", ".join(v.get("tags", []))),
                ]
            )
        return "<b>memlane history</b>" + _table(["version", "time", "action", "migration", "note", "tags"], rows)


class Status(Report):
    """Where the store stands, including a re-embed's phase, progress, rate, ETA and lag."""

    def _repr_html_(self) -> str:
        d = self.data
        rows = [["version", _e(d["version"])], ["rows", _e(d["rows"])], ["active space", _e(d["active_space"])]]
        for s in d.get("spaces", []):
            rows.append(["space", _e(f"{s['name']} ({s.get('model') or '?'}, {s['dimension']}-d {s['metric']})")])
        r = d.get("reembed")
        if r:
            rows.append(
                [
                    "re-embed",
                    _e(
                        f"{r['phase']} of `{r['space']}`: {r['percent']:.1f}%, {r['rows_per_sec']:.0f} rows/s, "
                        f"lag {r['remaining']} rows"
                    ),
                ]
            )
        if d.get("lock"):
            rows.append(["lock", _e(d["lock"].get("holder"))])
        return "<b>memlane status</b>" + _table(["", ""], rows)


class VerifyReport(Report):
    """State-vs-data checks; ``report.ok`` is False when any failed."""

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))

    def _repr_html_(self) -> str:
        rows = [
            [_badge("pass" if c.get("ok") else "fail"), _e(c.get("name")), _e(c.get("message") or c.get("detail"))]
            for c in self.data.get("checks", [])
        ]
        return f"<b>memlane verify</b> {_badge('pass' if self.ok else 'fail')}" + _table(["", "check", ""], rows)


class Rehearsal(Report):
    """A rehearsal on a branch: ``outcome`` is ``pass``, ``review``, ``blocked`` or
    ``failed``; ``report`` is the apply report on the branch (an :class:`ApplyReport`),
    with the duration and embedder cost, extrapolated when the branch was sampled."""

    @property
    def outcome(self) -> str:
        return str(self.data["outcome"])

    @property
    def ok(self) -> bool:
        return self.outcome == "pass"

    @property
    def report(self) -> Optional["ApplyReport"]:
        r = self.data.get("report")
        return None if r is None else ApplyReport(r, "")

    def _repr_html_(self) -> str:
        d = self.data
        badge = {"pass": "pass", "review": "review"}.get(self.outcome, "block")
        rows = [
            ["store", _e(f"{d['store']} (version {d['store_version']}, unchanged)")],
            ["branch", _e(f"{d['branch']} ({'kept' if d['kept'] else 'deleted'})")],
            ["rows", _e(f"{d['rows_rehearsed']} of {d['rows']}")],
            ["duration", _e(f"{d['duration_ms'] / 1000:.1f} s")],
        ]
        if d.get("estimated_full_ms") is not None:
            rows.append(["estimated, whole store", _e(f"{d['estimated_full_ms'] / 1000:.1f} s")])
        if d.get("embedder"):
            rows.append(["embedder", _e(json.dumps(d["embedder"]))])
        if d.get("error"):
            rows.append(["error", _e(d["error"])])
        out = f"<b>memlane rehearsal</b> {_badge(badge)}" + _table(["", ""], rows)
        rep = self.report
        return out + (rep._repr_html_() if rep is not None else "")


class PromoteReport(Report):
    """A branch promoted into its store (:meth:`Store.promote`): ``commits`` replayed,
    ``migrations`` now applied, ``version_before`` -> ``version``."""

    @property
    def ok(self) -> bool:
        return True

    @property
    def version(self) -> int:
        return int(self.data["version"])

    @property
    def migrations(self) -> List[str]:
        return [str(m) for m in self.data["migrations"]]

    def _repr_html_(self) -> str:
        d = self.data
        rows = [
            ["store", _e(f"{d['store']}: v{d['version_before']} -> v{d['version']}")],
            ["branch", _e(f"{d['branch']} (branched at v{d['branched_at']}, its v{d['branch_version']})")],
            ["commits replayed", _e(str(d["commits"]) + (" (resumed)" if d["resumed"] else ""))],
            ["files copied", _e(f"{d['files_copied']} ({d['bytes_copied']} bytes)")],
            ["migrations", _e(", ".join(d["migrations"]) or "none")],
        ]
        return f"<b>memlane branch promote</b> {_badge('pass')}" + _table(["", ""], rows)


class StoreDiff(Report):
    """Two stores compared (:func:`memlane.diff`): ``verdict`` is ``same``, ``differ``
    or ``incompatible``; ``reasons`` says why; ``spaces``, ``records``, ``migrations``
    and ``schema`` hold the details."""

    @property
    def verdict(self) -> str:
        return str(self.data["verdict"])

    @property
    def same(self) -> bool:
        return self.verdict == "same"

    @property
    def reasons(self) -> List[str]:
        return list(self.data.get("reasons", []))

    @property
    def spaces(self) -> List[Dict[str, Any]]:
        return self.data["spaces"]

    @property
    def records(self) -> Dict[str, Any]:
        return self.data["records"]

    def _repr_html_(self) -> str:
        badge = self.verdict
        a, b = self.data["a"], self.data["b"]
        head = (
            f"<b>memlane diff</b> {_badge(badge)} A: {_e(a['uri'])} (v{_e(a['version'])}, {_e(a['rows'])} rows) · "
            f"B: {_e(b['uri'])} (v{_e(b['version'])}, {_e(b['rows'])} rows)"
        )
        reasons = _table(["why"], [[_e(r)] for r in self.reasons]) if self.reasons else ""
        spaces = _table(
            ["space", "A", "B", "same records' cosine", "drift MMD²"],
            [
                [_e(s["name"]), _e(s.get("a")), _e(s.get("b")), _e(s.get("paired_cosine")), _e(s.get("mmd2"))]
                for s in self.spaces
            ],
        )
        return head + reasons + spaces


class ValidateReport(Report):
    """Every data check on one version; ``report.ok`` is False when a ``fail`` check failed."""

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))

    @property
    def results(self) -> List[Dict[str, Any]]:
        return self.data["results"]

    def failed(self) -> List[Dict[str, Any]]:
        """The checks that did not hold (warnings included)."""
        return [r for r in self.results if not r["passed"]]

    def _repr_html_(self) -> str:
        rows = [
            [
                _badge("pass" if r["passed"] else r["severity"]),
                _e(r["name"]),
                f"{_e(r['failed'])} / {_e(r['total'])}",
                _e(r["message"]),
                _e(", ".join(r.get("sample_ids", []))),
            ]
            for r in self.results
        ]
        return (
            f"<b>memlane validate</b> version {_e(self.data['version'])} {_badge('pass' if self.ok else 'fail')}"
            + _table(["", "check", "failed", "", "sample ids"], rows)
        )


class Review(Report):
    """The review of a folder's pending migrations on an exported sample (what the browser
    preview shows and ``memlane review`` prints): ``review.verdict`` is ``pass``,
    ``review`` or ``block``; ``review.steps`` holds each re-embed's compatibility check."""

    @property
    def verdict(self) -> str:
        return str(self.data["verdict"])

    @property
    def reasons(self) -> List[str]:
        return list(self.data.get("reasons", []))

    @property
    def steps(self) -> List[Dict[str, Any]]:
        return self.data["steps"]

    @property
    def invariants(self) -> List[Dict[str, Any]]:
        return self.data["invariants"]

    @property
    def plan(self) -> Plan:
        return Plan(self.data["plan"])

    def _repr_html_(self) -> str:
        parts = [f"<b>memlane review</b> {_badge(self.verdict)}"]
        if self.reasons:
            parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in self.reasons) + "</ul>")
        for s in self.steps:
            c = s.get("check")
            title = f"{_e(s['file'])} step {s['step'] + 1}: {_e(s['op'])} <code>{_e(s['from'])}</code> &rarr; <code>{_e(s['to'])}</code>"
            if not c:
                parts.append(f"<p>{title}: {_e(s.get('note'))}</p>")
                continue
            rows = [[_badge(g["verdict"]), _e(g["metric"]), _num(g["value"]), _e(g["message"])] for g in c["gates"]]
            parts.append(f"<p>{title} {_badge(c['verdict'])}</p>" + _table(["", "gate", "value", ""], rows))
        rows = [
            [_badge("pass" if r["passed"] else r["severity"]), _e(r["name"]), f"{_e(r['failed'])} / {_e(r['total'])}", _e(r["message"])]
            for r in self.invariants
        ]
        parts.append(_table(["", "invariant (sample)", "failed", ""], rows))
        return "".join(parts)


class Hit(NamedTuple):
    """One search result: record id, its content, distance in the space's metric."""

    id: str
    content: Optional[str]
    distance: float
