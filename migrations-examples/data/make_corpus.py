#!/usr/bin/env python3
"""Build corpus.jsonl: a small, real text corpus from Python 3.11 standard-library docstrings.

Each record is one public function, class or method of a standard-library module; its
text is the first paragraph of the docstring (a leading call-signature line is skipped),
with whitespace collapsed. Every other field is derived deterministically from the
record id, so running this script again with CPython 3.11 on Linux reproduces the file
byte for byte:

    python3 migrations-examples/data/make_corpus.py            # writes corpus.jsonl beside it
    python3 migrations-examples/data/make_corpus.py --check    # exits 1 if the file differs

Docstrings change between Python versions, so other versions are refused.
"""

import datetime
import hashlib
import importlib
import inspect
import json
import re
import sys
import warnings
from pathlib import Path

MODULES = [
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "contextlib",
    "csv", "dataclasses", "datetime", "difflib", "email", "enum", "functools", "heapq",
    "http", "http.client", "ipaddress", "itertools", "json", "logging", "math", "os",
    "pathlib", "pprint", "queue", "random", "re", "secrets", "shlex", "shutil", "sqlite3",
    "statistics", "string", "subprocess", "tempfile", "textwrap", "threading", "typing",
    "urllib.parse", "uuid", "zipfile",
]
PER_MODULE = 11          # at most this many records per module
MIN_LEN, MAX_LEN = 40, 600
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")
OUT = Path(__file__).resolve().parent / "corpus.jsonl"


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def first_paragraph(doc):
    """First paragraph of a docstring, whitespace collapsed; skips a signature line."""
    if not isinstance(doc, str):
        return None
    paras = [" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n")]
    paras = [p for p in paras if p]
    if paras and SIGNATURE.match(paras[0]):
        paras = paras[1:]
    return paras[0] if paras else None


def owned(obj, modname):
    """Whether `obj` is defined by `modname` (or its C accelerator `_modname`)."""
    om = getattr(obj, "__module__", None) or ""
    base = modname.split(".")[-1]
    return om == modname or om.startswith(modname + ".") or om == "_" + base


def candidates(modname):
    """(id, text, is_method) for the module's public functions, classes and methods."""
    mod = importlib.import_module(modname)
    out = []
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if not owned(obj, modname):
            continue
        out.append((f"{modname}.{name}", first_paragraph(obj.__doc__), False))
        if inspect.isclass(obj):
            for mname, meth in sorted(vars(obj).items()):
                if mname.startswith("_"):
                    continue
                if isinstance(meth, (staticmethod, classmethod)):
                    meth = meth.__func__
                if not inspect.isroutine(meth):
                    continue
                out.append((f"{modname}.{name}.{mname}", first_paragraph(meth.__doc__), True))
    return out


def build():
    seen_ids, seen_text, picked = set(), set(), []
    for modname in MODULES:
        pool = []
        for rid, text, is_method in candidates(modname):
            if not text or not MIN_LEN <= len(text) <= MAX_LEN:
                continue
            if rid in seen_ids or text in seen_text:
                continue
            seen_ids.add(rid)
            seen_text.add(text)
            pool.append((is_method, digest(rid), rid, text))
        # top-level functions and classes first, then methods; hash order within each
        pool.sort()
        picked.extend((rid, text, modname) for _, _, rid, text in pool[:PER_MODULE])
    picked.sort()
    lines = []
    for i, (rid, text, modname) in enumerate(picked):
        h = digest(rid)
        k = h[0] % 100
        kind = "semantic" if k < 70 else "procedural" if k < 82 else "episodic" if k < 94 else "message"
        created = START + datetime.timedelta(hours=i)
        rec = {
            "id": rid,
            "content": text,
            "kind": kind,
            "agent_id": "docs-agent",
            "user_id": f"u{h[1] % 5 + 1}",
            "session_id": f"s{modname}",
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": "expired" if h[2] % 20 == 0 else "active",
            "source": modname,
        }
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def main():
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"make_corpus.py needs CPython 3.11 (docstrings differ between versions); this is {sys.version.split()[0]}")
    warnings.simplefilter("ignore")
    text = build()
    if "--check" in sys.argv[1:]:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.name}: {'up to date' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10))} records, {len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
