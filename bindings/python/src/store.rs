//! `memlane.Store` and the module functions `create` / `open`: adapters over
//! `memlane_store::Store`. Reports are returned as JSON strings; the facade wraps them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use memlane_store::{
    CreateOptions, Embedder, Progress, StorageOptions, Store as CoreStore, StoreError,
};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::arrow_ffi;
use crate::embedder::{NativeEmbedder, PyEmbedder};
use crate::error::{input, to_py};
use crate::executor::PyExecutor;
use crate::space::Space;

/// Python embedders by name, and the slot where a raised exception is kept.
struct Embedders {
    map: HashMap<String, Arc<dyn Embedder>>,
    /// Named embedders (`memlane.register_embedder`): what remembered references resolve in.
    named: memlane_store::remembered::Registry,
    /// Embedders that are also fragment executors (the distributed backfill).
    executors: HashMap<String, Arc<dyn memlane_store::FragmentExecutor>>,
    raised: Arc<Mutex<Option<PyErr>>>,
}

impl Embedders {
    fn from_py(embedders: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::with_named(embedders, None)
    }

    /// The embedders given (by space or, for a migration, by name) and the named ones
    /// registered with `memlane.register_embedder`, sharing one slot for a raised
    /// exception.
    fn with_named(
        embedders: Option<&Bound<'_, PyDict>>,
        named: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let raised = Arc::new(Mutex::new(None));
        let mut out = Self::adapt(embedders, &raised)?;
        let reg = Self::adapt(named, &raised)?;
        out.named = reg.map.into_iter().collect();
        Ok(out)
    }

    fn adapt(
        embedders: Option<&Bound<'_, PyDict>>,
        raised: &Arc<Mutex<Option<PyErr>>>,
    ) -> PyResult<Self> {
        let raised = raised.clone();
        let mut map: HashMap<String, Arc<dyn Embedder>> = HashMap::new();
        let mut executors: HashMap<String, Arc<dyn memlane_store::FragmentExecutor>> =
            HashMap::new();
        if let Some(d) = embedders {
            // duck-typed models (sentence-transformers, fastembed, an OpenAI client, a
            // spec string) become callables or native embedders in the facade
            let adapt = d.py().import("memlane._embedders")?.getattr("adapt")?;
            for (k, v) in d.iter() {
                let name: String = k.extract()?;
                let v = adapt.call1((v, &name))?;
                if let Ok(native) = v.cast::<NativeEmbedder>() {
                    map.insert(name, native.get().inner.clone());
                    continue;
                }
                if !v.is_callable() {
                    return Err(input(format!(
                        "embedder `{name}` is not callable; pass a function list[str] -> numpy.ndarray (n, dimension), a model (sentence-transformers, fastembed, memlane.embedder(openai_client, model=...)) or a spec such as \"http:URL,model=NAME\""
                    )));
                }
                let batch = v
                    .getattr("batch_size")
                    .ok()
                    .and_then(|b| b.extract::<usize>().ok())
                    .filter(|b| *b > 0)
                    .unwrap_or(64);
                if let Some(ex) = PyExecutor::of(&v)? {
                    executors.insert(name.clone(), Arc::new(ex));
                }
                map.insert(
                    name,
                    Arc::new(PyEmbedder::new(v.unbind(), batch, raised.clone())),
                );
            }
        }
        Ok(Embedders {
            map,
            named: memlane_store::remembered::Registry::default(),
            executors,
            raised,
        })
    }

    /// Map a store error; an exception raised inside an embedder becomes its cause.
    fn err(&self, py: Python<'_>, e: StoreError) -> PyErr {
        let cause = self.raised.lock().ok().and_then(|mut r| r.take());
        to_py(py, e, cause)
    }
}

/// Embedders by name, as the library takes them.
type EmbedderMap = HashMap<String, Arc<dyn Embedder>>;

/// A migrations folder and the embedders a run of it gets: the folder's `memlane.toml`,
/// overridden by the ones passed from Python.
fn folder_with_embedders(
    py: Python<'_>,
    migrations: &str,
    embedders: Option<&Bound<'_, PyDict>>,
) -> PyResult<(memlane_store::MigrationFolder, Embedders, EmbedderMap)> {
    let folder =
        memlane_store::MigrationFolder::read(migrations).map_err(|e| to_py(py, e, None))?;
    let emb = Embedders::from_py(embedders)?;
    let mut map =
        memlane_store::configured_embedders(Some(std::path::Path::new(migrations)), None, None)
            .map_err(|e| to_py(py, e, None))?;
    map.extend(emb.map.clone());
    Ok((folder, emb, map))
}

