use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use memlane_store::memlane_core::{Action, Space};
use memlane_store::{CreateOptions, Store, StoreError};
use serde_json::json;

use crate::common::*;

fn space4() -> Space {
    Space::new("s4", 4).with_model("test", "m", "1")
}

#[tokio::test(flavor = "multi_thread")]
async fn create_add_search_history() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        spaces: vec![Space::new("h64", 64).with_normalized(true)],
        ..Default::default()
    };
    let emb = HashMap::from([("h64".to_owned(), hash(64, 0))]);
    let records = corpus();
    let (first, rest) = records.split_at(100);
    let mut store = Store::create_from_json(&uri(&dir, "s"), opts, first, &emb)
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 100);
    let r = store.add_json(rest, &emb).await.unwrap();
    assert_eq!((r.added, r.rows_after, r.embedded["h64"]), (292, 392, 292));

    // a record's own text finds it first
    let probe = records[150]["content"].as_str().unwrap();
    let q = hash(64, 0).embed(&[probe]).unwrap();
    let hits = store.search(None, &q, 3, None).await.unwrap();
    assert_eq!(hits[0].id, records[150]["id"].as_str().unwrap());
    assert!(hits[0].distance < 1e-4, "{hits:?}");
    let filtered = store
        .search(None, &q, 3, Some("kind = 'episodic'"))
        .await
        .unwrap();
    assert!(filtered.iter().all(|h| h.id != hits[0].id) || records[150]["kind"] == "episodic");

    let h = store.history().await.unwrap();
    let actions: Vec<Action> = h.iter().map(|i| i.entry.as_ref().unwrap().action).collect();
    assert_eq!(actions, vec![Action::Create, Action::Add]);
    assert_eq!(h[1].entry.as_ref().unwrap().rows, Some((100, 392)));

    // reopening reads the same state back from the commit
    let again = Store::open(store.uri()).await.unwrap();
    assert_eq!(again.state(), store.state());
    assert!(again.verify(None).await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_vectors_are_refused_and_nothing_lands() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        spaces: vec![space4()],
        ..Default::default()
    };
    let mut store = Store::create(&uri(&dir, "s"), opts, None, &none())
        .await
        .unwrap();
    store
        .add_json(
            &[json!({"id": "ok", "content": "x", "s4": [1.0, 0.0, 0.0, 0.0]})],
            &none(),
        )
        .await
        .unwrap();
    let v0 = store.version();

    let cases = [
        (
            json!({"id": "short", "s4": [1.0, 2.0, 3.0]}),
            vec!["short", "s4", "4", "3"],
        ),
        (
            json!({"id": "hole", "vec_s4": [1.0, null, 0.0, 0.0]}),
            vec!["hole", "s4", "null component"],
        ),
        (
            json!({"id": "zero", "s4": [0.0, 0.0, 0.0, 0.0]}),
            vec!["zero", "s4", "zero vector"],
        ),
        (
            json!({"id": "missing", "content": "no vector"}),
            vec!["missing", "s4"],
        ),
        (
            json!({"id": "ok", "s4": [0.0, 1.0, 0.0, 0.0]}),
            vec!["already exist", "ok"],
        ),
        (
            json!({"id": "x", "colour": "red", "s4": [0.0, 1.0, 0.0, 0.0]}),
            vec!["colour", "add_field"],
        ),
        (
            json!({"id": "k", "kind": "dream", "s4": [0.0, 1.0, 0.0, 0.0]}),
            vec!["dream", "semantic"],
        ),
    ];
    for (rec, needles) in cases {
        // a good record travels with the bad one: neither may land
        let batch = [
            json!({"id": "good", "s4": [0.5, 0.5, 0.5, 0.5]}),
            rec.clone(),
        ];
        let err = store
            .add_json(&batch, &none())
            .await
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(err.contains(n), "{rec}: `{err}` lacks `{n}`");
        }
        store.refresh().await.unwrap();
        assert_eq!(store.version(), v0, "{rec} changed the store");
        assert_eq!(store.count().await.unwrap(), 1);
    }
    // NaN given as a float (Arrow input) is refused too
    let vals = arrow::array::Float32Array::from(vec![1.0, f32::NAN, 0.0, 0.0]);
    let fsl = arrow::array::FixedSizeListArray::try_new(
        std::sync::Arc::new(arrow::datatypes::Field::new(
            "item",
            arrow::datatypes::DataType::Float32,
            true,
        )),
        4,
        std::sync::Arc::new(vals),
        None,
    )
    .unwrap();
    let ids = arrow::array::StringArray::from(vec!["nanrow"]);
    let b = arrow::array::RecordBatch::try_from_iter(vec![
        ("id", std::sync::Arc::new(ids) as arrow::array::ArrayRef),
        ("vec_s4", std::sync::Arc::new(fsl) as arrow::array::ArrayRef),
    ])
    .unwrap();
    let err = store.add(b, &none()).await.unwrap_err();
    assert!(matches!(err, StoreError::Core(_)), "{err}");
    assert!(
        err.to_string().contains("nanrow") && err.to_string().contains("non-finite"),
        "{err}"
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

/// A `vec_NAME` column of fixed-size lists; `None` rows are null with null components.
fn fsl(rows: &[Option<[f32; 4]>]) -> arrow::array::ArrayRef {
    let vals: Vec<Option<f32>> = rows
        .iter()
        .flat_map(|r| match r {
            Some(v) => v.map(Some).to_vec(),
            None => vec![None; 4],
        })
        .collect();
    let nulls =
        arrow::buffer::NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    std::sync::Arc::new(
        arrow::array::FixedSizeListArray::try_new(
            std::sync::Arc::new(arrow::datatypes::Field::new(
                "item",
                arrow::datatypes::DataType::Float32,
                true,
            )),
            4,
            std::sync::Arc::new(arrow::array::Float32Array::from(vals)),
            Some(nulls),
        )
        .unwrap(),
    )
}

fn batch(
    ids: &[&str],
    s4: &[Option<[f32; 4]>],
    t4: &[Option<[f32; 4]>],
) -> arrow::array::RecordBatch {
    arrow::array::RecordBatch::try_from_iter(vec![
        (
            "id",
            std::sync::Arc::new(arrow::array::StringArray::from(ids.to_vec()))
                as arrow::array::ArrayRef,
        ),
        ("vec_s4", fsl(s4)),
        ("vec_t4", fsl(t4)),
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_of_batches_is_one_checked_commit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        spaces: vec![space4(), Space::new("t4", 4).with_model("test", "t", "1")],
        ..Default::default()
    };
    let mut store = Store::create(&uri(&dir, "b"), opts, None, &none())
        .await
        .unwrap();
    let v0 = store.version();
    let (xv, yv) = ([1.0, 0.0, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0]);
    let (x, y) = (Some(xv), Some(yv));
    // an id repeated in a later batch: refused, nothing lands
    let err = store
        .add_batches(
            vec![
                batch(&["a", "b"], &[x, y], &[x, y]),
                batch(&["c", "b"], &[x, y], &[x, y]),
            ],
            &none(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`b` appears twice"), "{err}");
    // a bad vector in the second batch: nothing of the first lands either
    let err = store
        .add_batches(
            vec![
                batch(&["a"], &[x], &[x]),
                batch(&["z"], &[Some([0.0; 4])], &[x]),
            ],
            &none(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`z`") && err.contains("zero vector"), "{err}");
    store.refresh().await.unwrap();
    assert_eq!((store.version(), store.count().await.unwrap()), (v0, 0));
    // two batches, one commit; a null vector of the optional space (its components
    // null too, as pyarrow writes them) is accepted and stays null
    let r = store
        .add_batches(
            vec![
                batch(&["a", "b"], &[x, y], &[x, None]),
                batch(&["c"], &[y], &[None]),
            ],
            &none(),
        )
        .await
        .unwrap();
    assert_eq!((r.added, r.rows_after, r.version), (3, 3, v0 + 1));
    let rows = store
        .scan(Some(&["id", "vec_s4", "vec_t4"]), None)
        .await
        .unwrap();
    let mut got = Vec::new();
    for b in &rows {
        let (ids, s4, t4) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_fixed_size_list(),
            b.column(2).as_fixed_size_list(),
        );
        for i in 0..b.num_rows() {
            let v = s4.value(i);
            let v = v
                .as_primitive::<arrow::datatypes::Float32Type>()
                .values()
                .to_vec();
            got.push((ids.value(i).to_owned(), v, t4.is_null(i)));
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("a".to_owned(), xv.to_vec(), false),
            ("b".to_owned(), yv.to_vec(), true),
            ("c".to_owned(), yv.to_vec(), true),
        ]
    );
    // nothing to add: no new version
    let r = store.add_batches(vec![], &none()).await.unwrap();
    assert_eq!((r.added, r.version), (0, v0 + 1));
    // the batches' ids meet the store's: refused
    let err = store
        .add_batches(
            vec![batch(&["n"], &[x], &[x]), batch(&["c"], &[x], &[x])],
            &none(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already exist") && err.contains("`c`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_records_with_memory_fields() {
    use memlane_store::Record;
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        spaces: vec![space4()],
        ..Default::default()
    };
    let mut store = Store::create(&uri(&dir, "r"), opts, None, &none())
        .await
        .unwrap();
    let recs = vec![
        Record::new("m1", "user prefers dark mode")
            .field("kind", "semantic")
            .field("agent_id", "a1")
            .field("created_at", "2024-05-01T12:00:00Z")
            .field(
                "relationships",
                json!([{"target": "m2", "relation": "derived_from", "weight": 0.5}]),
            )
            .vector("s4", vec![0.1, 0.2, 0.3, 0.4]),
        Record::new("m2", "session 7: user switched theme")
            .field("kind", "episodic")
            .vector("s4", vec![0.4, 0.3, 0.2, 0.1]),
    ];
    store.add_records(&recs, &none()).await.unwrap();
    let b = store
        .scan(
            Some(&["id", "kind", "created_at", "relationships"]),
            Some("id = 'm1'"),
        )
        .await
        .unwrap();
    let rel = b[0].column(3).as_list::<i32>().value(0);
    let rel = rel.as_struct();
    assert_eq!(
        rel.column_by_name("target")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "m2"
    );
    let ts = b[0]
        .column(2)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    assert_eq!(ts, 1_714_564_800_000_000);
    // m2 gave no timestamps: it gets the time of writing
    let b = store
        .scan(Some(&["created_at", "updated_at"]), Some("id = 'm2'"))
        .await
        .unwrap();
    let c = b[0]
        .column(0)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    let u = b[0]
        .column(1)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    assert!(c > 1_714_564_800_000_000 && c == u);
    let bad = Record::new("m3", "x")
        .field("status", "forgotten")
        .vector("s4", vec![1.0, 0.0, 0.0, 0.0]);
    assert!(
        store
            .add_records(&[bad], &none())
            .await
            .unwrap_err()
            .to_string()
            .contains("forgotten")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_collection_and_exports_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        plain: true,
        spaces: vec![space4()],
        ..Default::default()
    };
    let recs: Vec<_> = (0..50)
        .map(|i| json!({"id": format!("r{i}"), "content": format!("text {i}"), "s4": [1.0, i as f32, 0.5, -1.0]}))
        .collect();
    let store = Store::create_from_json(&uri(&dir, "p"), opts, &recs, &none())
        .await
        .unwrap();
    let names: Vec<String> = store
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "content", "vec_s4", "vec_s4__src"]);
    let ipc = dir.path().join("x.arrow");
    let jsonl = dir.path().join("x.jsonl");
    assert_eq!(memlane_store::export_ipc(&store, &ipc).await.unwrap(), 50);
    assert_eq!(
        memlane_store::export_jsonl(&store, &jsonl).await.unwrap(),
        50
    );
    // both exports load into a second store with the same rows and vectors
    let opts = CreateOptions {
        plain: true,
        spaces: vec![space4()],
        ..Default::default()
    };
    let mut a = Store::create(&uri(&dir, "a"), opts.clone(), None, &none())
        .await
        .unwrap();
    a.add(memlane_store::read_ipc(&ipc).unwrap(), &none())
        .await
        .unwrap();
    let b = Store::create_from_json(
        &uri(&dir, "b"),
        opts,
        &memlane_store::read_jsonl(&jsonl).unwrap(),
        &none(),
    )
    .await
    .unwrap();
    for s in [&a, &b] {
        let batches = s
            .scan(Some(&["id", "vec_s4"]), Some("id = 'r7'"))
            .await
            .unwrap();
        let v = batches[0].column(1).as_fixed_size_list().value(0);
        let v = v.as_primitive::<arrow::datatypes::Float32Type>();
        assert_eq!(v.values().to_vec(), vec![1.0, 7.0, 0.5, -1.0]);
        assert_eq!(s.count().await.unwrap(), 50);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_is_a_forward_commit_and_tags_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = corpus_store(&dir, "r").await;
    let files = memlane_store::read_folder(examples("02-metadata-evolution")).unwrap();
    store.migrator(files.clone()).apply().await.unwrap();
    assert_eq!(store.count().await.unwrap(), 367);
    let tags = store.tags().await.unwrap();
    assert!(
        tags.iter().any(|(n, _)| n == "migration-0003-cleanup"),
        "{tags:?}"
    );
    store.tag("before-restore", None).await.unwrap();
    assert!(
        store
            .tag("before-restore", None)
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );

    let before = store.version();
    assert!(
        store.restore("1", "").await.is_err(),
        "a reason is required"
    );
    let v = store.restore("1", "roll back the cleanup").await.unwrap();
    assert_eq!(v, before + 1);
    assert_eq!(store.count().await.unwrap(), 392);
    assert!(store.state().applied.is_empty());
    assert!(store.schema().field_with_name("source").is_ok());
    let last = store.history().await.unwrap().pop().unwrap();
    let e = last.entry.unwrap();
    assert_eq!(
        (e.action, e.restored_from, e.reason.as_deref()),
        (Action::Restore, Some(1), Some("roll back the cleanup"))
    );
    // forward again: the migrations re-apply on top of the restore
    store.migrator(files.clone()).apply().await.unwrap();
    assert_eq!(store.count().await.unwrap(), 367);
    // restoring by tag
    store
        .restore("before-restore", "back to the tag")
        .await
        .unwrap();
    assert_eq!(store.state().applied.len(), 3);
    assert!(matches!(
        store.restore("nope", "x").await.unwrap_err(),
        StoreError::UnknownVersion(_)
    ));
    let vr = store.verify(Some(&files)).await.unwrap();
    assert!(vr.ok(), "{vr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dataset_written_by_lance_is_adopted_and_migrated() {
    use arrow::array::{
        FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator, StringArray,
    };
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let u = uri(&dir, "foreign");
    // a plain collection written by Lance itself: id, text, vector (768), no memlane state
    let n = 300;
    let texts: Vec<String> = corpus()
        .iter()
        .take(n)
        .map(|r| r["content"].as_str().unwrap().to_owned())
        .collect();
    // dense unit vectors, like a real model's (a sparse hashing vector can truncate to zero)
    let mut seed = 9u64;
    let mut flat: Vec<f32> = (0..n * 768)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    for v in flat.chunks_exact_mut(768) {
        memlane_store::memlane_core::space::normalize_in_place(v);
    }
    let doc42 = flat[42 * 768..43 * 768].to_vec();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, true),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 768),
            true,
        ),
    ]));
    let v = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        768,
        Arc::new(Float32Array::from(flat)),
        None,
    )
    .unwrap();
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("doc{i}")),
            )),
            Arc::new(StringArray::from(texts.clone())),
            Arc::new(v),
        ],
    )
    .unwrap();
    lance::Dataset::write(
        RecordBatchIterator::new(vec![Ok(b)], schema),
        u.as_str(),
        None,
    )
    .await
    .unwrap();

    let mut store = Store::open(&u).await.unwrap();
    assert!(store.state().spaces.is_empty());
    let mut sp = Space::new("m768", 768)
        .with_model("memlane", "hash-embed", "9")
        .with_normalized(true);
    sp.column = "vector".into();
    let mut wrong = sp.clone();
    wrong.dimension = 512;
    assert!(
        store
            .adopt(wrong)
            .await
            .unwrap_err()
            .to_string()
            .contains("not a fixed-size list of 512")
    );
    store.adopt(sp).await.unwrap();
    assert_eq!(store.state().active_space.as_deref(), Some("m768"));
    let dirm = dir.path().join("m");
    std::fs::create_dir_all(&dirm).unwrap();
    std::fs::write(
        dirm.join("0001_small.toml"),
        "[[steps]]\nop = \"truncate\"\nfrom = \"m768\"\nspace = \"m128\"\ndimension = 128\n",
    )
    .unwrap();
    let files = memlane_store::read_folder(&dirm).unwrap();
    store.migrator(files.clone()).apply().await.unwrap();
    assert_eq!(
        store.search(Some("m768"), &doc42, 1, None).await.unwrap()[0].id,
        "doc42"
    );
    let mut small = doc42[..128].to_vec();
    memlane_store::memlane_core::space::normalize_in_place(&mut small);
    assert_eq!(
        store.search(None, &small, 1, None).await.unwrap()[0].id,
        "doc42"
    );
    let vr = store.verify(Some(&files)).await.unwrap();
    // the first version was written by Lance, not memlane: history says so, the rest verifies
    assert!(
        vr.checks
            .iter()
            .filter(|c| c.name != "history")
            .all(|c| c.ok),
        "{vr}"
    );
    assert!(store.history().await.unwrap()[0].entry.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn update_sets_fields_and_a_content_change_reembeds_with_the_remembered_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = Space::new("h64", 64).with_normalized(true);
    sp.embedder = Some("house".into());
    let mut opts = CreateOptions {
        spaces: vec![sp],
        ..Default::default()
    };
    opts.registry.insert("house", hash(64, 3));
    let store = Store::create_from_json(&uri(&dir, "s"), opts, &corpus()[..50], &none())
        .await
        .unwrap();
    // a later handle of a Rust service: it names the model once
    let mut later = Store::open(store.uri()).await.unwrap();
    later.register_embedders([("house".to_owned(), hash(64, 3))]);
    let id = corpus()[7]["id"].as_str().unwrap().to_owned();
    let filter = format!("id = '{id}'");
    let values = json!({"content": "rewritten text about tea", "kind": "episodic"});
    let r = later
        .update(&filter, values.as_object().unwrap(), &none())
        .await
        .unwrap();
    assert_eq!((r.updated, r.inserted, r.embedded["h64"]), (1, 0, 1));
    let q = later
        .query_vector(None, "rewritten text about tea", None)
        .unwrap();
    assert_eq!(q, hash(64, 3).embed(&["rewritten text about tea"]).unwrap());
    let hits = later.search(None, &q, 1, None).await.unwrap();
    assert_eq!(
        (hits[0].id.as_str(), hits[0].distance < 1e-4),
        (id.as_str(), true)
    );
    let rows = later.scan(Some(&["kind"]), Some(&filter)).await.unwrap();
    assert_eq!(rows[0].column(0).as_string::<i32>().value(0), "episodic");
    assert!(later.verify(None).await.unwrap().ok());

    // what update refuses names the field and the fix; nothing lands
    let v = later.version();
    for (values, says) in [
        (json!({}), "at least one field"),
        (json!({"nope": 1}), "no field `nope`"),
        (json!({"h64": vec![0.0; 64]}), "not vectors"),
        (json!({"id": "x"}), "cannot change a record's `id`"),
        (
            json!({"created_at": "high noon"}),
            "does not fit field `created_at`",
        ),
    ] {
        let e = later
            .update(&filter, values.as_object().unwrap(), &none())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{e}");
    }
    // a content change in a handle that does not know the model: refused, naming
    // what the space remembers
    drop(store);
    let mut bare = Store::open(later.uri()).await.unwrap();
    let e = bare
        .update(
            &filter,
            json!({"content": "x"}).as_object().unwrap(),
            &none(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::UnresolvedEmbedder { .. }), "{e}");
    assert!(e.to_string().contains("remembers embedder `house`"), "{e}");
    later.refresh().await.unwrap();
    assert_eq!(later.version(), v);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remembered_model_that_cannot_be_made_here_stops_only_the_writes_needing_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = Space::new("s4", 4);
    // a served model whose key variable this process does not have
    sp.embedder =
        Some("http:http://127.0.0.1:9/v1,model=m,key_env=MEMLANE_TEST_KEY_NEVER_SET".into());
    let opts = CreateOptions {
        spaces: vec![sp],
        ..Default::default()
    };
    let with_vector = [json!({"id": "a", "content": "x", "s4": [1.0, 0.0, 0.0, 0.0]})];
    let mut store = Store::create_from_json(&uri(&dir, "s"), opts, &with_vector, &none())
        .await
        .unwrap();
    // records that bring their vector are written
    let more = [json!({"id": "b", "content": "y", "s4": [0.0, 1.0, 0.0, 0.0]})];
    store.add_json(&more, &none()).await.unwrap();
    // one that needs the model is refused, saying which model and why it is missing
    let e = store
        .add_json(&[json!({"id": "c", "content": "z"})], &none())
        .await
        .unwrap_err();
    let said = e.to_string();
    assert!(matches!(e, StoreError::UnresolvedEmbedder { .. }), "{said}");
    assert!(
        said.contains("record `c` has no vector") && said.contains("MEMLANE_TEST_KEY_NEVER_SET"),
        "{said}"
    );
    assert_eq!(store.count().await.unwrap(), 2);
}