fn json<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| input(e.to_string()))
}

/// A report as JSON and as the text the CLI prints (its `Display`): the Python report
/// keeps both, so `str(report)` is the library's rendering, not a second one.
pub(crate) fn json_text<T: serde::Serialize + std::fmt::Display>(
    v: &T,
) -> PyResult<(String, String)> {
    Ok((json(v)?, v.to_string()))
}

fn spaces_of(spaces: Option<Vec<Space>>) -> Vec<memlane_core::Space> {
    spaces
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.inner)
        .collect()
}

/// Create a store at `uri` (a directory, created), with spaces and optional initial
/// records (Arrow data); rows without a vector get one from `embedders[space]`.
#[pyfunction]
#[pyo3(signature = (uri, spaces=None, *, plain=false, data=None, embedders=None, rows_per_fragment=None, storage_options=None, registry=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn create(
    py: Python<'_>,
    uri: &str,
    spaces: Option<Vec<Space>>,
    plain: bool,
    data: Option<&Bound<'_, PyAny>>,
    embedders: Option<&Bound<'_, PyDict>>,
    rows_per_fragment: Option<usize>,
    storage_options: Option<HashMap<String, String>>,
    registry: Option<&Bound<'_, PyDict>>,
) -> PyResult<Store> {
    let batches = data.map(arrow_ffi::batches_from).transpose()?;
    let emb = Embedders::with_named(embedders, registry)?;
    let opts = CreateOptions {
        plain,
        spaces: spaces_of(spaces),
        fields: vec![],
        rows_per_fragment,
        storage: storage_of(storage_options),
        registry: emb.named.clone(),
    };
    let r = py.detach(|| {
        crate::block_on(async {
            let mut s =
                CoreStore::create(uri, opts, batches.into_iter().flatten(), &emb.map).await?;
            s.refresh().await?;
            Ok::<_, StoreError>(s)
        })
    });
    match r {
        Ok(s) => Ok(Store::wrap(s)),
        Err(e) => Err(emb.err(py, e)),
    }
}

/// The storage options as the library takes them (the keys pylance takes).
fn storage_of(options: Option<HashMap<String, String>>) -> StorageOptions {
    options.unwrap_or_default().into_iter().collect()
}

/// Open the store at `uri` (`storage_options`: how to reach its object store).
#[pyfunction]
#[pyo3(signature = (uri, *, storage_options=None))]
pub(crate) fn open(
    py: Python<'_>,
    uri: &str,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<Store> {
    let storage = storage_of(storage_options);
    let r = py.detach(|| crate::block_on(CoreStore::open_with(uri, storage)));
    r.map(Store::wrap).map_err(|e| to_py(py, e, None))
}

fn bundle_key(py: Python<'_>, key: Option<&str>) -> PyResult<Option<memlane_store::BundleKey>> {
    key.map(|k| memlane_store::BundleKey::parse(k, "key="))
        .transpose()
        .map_err(|e| to_py(py, e, None))
}

/// Bundle the store at `uri` into the file `output`; returns its manifest as JSON.
#[pyfunction]
#[pyo3(signature = (uri, output, *, key=None, storage_options=None))]
pub(crate) fn bundle_json(
    py: Python<'_>,
    uri: &str,
    output: std::path::PathBuf,
    key: Option<&str>,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let key = bundle_key(py, key)?;
    let storage = storage_of(storage_options);
    let (bytes, manifest) = py
        .detach(|| crate::block_on(memlane_store::bundle(uri, &storage, key.as_ref())))
        .map_err(|e| to_py(py, e, None))?;
    std::fs::write(&output, bytes).map_err(|e| {
        crate::error::StorageError::new_err(format!("cannot write {}: {e}", output.display()))
    })?;
    json(&manifest)
}

/// Restore the bundle file `path` into a new store at `dest`; returns its manifest as JSON.
#[pyfunction]
#[pyo3(signature = (path, dest, *, key=None, storage_options=None))]
pub(crate) fn unbundle_json(
    py: Python<'_>,
    path: std::path::PathBuf,
    dest: &str,
    key: Option<&str>,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<String> {
    let key = bundle_key(py, key)?;
    let storage = storage_of(storage_options);
    let bytes = std::fs::read(&path).map_err(|e| {
        crate::error::NotFoundError::new_err(format!(
            "cannot read the bundle {}: {e}",
            path.display()
        ))
    })?;
    let name = path.display().to_string();
    let m = py
        .detach(|| {
            crate::block_on(memlane_store::unbundle(
                &bytes,
                &name,
                dest,
                &storage,
                key.as_ref(),
            ))
        })
        .map_err(|e| to_py(py, e, None))?;
    json(&m)
}

/// Compare two stores (paths or URIs): the diff as JSON and text.
#[pyfunction]
#[pyo3(signature = (a, b, *, storage_options=None))]
pub(crate) fn diff_json(
    py: Python<'_>,
    a: &str,
    b: &str,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<(String, String)> {
    let storage = storage_of(storage_options);
    let r = py.detach(|| {
        crate::block_on(async {
            let sa = CoreStore::open_with(a, storage.clone()).await?;
            let sb = CoreStore::open_with(b, storage).await?;
            memlane_store::diff(&sa, &sb).await
        })
    });
    let d = r.map_err(|e| to_py(py, e, None))?;
    Ok((json(&d)?, d.to_string()))
}

/// Remove the migration lock of the store at `uri` (as `memlane unlock --force`);
/// returns the removed lock as JSON, or `None`.
#[pyfunction]
#[pyo3(signature = (uri, *, even_if_alive=false, storage_options=None))]
pub(crate) fn unlock_json(
    py: Python<'_>,
    uri: &str,
    even_if_alive: bool,
    storage_options: Option<HashMap<String, String>>,
) -> PyResult<Option<String>> {
    let storage = storage_of(storage_options);
    let r = py.detach(|| {
        crate::block_on(async {
            let side = memlane_store::SideFiles::open(uri, &storage).await?;
            memlane_store::lock::force_unlock(&side, even_if_alive).await
        })
    });
    let removed = r.map_err(|e| to_py(py, e, None))?;
    removed.map(|l| json(&l)).transpose()
}

/// The migrations of a folder, parsed (JSON list of `{id, file, checksum, description}`).
#[pyfunction]
pub(crate) fn read_migrations(py: Python<'_>, folder: &str) -> PyResult<String> {
    let files = memlane_store::read_folder(folder).map_err(|e| to_py(py, e, None))?;
    let v: Vec<serde_json::Value> = files
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id, "file": m.file, "description": m.description,
                "steps": m.steps.len(), "content_hash": m.content_hash,
            })
        })
        .collect();
    json(&v)
}

/// A memlane store (one Lance dataset). Methods release the GIL while they work.
#[pyclass(module = "memlane")]
pub struct Store {
    inner: Mutex<CoreStore>,
    uri: String,
}

impl Store {
    fn wrap(s: CoreStore) -> Self {
        Store {
            uri: s.uri().to_owned(),
            inner: Mutex::new(s),
        }
    }

    /// Lock the store; inside a callback of a running call on this handle, fail instead
    /// of deadlocking (that call holds the lock).
    fn guard(&self) -> Result<std::sync::MutexGuard<'_, CoreStore>, String> {
        if crate::in_callback() {
            self.inner.try_lock().map_err(|_| {
                "this store handle is busy with the call that runs this callback; use another handle (memlane.open(uri)) inside embedders and progress callbacks".to_owned()
            })
        } else {
            self.inner
                .lock()
                .map_err(|_| "the store handle was poisoned by a panic; open it again".to_owned())
        }
    }

    /// Read something off the store with the GIL released (another thread may hold the
    /// store lock while it waits for the GIL).
    fn peek<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&CoreStore) -> T + Send) -> PyResult<T> {
        py.detach(|| self.guard().map(|g| f(&g))).map_err(input)
    }

    /// Run `f` on the store with the GIL released, mapping the error.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        emb: Option<&Embedders>,
        f: impl AsyncFnOnce(&mut CoreStore) -> Result<T, StoreError> + Send,
    ) -> PyResult<T> {
        let r = py.detach(|| {
            let mut guard = self.guard().map_err(StoreError::Input)?;
            crate::block_on(f(&mut guard))
        });
        r.map_err(|e| match emb {
            Some(emb) => emb.err(py, e),
            None => to_py(py, e, None),
        })
    }
}

impl Store {
    /// [`Store::with`] with the named embedders of `registry` (`memlane.register_embedder`)
    /// registered on the store first.
    fn with_registry<T: Send>(
        &self,
        py: Python<'_>,
        registry: Option<&Bound<'_, PyDict>>,
        f: impl AsyncFnOnce(&mut CoreStore) -> Result<T, StoreError> + Send,
    ) -> PyResult<T> {
        let emb = Embedders::with_named(None, registry)?;
        let named = emb.named.clone();
        self.with(py, Some(&emb), async move |s| {
            s.register_embedders(named);
            f(s).await
        })
    }
}

fn folder(py: Python<'_>, dir: &str) -> PyResult<Vec<memlane_core::Migration>> {
    memlane_store::read_folder(dir).map_err(|e| to_py(py, e, None))
}

#[pymethods]
impl Store {
    /// Store URI.
    #[getter]
    fn uri(&self) -> &str {
        &self.uri
    }

    /// Current Lance version (after `refresh`).
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        self.peek(py, CoreStore::version)
    }

    /// Re-read the latest version (other processes may have committed).
    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, None, async |s| s.refresh().await)
    }

    /// Live rows.
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, None, async |s| s.count().await)
    }

    /// Status as JSON: version, rows, spaces, active space, applied and in-flight
    /// migrations (with the re-embed checkpoint), fields, lock.
    fn status_json(&self, py: Python<'_>) -> PyResult<(String, String)> {
        let st = self.with(py, None, async |s| {
            s.refresh().await?;
            s.status(None).await
        })?;
        Ok((json(&st)?, st.to_string()))
    }

    /// The store's spaces.
    fn spaces(&self, py: Python<'_>) -> PyResult<Vec<Space>> {
        self.peek(py, |g| {
            g.state()
                .spaces
                .iter()
                .map(|s| Space { inner: s.clone() })
                .collect()
        })
    }

    /// Name of the active space (None before any).
    #[getter]
    fn active_space(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.peek(py, |g| g.state().active_space.clone())
    }

    /// Add records (Arrow data). Rows without a vector for a space get one from
    /// `embedders[space]`. Validated first: nothing lands on error. Returns JSON.
    #[pyo3(signature = (data, embedders=None, registry=None))]
    fn add(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        embedders: Option<&Bound<'_, PyDict>>,
        registry: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let batches = arrow_ffi::batches_from(data)?;
        let emb = Embedders::with_named(embedders, registry)?;
        let (map, named) = (emb.map.clone(), emb.named.clone());
        let r = self.with(py, Some(&emb), async move |s| {
            s.register_embedders(named);
            s.add_batches(batches, &map).await
        })?;
        json(&r)
    }

    /// Insert or replace records by id (Arrow data). Returns JSON.
    #[pyo3(signature = (data, embedders=None, registry=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        embedders: Option<&Bound<'_, PyDict>>,
        registry: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let batches = arrow_ffi::batches_from(data)?;
        let emb = Embedders::with_named(embedders, registry)?;
        let (map, named) = (emb.map.clone(), emb.named.clone());
        let r = self.with(py, Some(&emb), async move |s| {
            s.register_embedders(named);
            s.upsert_batches(batches, &map).await
        })?;
        json(&r)
    }

    /// Set fields of the records matching `filter` to `values` (a JSON object): the
    /// library's `update`, one upsert. Returns the upsert report as JSON.
    #[pyo3(signature = (filter, values, embedders=None, registry=None))]
    fn update(
        &self,
        py: Python<'_>,
        filter: String,
        values: &str,
        embedders: Option<&Bound<'_, PyDict>>,
        registry: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let values: serde_json::Map<String, serde_json::Value> = serde_json::from_str(values)
            .map_err(|e| {
                input(format!(
                    "update: values must be a dict of field -> value ({e})"
                ))
            })?;
        let emb = Embedders::with_named(embedders, registry)?;
        let (map, named) = (emb.map.clone(), emb.named.clone());
        let r = self.with(py, Some(&emb), async move |s| {
            s.register_embedders(named);
            s.update(&filter, &values, &map).await
        })?;
        json(&r)
    }

    /// Delete the records matching a SQL predicate: (rows deleted, version).
    #[pyo3(name = "delete")]
    fn delete_where(&self, py: Python<'_>, predicate: String) -> PyResult<(u64, u64)> {
        self.with(py, None, async move |s| s.delete(&predicate).await)
    }

    /// Live rows as an Arrow C stream capsule (columns: all when None; SQL filter).
    #[pyo3(signature = (columns=None, filter=None))]
    fn to_arrow_capsule<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let (schema, batches) = self.with(py, None, async move |s| {
            let cols: Option<Vec<&str>> = columns
                .as_ref()
                .map(|c| c.iter().map(String::as_str).collect());
            let batches = s.scan(cols.as_deref(), filter.as_deref()).await?;
            let schema = match (batches.first(), &cols) {
                (Some(b), _) => b.schema(),
                (None, Some(c)) => {
                    let all = s.schema();
                    let idx = c
                        .iter()
                        .map(|n| all.index_of(n))
                        .collect::<Result<Vec<_>, _>>()?;
                    Arc::new(all.project(&idx)?)
                }
                (None, None) => s.schema(),
            };
            Ok((schema, batches))
        })?;
        arrow_ffi::to_capsule(py, schema, batches)
    }

    /// The `k` nearest records as JSON `{hits: [{id, content, distance}], index}`
    /// (`index`: the vector index kind that answered, null for an exact scan), and,
    /// when `columns` names fields, the hits' rows (`id`, those fields, `_distance`)
    /// read by the same scan, as an Arrow stream capsule. `vector` is float32 bytes.
    /// With `query_space`, the query comes from that space's model and is mapped into
    /// `space` through the adapter the store keeps for the pair.
    #[pyo3(signature = (vector, k=10, space=None, filter=None, query_space=None, *, exact=false, nprobes=None, refine_factor=None, columns=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        vector: &[u8],
        k: i64,
        space: Option<String>,
        filter: Option<String>,
        query_space: Option<String>,
        exact: bool,
        nprobes: Option<usize>,
        refine_factor: Option<u32>,
        columns: Option<Vec<String>>,
    ) -> PyResult<(String, Option<Bound<'py, PyCapsule>>)> {
        let q = crate::floats(vector);
        // a negative k is the library's "k must be at least 1" too
        let k = usize::try_from(k).unwrap_or(0);
        let opts = memlane_store::SearchOptions {
            exact,
            nprobes,
            refine_factor,
            columns,
        };
        let mut found = self.with(py, None, async move |s| {
            let target = s.space(space.as_deref())?.name.clone();
            let qs = query_space.unwrap_or_else(|| target.clone());
            s.search_adapted_with(Some(&target), &qs, &q, k, filter.as_deref(), &opts)
                .await
        })?;
        let table = found
            .table
            .take()
            .map(|t| arrow_ffi::to_capsule(py, t.schema(), vec![t]))
            .transpose()?;
        Ok((json(&found)?, table))
    }

    /// The query vector of `text` in `space` (the active one by default): the space's
    /// query prefix added, embedded with the embedder the space remembers, resolved in
    /// `registry` (name -> model), a spec or a built-in name.
    #[pyo3(signature = (text, space=None, registry=None))]
    fn query_vector(
        &self,
        py: Python<'_>,
        text: String,
        space: Option<String>,
        registry: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<f32>> {
        self.with_registry(py, registry, async move |s| {
            s.query_vector(space.as_deref(), &text, None)
        })
    }

    /// Remember `reference` as the embedder of `space` (checked against its stored
    /// vectors), or forget it with `None`; returns the version of the commit.
    #[pyo3(signature = (space, reference, registry=None))]
    fn set_embedder(
        &self,
        py: Python<'_>,
        space: String,
        reference: Option<String>,
        registry: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u64> {
        self.with_registry(py, registry, async move |s| {
            s.set_embedder(&space, reference.as_deref()).await
        })
    }

    /// (rows with a vector in the space, live rows).
    #[pyo3(signature = (space=None))]
    fn coverage(&self, py: Python<'_>, space: Option<String>) -> PyResult<(u64, u64)> {
        self.with(py, None, async move |s| s.coverage(space.as_deref()).await)
    }

    /// The plan for a migrations folder (hash chain checked, lint findings) as JSON.
    fn plan_json(&self, py: Python<'_>, migrations: &str) -> PyResult<(String, String)> {
        let files = folder(py, migrations)?;
        let p = self.with(py, None, async move |s| s.plan(&files).await)?;
        json_text(&p)
    }

    /// Apply a migrations folder; returns the apply report as JSON. Embedders are the
    /// callables the migration files name; `progress(dict)` is called as rows advance.
    #[pyo3(signature = (migrations, embedders=None, *, progress=None, dry_run=false, approve=None, to=None))]
    #[allow(clippy::too_many_arguments)]
    fn apply_json(
        &self,
        py: Python<'_>,
        migrations: &str,
        embedders: Option<&Bound<'_, PyDict>>,
        progress: Option<Py<PyAny>>,
        dry_run: bool,
        approve: Option<String>,
        to: Option<u32>,
    ) -> PyResult<(String, String)> {
        let (folder, emb, map) = folder_with_embedders(py, migrations, embedders)?;
        let executors = emb.executors.clone();
        let progress = progress.map(|f| {
            let f = Arc::new(f);
            let cb: memlane_store::ProgressFn = Arc::new(move |p: &Progress| {
                crate::callback(|| {
                    Python::attach(|py| {
                        let d = PyDict::new(py);
                        let _ = d.set_item("migration", p.migration);
                        let _ = d.set_item("step", p.step);
                        let _ = d.set_item("steps", p.steps);
                        let _ = d.set_item("op", &p.op);
                        let _ = d.set_item("done", p.done);
                        let _ = d.set_item("total", p.total);
                        let _ = d.set_item("rows_per_sec", p.rows_per_sec);
                        let _ = d.set_item("eta_secs", p.eta_secs);
                        let _ = d.set_item("phase", &p.phase);
                        if let Some(b) = &p.backfill {
                            let _ = d.set_item("commits", b.commits);
                            let _ = d.set_item("conflicts", b.conflicts);
                            let _ = d.set_item("retries", b.retries);
                            let workers: Vec<(String, u64, u64, f64)> = b
                                .workers
                                .iter()
                                .map(|w| (w.worker.clone(), w.fragments, w.rows, w.rows_per_sec()))
                                .collect();
                            let _ = d.set_item("workers", workers);
                            if let Some(c) = b.embedder {
                                let _ = d.set_item("requests", c.requests);
                                let _ = d.set_item("request_retries", c.retries);
                                let _ = d.set_item("restarts", c.restarts);
                                let _ = d.set_item("tokens", c.tokens);
                            }
                        }
                        // a failing progress callback must not fail the migration
                        if let Err(e) = f.bind(py).call1((d,)) {
                            e.print(py);
                        }
                    })
                });
            });
            cb
        });
        let r = self.with(py, Some(&emb), async move |s| {
            let mut m = s
                .migrator_for(folder)
                .dry_run(dry_run)
                .approve(approve)
                .to(to);
            for (name, e) in map {
                m = m.embedder(name, e);
            }
            for (name, ex) in executors {
                m = m.executor(name, ex);
            }
            if let Some(p) = progress {
                m = m.progress(p);
            }
            m.apply().await
        })?;
        json_text(&r)
    }

    /// Every version with its recorded entry, as JSON.
    fn history_json(&self, py: Python<'_>) -> PyResult<String> {
        let h = self.with(py, None, async |s| s.history().await)?;
        json(&h)
    }

    /// Check the recorded state against the data (and a migrations folder's hash
    /// chain, when given): JSON report with `ok` and the checks.
    #[pyo3(signature = (migrations=None))]
    fn verify_json(&self, py: Python<'_>, migrations: Option<&str>) -> PyResult<(String, String)> {
        let files = migrations.map(|m| folder(py, m)).transpose()?;
        let r = self.with(py, None, async move |s| s.verify(files.as_deref()).await)?;
        Ok((json(&memlane_store::verdict_json(&r))?, r.to_string()))
    }

    /// Run every built-in data check plus a folder's `invariants.toml` on the current
    /// version (ids and content compared with `against`, default the previous version);
    /// the report (JSON) is kept for `validate_history_json`.
    #[pyo3(signature = (migrations=None, against=None))]
    fn validate_json(
        &self,
        py: Python<'_>,
        migrations: Option<&str>,
        against: Option<u64>,
    ) -> PyResult<(String, String)> {
        let specs = match migrations {
            Some(m) => memlane_store::read_invariants(m).map_err(|e| to_py(py, e, None))?,
            None => vec![],
        };
        let r = self.with(py, None, async move |s| {
            let r = s.validate(&specs, against).await?;
            s.record_validation(&r).await?;
            Ok(r)
        })?;
        Ok((json(&memlane_store::verdict_json(&r))?, r.to_string()))
    }

    /// Every check over versions (step invariants and kept validations), as JSON.
    fn validate_history_json(&self, py: Python<'_>) -> PyResult<String> {
        let h = self.with(py, None, async |s| s.validate_history().await)?;
        json(&h)
    }

    /// Tag a version (the current one when None); returns the version tagged.
    #[pyo3(signature = (name, version=None))]
    fn tag(&self, py: Python<'_>, name: String, version: Option<u64>) -> PyResult<u64> {
        self.with(py, None, async move |s| s.tag(&name, version).await)
    }

    /// Branch the store (at `at`, default its latest version) beside it, at
    /// `<store>.branches/<name>`; returns the branch, a store of its own.
    #[pyo3(signature = (name, at=None))]
    fn branch(&self, py: Python<'_>, name: String, at: Option<u64>) -> PyResult<Store> {
        self.with(py, None, async move |s| s.branch(&name, at).await)
            .map(Store::wrap)
    }

    /// The store's branches (JSON list).
    fn branches_json(&self, py: Python<'_>) -> PyResult<String> {
        let b = self.with(py, None, async |s| s.branches().await)?;
        json(&b)
    }

    /// Delete a branch.
    fn delete_branch(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.with(py, None, async move |s| s.delete_branch(&name).await)
    }

    /// Promote branch `name` into the store (its commits replayed; see
    /// `memlane_store::promote`); the report as JSON and text.
    #[pyo3(signature = (name, *, keep=false))]
    fn promote_json(&self, py: Python<'_>, name: String, keep: bool) -> PyResult<(String, String)> {
        let opts = memlane_store::PromoteOptions { keep };
        let r = self.with(py, None, async move |s| {
            memlane_store::promote(s, &name, &opts).await
        })?;
        Ok((json(&r)?, r.to_string()))
    }

    /// Build a vector index on a space outside a migration (`spec`: the JSON of an
    /// index spec, as a `create_index` step's `index` table); its recall is proven
    /// before it lands. Returns the new version.
    #[pyo3(signature = (space, spec))]
    fn create_index(&self, py: Python<'_>, space: Option<String>, spec: &str) -> PyResult<u64> {
        let spec: memlane_core::IndexSpec = serde_json::from_str(spec)
            .map_err(|e| crate::error::input(format!("index parameters: {e}")))?;
        self.with(py, None, async move |s| {
            s.create_index(space.as_deref(), spec).await
        })
    }

    /// The fields a caller sees (memlane's internal digest columns left out).
    fn user_fields(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, None, async |s| Ok(s.user_fields()))
    }

    /// Rehearse a folder's pending migrations on a branch; the rehearsal as JSON and
    /// text. The store itself is not changed.
    #[pyo3(signature = (migrations, embedders=None, *, sample=None, keep=false, name=None, approve=None, to=None))]
    #[allow(clippy::too_many_arguments)]
    fn rehearse_json(
        &self,
        py: Python<'_>,
        migrations: &str,
        embedders: Option<&Bound<'_, PyDict>>,
        sample: Option<u64>,
        keep: bool,
        name: Option<String>,
        approve: Option<String>,
        to: Option<u32>,
    ) -> PyResult<(String, String)> {
        let (folder, emb, map) = folder_with_embedders(py, migrations, embedders)?;
        let opts = memlane_store::RehearseOptions {
            name,
            sample,
            keep,
            approve,
            to,
        };
        let r = self.with(py, Some(&emb), async move |s| {
            memlane_store::rehearse(s, folder, &map, opts).await
        })?;
        Ok((json(&r)?, r.to_string()))
    }

    /// Tags as (name, version) pairs.
    fn tags(&self, py: Python<'_>) -> PyResult<Vec<(String, u64)>> {
        self.with(py, None, async |s| s.tags().await)
    }

    /// Commit a new version equal to an old one (version number or tag): forward only.
    fn restore(&self, py: Python<'_>, to: String, reason: String) -> PyResult<u64> {
        self.with(py, None, async move |s| s.restore(&to, &reason).await)
    }

    /// Abort the in-flight re-embed (before it completes): drops the new space's data.
    fn abort(&self, py: Python<'_>, reason: String) -> PyResult<u64> {
        self.with(py, None, async move |s| s.abort(&reason).await)
    }

    /// Drop an inactive space's vectors (after a re-embed completed).
    fn contract(&self, py: Python<'_>, space: String, reason: String) -> PyResult<u64> {
        self.with(py, None, async move |s| s.contract(&space, &reason).await)
    }

    /// Compatibility report (JSON) of two spaces of this store on a paired sample.
    #[pyo3(signature = (old, new, *, sample=2000, k=10))]
    fn compat_json(
        &self,
        py: Python<'_>,
        old: String,
        new: String,
        sample: usize,
        k: usize,
    ) -> PyResult<(String, String)> {
        let r = self.with(py, None, async move |s| {
            let p = s.paired_sample(&old, &new, sample).await?;
            let (o, n) = (s.space(Some(&old))?.clone(), s.space(Some(&new))?.clone());
            memlane_store::compat_report(&p, &o, &n, k, None)
        })?;
        json_text(&r)
    }

    /// Write the live rows to a JSONL file (`.jsonl`) or Arrow IPC file (`.arrow`).
    fn export(&self, py: Python<'_>, path: String) -> PyResult<u64> {
        self.with(py, None, async move |s| {
            memlane_store::export(s, &path).await
        })
    }

    /// Write a review sample (Arrow IPC) as `memlane export-sample` does: up to `rows`
    /// records spread over the store, every space's vectors, and, for each pending
    /// re-embed of `migrations` whose embedder is given, its new space's vectors for the
    /// sampled rows. Returns the sample description as JSON.
    #[pyo3(signature = (path, rows=2000, migrations=None, embedders=None))]
    fn export_sample_json(
        &self,
        py: Python<'_>,
        path: String,
        rows: usize,
        migrations: Option<&str>,
        embedders: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let files = migrations.map(|m| folder(py, m)).transpose()?;
        let emb = Embedders::from_py(embedders)?;
        let map = emb.map.clone();
        let r = self.with(py, Some(&emb), async move |s| {
            s.export_sample(&path, rows, files.as_deref(), &map).await
        })?;
        json(&r)
    }

    fn __repr__(&self) -> String {
        format!("Store({:?})", self.uri)
    }
}

/// Review a folder's pending migrations on a sample written by `export_sample` (plan,
/// lint, compatibility checks with their gates, invariants), as the browser preview and
/// `memlane review` do. Returns the review as JSON.
#[pyfunction]
#[pyo3(signature = (sample, migrations, *, k=10))]
pub(crate) fn review_json(
    py: Python<'_>,
    sample: &str,
    migrations: &str,
    k: usize,
) -> PyResult<(String, String)> {
    let r = py
        .detach(|| memlane_store::review_sample(sample, migrations, k))
        .map_err(|e| to_py(py, e, None))?;
    json_text(&r)
}

/// Create a store from a JSONL file of records (as `memlane init --from`): extra keys
/// become typed metadata fields, space names are accepted as vector keys.
#[pyfunction]
#[pyo3(signature = (uri, path, spaces=None, *, plain=false, embedders=None, storage_options=None, registry=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_from_jsonl(
    py: Python<'_>,
    uri: &str,
    path: &str,
    spaces: Option<Vec<Space>>,
    plain: bool,
    embedders: Option<&Bound<'_, PyDict>>,
    storage_options: Option<HashMap<String, String>>,
    registry: Option<&Bound<'_, PyDict>>,
) -> PyResult<Store> {
    let emb = Embedders::with_named(embedders, registry)?;
    let opts = CreateOptions {
        plain,
        spaces: spaces_of(spaces),
        fields: vec![],
        rows_per_fragment: None,
        storage: storage_of(storage_options),
        registry: emb.named.clone(),
    };
    let r = py.detach(|| {
        crate::block_on(async {
            let records = memlane_store::read_jsonl(path)?;
            let mut s = CoreStore::create_from_json(uri, opts, &records, &emb.map).await?;
            s.refresh().await?;
            Ok::<_, StoreError>(s)
        })
    });
    r.map(Store::wrap).map_err(|e| emb.err(py, e))
}
