//! One crawl: list → (known objects skipped) → examine new objects → group → evolve, register
//! and ingest → deprecate vanished tables → report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::RestCatalog;
use lakeform_api::connection::S3Connection;
use lakeform_api::crawler::{
    CrawlRun, CrawledTable, CrawlerSpec, DeleteBehavior, ObjectError, RecrawlPolicy, UpdateBehavior,
};
use lakeform_api::datalake::DataLake;

use crate::crawl::catalog::{
    self, PROP_CRAWLER, PROP_DEPRECATED, PROP_FORMAT, PROP_NAME_MAPPING, PROP_OBJECTS, PROP_SOURCE,
};
use crate::crawl::classify::Classifiers;
use crate::crawl::compression::{self, Compression};
use crate::crawl::datafile;
use crate::crawl::error::{CrawlError, ObjectFailure};
use crate::crawl::evolve;
use crate::crawl::examine::{Examined, examine};
use crate::crawl::ingest;
use crate::crawl::layout::{self, Dataset, LayoutObject, LayoutOptions};
use crate::crawl::listing::{self, Excludes};
use crate::crawl::model::{Format, Inferred, ObjectMeta};
use crate::crawl::schema::{self, Widening};
use crate::lake;
use crate::lake::catalog::{CatalogConn, PartitionColumn};
use crate::lake::s3::Store;

/// Concurrent GETs while examining new objects.
pub const CONCURRENCY: usize = 16;
/// Errors listed in the report (the count is in the message).
const MAX_ERRORS: usize = 50;

/// Everything a crawl needs.
#[derive(Clone, Debug)]
pub struct CrawlInput {
    /// `namespace/name` of the Crawler (or its name in file mode): owner of the tables.
    pub crawler_id: String,
    pub spec: CrawlerSpec,
    pub lake: DataLake,
    pub s3: S3Connection,
    pub catalog: CatalogConn,
    /// Examine only these new objects (`bucket/key`), e.g. the keys of a batch of bucket
    /// notifications; other new objects wait for a later run. Known objects are always
    /// considered. `None`: every new object.
    pub only_keys: Option<BTreeSet<String>>,
}

/// What a crawl did.
#[derive(Clone, Debug, Default)]
pub struct CrawlOutcome {
    pub run: CrawlRun,
    pub tables: Vec<CrawledTable>,
    /// GET requests issued (for the "unchanged re-run reads nothing" promise).
    pub gets: u64,
    pub lists: u64,
}

/// A listed object of a target.
struct Entry {
    target: usize,
    bucket: String,
    meta: ObjectMeta,
    rel: String,
}

impl Entry {
    fn full(&self) -> String {
        format!("{}/{}", self.bucket, self.meta.key)
    }
}

/// What the crawler knows about a table it maintains.
struct Known {
    table: Table,
    format: Format,
    objects: BTreeMap<String, String>,
}

#[derive(Default)]
struct Report {
    created: i64,
    updated: i64,
    deprecated: i64,
    deleted: i64,
    unclassified: i64,
    errors: Vec<ObjectError>,
    notes: Vec<String>,
}

impl Report {
    fn error(&mut self, key: &str, f: impl std::fmt::Display) {
        self.errors.push(ObjectError {
            key: key.to_string(),
            message: f.to_string(),
        });
    }
}

fn skipped_key(crawler: &str) -> String {
    format!("lakeform.crawler.{crawler}.skipped")
}

/// Crawls: registers, ingests, evolves and deprecates tables in the catalog.
pub async fn crawl(input: &CrawlInput) -> Result<CrawlOutcome, CrawlError> {
    run_crawl(input, false).await
}

/// Lists, examines and groups without touching the catalog (no state: every object is new).
/// The outcome's tables are the tables a first crawl would create.
pub async fn dry_run(input: &CrawlInput) -> Result<CrawlOutcome, CrawlError> {
    run_crawl(input, true).await
}

async fn run_crawl(input: &CrawlInput, dry: bool) -> Result<CrawlOutcome, CrawlError> {
    let spec = &input.spec;
    let cls = Classifiers::from_spec(spec)?;
    let store = Store::new(&input.s3);
    let ns = NamespaceIdent::new(spec.database.clone());
    let catalog = match dry {
        true => None,
        false => {
            let c = lake::catalog::connect(&input.catalog, &input.s3).await?;
            lake::catalog::ensure_namespace(&c, &ns).await?;
            Some(c)
        }
    };
    let mut report = Report::default();
    let run_id = run_id();

    // what earlier runs did
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let existing = match &catalog {
        Some(c) => catalog::crawler_tables(c, &ns, &input.crawler_id).await?,
        None => Vec::new(),
    };
    for table in existing {
        let props = table.metadata().properties();
        let format = props
            .get(PROP_FORMAT)
            .and_then(|f| Format::parse(f))
            .unwrap_or(Format::Parquet);
        let objects: BTreeMap<String, String> = props
            .get(PROP_OBJECTS)
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        known.insert(
            table.identifier().name().to_string(),
            Known {
                table,
                format,
                objects,
            },
        );
    }
    let known_keys: HashMap<String, (String, String)> = known
        .iter()
        .flat_map(|(t, k)| {
            k.objects
                .iter()
                .map(move |(key, fp)| (key.clone(), (t.clone(), fp.clone())))
        })
        .collect();
    let skipped_prop = skipped_key(&input.crawler_id);
    let old_skipped: BTreeMap<String, String> = match &catalog {
        Some(c) => c
            .get_namespace(&ns)
            .await
            .map_err(CrawlError::catalog(format!(
                "loading namespace {}",
                spec.database
            )))?
            .properties()
            .get(&skipped_prop)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };

    // list
    let mut entries: Vec<Entry> = Vec::new();
    let mut scanned = 0i64;
    for (t, target) in spec.targets.iter().enumerate() {
        let zone = input
            .lake
            .spec
            .zones
            .iter()
            .find(|z| z.name == target.zone)
            .ok_or_else(|| {
                CrawlError::Config(format!(
                    "spec.targets[{t}].zone {:?} is not a zone of the lake",
                    target.zone
                ))
            })?;
        let bucket = input.lake.bucket_name(zone);
        let excludes = Excludes::new(&target.exclude)?;
        for meta in store
            .list(&bucket, listing::list_prefix(&target.prefix))
            .await?
        {
            if !listing::in_target(&target.prefix, &meta.key) {
                continue;
            }
            scanned += 1;
            let rel = listing::relative(&target.prefix, &meta.key).to_string();
            if listing::is_noise(&meta.key, meta.size) || excludes.excluded(&rel) {
                continue;
            }
            entries.push(Entry {
                target: t,
                bucket: bucket.clone(),
                meta,
                rel,
            });
        }
    }

    // sort out what is known, skipped before, or new
    let known_folders: HashSet<String> = known_keys.keys().map(|k| parent(k).to_string()).collect();
    let mut new_skipped: BTreeMap<String, String> = BTreeMap::new();
    let mut to_examine: Vec<usize> = Vec::new();
    let mut known_entry: HashMap<usize, String> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let full = e.full();
        let fp = e.meta.fingerprint();
        if let Some((table, old)) = known_keys.get(&full) {
            known_entry.insert(i, table.clone());
            if *old != fp {
                // rewritten in place: its old data is in the table and cannot be replaced
                let msg = format!(
                    "changed since it was added to table {table} (ETag/size differ); iceberg-rust 0.10.1 cannot replace the data it holds, so it is not read again"
                );
                report.error(&full, &msg);
            }
            continue;
        }
        if let Some(old) = old_skipped.get(&full)
            && let Some((ofp, reason)) = old.split_once('#')
            && ofp == fp
        {
            match reason.strip_prefix("error:") {
                Some(msg) => report.error(&full, msg),
                None => report.unclassified += 1,
            }
            new_skipped.insert(full, old.clone());
            continue;
        }
        if input
            .only_keys
            .as_ref()
            .is_some_and(|only| !only.contains(&full))
        {
            continue;
        }
        if spec.recrawl_policy == RecrawlPolicy::NewFoldersOnly
            && known_folders.contains(parent(&full))
        {
            continue;
        }
        to_examine.push(i);
    }

    // examine new objects, a bounded number at a time
    let examined: Vec<(usize, Result<Examined, ObjectFailure>)> = futures::stream::iter(to_examine)
        .map(|i| {
            let e = &entries[i];
            let (store, cls) = (&store, &cls);
            async move { (i, examine(store, &e.bucket, &e.meta, cls).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let examined_count = examined.len();
    let mut inferred: HashMap<usize, Inferred> = HashMap::new();
    for (i, result) in examined {
        let e = &entries[i];
        let full = e.full();
        match result {
            Ok(Examined::Classified(inf)) => {
                inferred.insert(i, *inf);
            }
            Ok(Examined::Unclassified(why)) => {
                tracing::info!(key = %full, reason = %why, "unclassified");
                report.unclassified += 1;
                new_skipped.insert(
                    full,
                    format!("{}#unclassified: {why}", e.meta.fingerprint()),
                );
            }
            Err(f) => {
                new_skipped.insert(full.clone(), format!("{}#error:{f}", e.meta.fingerprint()));
                report.error(&full, f);
            }
        }
    }

    // group into datasets, per target
    let mut plans: Vec<(String, Dataset, Vec<usize>)> = Vec::new();
    // names of tables someone else owns in the namespace are taken
    let mut used_names: HashSet<String> = match &catalog {
        Some(c) => c
            .list_tables(&ns)
            .await
            .map_err(CrawlError::catalog(format!(
                "listing tables of {}",
                spec.database
            )))?
            .into_iter()
            .map(|t| t.name().to_string())
            .filter(|n| !known.contains_key(n))
            .collect(),
        None => HashSet::new(),
    };
    for (t, target) in spec.targets.iter().enumerate() {
        let idx: Vec<usize> = (0..entries.len())
            .filter(|i| {
                entries[*i].target == t && (inferred.contains_key(i) || known_entry.contains_key(i))
            })
            .collect();
        let mut objs = Vec::with_capacity(idx.len());
        for &i in &idx {
            let (format, schema) = match (inferred.get(&i), known_entry.get(&i)) {
                (Some(inf), _) => (inf.format, inf.schema.clone()),
                (None, Some(table)) => {
                    let k = &known[table];
                    let full = catalog::arrow_schema(&k.table)?;
                    let data = catalog::data_schema(&full, &catalog::partition_columns(&k.table));
                    (k.format, Arc::new(data))
                }
                (None, None) => continue,
            };
            objs.push(LayoutObject {
                rel: entries[i].rel.clone(),
                format,
                schema,
            });
        }
        let opts = LayoutOptions {
            table_level: spec.grouping.table_level.map(|l| l.max(1) as usize),
            combine_compatible_schemas: spec.grouping.combine_compatible_schemas,
        };
        let bucket = entries
            .iter()
            .find(|e| e.target == t)
            .map(|e| e.bucket.clone())
            .unwrap_or_default();
        let base = target
            .prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(&bucket)
            .to_string();
        for ds in layout::group(&objs, opts, &base) {
            let members: Vec<usize> = ds.objects.iter().map(|(o, _)| idx[*o]).collect();
            // a dataset holding objects of a known table keeps that table's name
            let name = members
                .iter()
                .find_map(|i| known_entry.get(i).cloned())
                .unwrap_or_else(|| {
                    let base = layout::sanitize(&format!(
                        "{}{}",
                        spec.table_prefix.clone().unwrap_or_default(),
                        ds.name
                    ));
                    let mut name = base.clone();
                    let mut n = 2;
                    while used_names.contains(&name)
                        || (known.contains_key(&name)
                            && !members.iter().any(|i| known_entry.get(i) == Some(&name)))
                    {
                        name = format!("{base}_{n}");
                        n += 1;
                    }
                    name
                });
            used_names.insert(name.clone());
            plans.push((name, ds, members));
        }
    }

    if let Some(threshold) = spec.table_threshold {
        let would_create = plans
            .iter()
            .filter(|(n, ..)| !known.contains_key(n))
            .count();
        if would_create > threshold.max(0) as usize {
            return Err(CrawlError::TableThreshold {
                would_create,
                threshold,
            });
        }
    }

    let Some(catalog) = catalog else {
        return Ok(planned(
            &plans,
            &entries,
            spec,
            &report,
            scanned,
            examined_count,
            &store,
        ));
    };

    // register
    let mut touched: HashSet<String> = HashSet::new();
    for (name, ds, members) in plans {
        touched.insert(name.clone());
        let ident = TableIdent::new(ns.clone(), name.clone());
        let new: Vec<(usize, Vec<Option<String>>)> = ds
            .objects
            .iter()
            .zip(&members)
            .filter(|(_, i)| inferred.contains_key(i))
            .map(|((_, values), i)| (*i, values.clone()))
            .collect();
        let listed: HashSet<String> = members.iter().map(|i| entries[*i].full()).collect();
        let ctx = DatasetCtx {
            catalog: &catalog,
            conn: &input.catalog,
            store: &store,
            entries: &entries,
            inferred: &inferred,
            spec,
            crawler: &input.crawler_id,
            run_id: &run_id,
        };
        let prev = known.get(&name);
        let target = &spec.targets[entries[members[0]].target];
        let source = format!(
            "s3://{}/{}",
            entries[members[0]].bucket,
            join_key(&target.prefix, &ds.root.join("/"))
        );
        ctx.register(&ident, &ds, &new, &listed, prev, &source, &mut report)
            .await?;
    }

    // tables whose data is gone
    for (name, k) in &known {
        if touched.contains(name) || k.objects.is_empty() {
            continue;
        }
        let ident = k.table.identifier().clone();
        match spec.schema_change_policy.delete {
            DeleteBehavior::Delete => {
                catalog
                    .drop_table(&ident)
                    .await
                    .map_err(CrawlError::catalog(format!("dropping {ident}")))?;
                report.deleted += 1;
            }
            DeleteBehavior::Deprecate => {
                if k.table
                    .metadata()
                    .properties()
                    .get(PROP_DEPRECATED)
                    .map(String::as_str)
                    != Some("true")
                {
                    let tx = Transaction::new(&k.table);
                    let tx = tx
                        .update_table_properties()
                        .set(PROP_DEPRECATED.into(), "true".into())
                        .apply(tx)
                        .map_err(CrawlError::catalog(format!("deprecating {ident}")))?;
                    tx.commit(&catalog)
                        .await
                        .map_err(CrawlError::catalog(format!("deprecating {ident}")))?;
                    report.deprecated += 1;
                }
            }
            DeleteBehavior::Log => report
                .notes
                .push(format!("the data of table {name} is gone (delete: Log)")),
        }
    }

    // remember objects that could not be used, so a re-run does not read them again
    if new_skipped != old_skipped {
        let mut updates = HashMap::new();
        let mut removals = Vec::new();
        if new_skipped.is_empty() {
            removals.push(skipped_prop.clone());
        } else {
            updates.insert(skipped_prop.clone(), serde_json::to_string(&new_skipped)?);
        }
        if let Err(e) = lake::rest::update_namespace_properties(
            &input.catalog,
            &spec.database,
            updates,
            removals,
        )
        .await
        {
            report
                .notes
                .push(format!("could not record skipped objects: {e}"));
        }
    }

    let tables = table_status(&catalog, &ns, &input.crawler_id).await?;
    let errors_total = report.errors.len();
    let mut message = format!(
        "{} objects listed, {} examined, {} tables ({} created, {} updated, {} deprecated, {} deleted), {} unclassified, {} errors",
        scanned,
        examined_count,
        tables.len(),
        report.created,
        report.updated,
        report.deprecated,
        report.deleted,
        report.unclassified,
        errors_total
    );
    for n in &report.notes {
        message.push_str("; ");
        message.push_str(n);
    }
    report.errors.truncate(MAX_ERRORS);
    Ok(CrawlOutcome {
        run: CrawlRun {
            tables_created: report.created,
            tables_updated: report.updated,
            tables_deprecated: report.deprecated,
            tables_deleted: report.deleted,
            objects_scanned: scanned,
            bytes_read: store.counters.bytes() as i64,
            unclassified_objects: report.unclassified,
            errors: report.errors,
            message: Some(message),
            ..Default::default()
        },
        tables,
        gets: store.counters.gets(),
        lists: store.counters.lists(),
    })
}

/// The outcome of a dry run: the tables a crawl would create.
fn planned(
    plans: &[(String, Dataset, Vec<usize>)],
    entries: &[Entry],
    spec: &CrawlerSpec,
    report: &Report,
    scanned: i64,
    examined: usize,
    store: &Store,
) -> CrawlOutcome {
    let tables: Vec<CrawledTable> = plans
        .iter()
        .map(|(name, ds, members)| {
            let e = &entries[members[0]];
            let prefix = &spec.targets[e.target].prefix;
            CrawledTable {
                name: name.clone(),
                format: ds.format.as_str().to_string(),
                location: format!("s3://{}/{}", e.bucket, join_key(prefix, &ds.root.join("/"))),
                partitions: ds.partitions.iter().map(|p| p.name.clone()).collect(),
                schema_version: 0,
                deprecated: false,
            }
        })
        .collect();
    let mut errors = report.errors.clone();
    let errors_total = errors.len();
    errors.truncate(MAX_ERRORS);
    CrawlOutcome {
        run: CrawlRun {
            objects_scanned: scanned,
            bytes_read: store.counters.bytes() as i64,
            unclassified_objects: report.unclassified,
            message: Some(format!(
                "dry run: {scanned} objects listed, {examined} examined, {} tables planned, {} unclassified, {errors_total} errors",
                tables.len(),
                report.unclassified
            )),
            errors,
            ..Default::default()
        },
        tables,
        gets: store.counters.gets(),
        lists: store.counters.lists(),
    }
}

fn parent(key: &str) -> &str {
    key.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn join_key(prefix: &str, rest: &str) -> String {
    let p = prefix.trim_end_matches('/');
    match (p.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => p.to_string(),
        (false, false) => format!("{p}/{rest}"),
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{}", std::process::id())
}

async fn table_status(
    catalog: &RestCatalog,
    ns: &NamespaceIdent,
    crawler: &str,
) -> Result<Vec<CrawledTable>, CrawlError> {
    let mut out: Vec<CrawledTable> = catalog::crawler_tables(catalog, ns, crawler)
        .await?
        .iter()
        .map(|t| {
            let props = t.metadata().properties();
            CrawledTable {
                name: t.identifier().name().to_string(),
                format: props.get(PROP_FORMAT).cloned().unwrap_or_default(),
                location: props
                    .get(PROP_SOURCE)
                    .cloned()
                    .unwrap_or_else(|| t.metadata().location().to_string()),
                partitions: catalog::partition_columns(t)
                    .into_iter()
                    .map(|p| p.name)
                    .collect(),
                schema_version: t.metadata().current_schema_id(),
                deprecated: props.get(PROP_DEPRECATED).map(String::as_str) == Some("true"),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Shared state for registering datasets.
struct DatasetCtx<'a> {
    catalog: &'a RestCatalog,
    conn: &'a CatalogConn,
    store: &'a Store,
    entries: &'a [Entry],
    inferred: &'a HashMap<usize, Inferred>,
    spec: &'a CrawlerSpec,
    crawler: &'a str,
    run_id: &'a str,
}

impl DatasetCtx<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn register(
        &self,
        ident: &TableIdent,
        ds: &Dataset,
        new: &[(usize, Vec<Option<String>>)],
        listed: &HashSet<String>,
        prev: Option<&Known>,
        source: &str,
        report: &mut Report,
    ) -> Result<(), CrawlError> {
        let mut objects: BTreeMap<String, String> =
            prev.map(|k| k.objects.clone()).unwrap_or_default();
        // objects gone from storage
        let gone: Vec<String> = objects
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for key in &gone {
            objects.remove(key);
            if ds.format.in_place() {
                report.error(
                    key,
                    format!(
                        "removed from storage but still a data file of {ident}: iceberg-rust 0.10.1 has no delete-files/overwrite action to drop it"
                    ),
                );
            } else {
                report
                    .notes
                    .push(format!("{key} is gone; its rows stay ingested in {ident}"));
            }
        }
        if new.is_empty() && gone.is_empty() {
            return Ok(());
        }

        let (mut table, created) = match prev {
            Some(k) => (k.table.clone(), false),
            None => {
                let props = HashMap::from([
                    (PROP_CRAWLER.to_string(), self.crawler.to_string()),
                    (PROP_FORMAT.to_string(), ds.format.as_str().to_string()),
                    (PROP_SOURCE.to_string(), source.to_string()),
                ]);
                let t = lake::catalog::create_table(
                    self.catalog,
                    ident,
                    &ds.schema,
                    &ds.partitions,
                    props,
                )
                .await?;
                report.created += 1;
                (t, true)
            }
        };
        let partitions: Vec<PartitionColumn> = catalog::partition_columns(&table);

        // schema evolution
        let mut usable: Vec<(usize, Vec<Option<String>>)> = Vec::new();
        let mut evolved = false;
        if !created {
            let current = catalog::data_schema(&catalog::arrow_schema(&table)?, &partitions);
            let mut merged = current.clone();
            for (i, values) in new {
                let inf = &self.inferred[i];
                let full = self.entries[*i].full();
                if values.len() != partitions.len() {
                    report.error(
                        &full,
                        format!(
                            "{} partition levels where {ident} has {}",
                            values.len(),
                            partitions.len()
                        ),
                    );
                    continue;
                }
                match schema::merge(&merged, &inf.schema, Widening::Iceberg) {
                    Some(m) => {
                        merged = m;
                        usable.push((*i, values.clone()));
                    }
                    None => report.error(&full, format!("schema does not fit {ident}: {} (Iceberg allows only int→long, float→double, decimal precision and new columns)", describe(&inf.schema))),
                }
            }
            let diff = schema::diff(&current, &merged);
            if !diff.is_empty() {
                match self.spec.schema_change_policy.update {
                    UpdateBehavior::Update => {
                        let (adds, widen, refused) = additions(&diff);
                        if !widen.is_empty() {
                            evolve::widen_columns(self.conn, &table, &widen).await?;
                            table = self
                                .catalog
                                .load_table(ident)
                                .await
                                .map_err(CrawlError::catalog(format!("reloading {ident}")))?;
                            evolved = true;
                        }
                        if !adds.is_empty() {
                            table = lake::catalog::add_columns(self.catalog, &table, &adds).await?;
                            evolved = true;
                        }
                        if !refused.is_empty() {
                            report.notes.push(format!(
                                "{ident}: type changes Iceberg does not allow: {}",
                                refused.join(", ")
                            ));
                        }
                    }
                    UpdateBehavior::Log => report.notes.push(format!(
                        "{ident}: schema change not applied (update: Log): {}",
                        diff.added
                            .iter()
                            .map(|f| format!("+{}", f.name()))
                            .chain(diff.widened.iter().map(|(o, n)| format!(
                                "{}:{}→{}",
                                o.name(),
                                o.data_type(),
                                n.data_type()
                            )))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            // objects that still do not fit (widening not applied) are left out
            let now = catalog::data_schema(&catalog::arrow_schema(&table)?, &partitions);
            usable.retain(|(i, _)| {
                let inf = &self.inferred[i];
                let fits = schema::merge(&now, &inf.schema, Widening::Iceberg)
                    .is_some_and(|m| schema::diff(&now, &m).widened.is_empty());
                if !fits {
                    report.error(
                        &self.entries[*i].full(),
                        format!("types wider than {ident} has; not added"),
                    );
                }
                fits
            });
        } else {
            usable = new.to_vec();
        }

        // data files
        let mut files: Vec<DataFile> = Vec::new();
        let mut added: Vec<usize> = Vec::new();
        if ds.format.in_place() {
            let spec_id = table.metadata().default_partition_spec_id();
            for (i, values) in &usable {
                let e = &self.entries[*i];
                let Some(meta) = self.inferred[i].parquet.as_ref() else {
                    continue;
                };
                let made = datafile::partition_struct(&partitions, values).and_then(|p| {
                    datafile::data_file(
                        format!("s3://{}/{}", e.bucket, e.meta.key),
                        e.meta.size,
                        meta,
                        table.metadata().current_schema(),
                        p,
                        spec_id,
                    )
                });
                match made {
                    Ok(f) => {
                        files.push(f);
                        added.push(*i);
                    }
                    Err(f) => report.error(&e.full(), f),
                }
            }
        } else {
            let (f, a) = self.ingest(&table, &partitions, &usable, report).await;
            files = f;
            added = a;
        }

        // one commit: the data files, the object state and the name mapping
        for i in &added {
            let e = &self.entries[*i];
            objects.insert(e.full(), e.meta.fingerprint());
        }
        let mut tx = Transaction::new(&table);
        let mut props = tx
            .update_table_properties()
            .set(
                PROP_OBJECTS.into(),
                serde_json::to_string(&objects).map_err(CrawlError::Report)?,
            )
            .set(
                PROP_NAME_MAPPING.into(),
                catalog::name_mapping(table.metadata().current_schema()),
            );
        if table.metadata().properties().contains_key(PROP_DEPRECATED) {
            props = props.remove(PROP_DEPRECATED.into());
        }
        tx = props
            .apply(tx)
            .map_err(CrawlError::catalog(format!("properties of {ident}")))?;
        if !files.is_empty() {
            tx = tx
                .fast_append()
                .set_snapshot_properties(HashMap::from([
                    ("lakeform.run".to_string(), self.run_id.to_string()),
                    (
                        "lakeform.source-objects".to_string(),
                        added.len().to_string(),
                    ),
                ]))
                .add_data_files(files)
                .apply(tx)
                .map_err(CrawlError::catalog(format!("append to {ident}")))?;
        }
        tx.commit(self.catalog)
            .await
            .map_err(CrawlError::catalog(format!("committing to {ident}")))?;
        if !created && (evolved || !added.is_empty()) {
            report.updated += 1;
        }
        Ok(())
    }

    /// Converts new text/Avro objects to Parquet data files, one writer per partition.
    async fn ingest(
        &self,
        table: &Table,
        partitions: &[PartitionColumn],
        usable: &[(usize, Vec<Option<String>>)],
        report: &mut Report,
    ) -> (Vec<DataFile>, Vec<usize>) {
        let full_schema: SchemaRef =
            match iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema()) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    report.notes.push(format!("{}: {e}", table.identifier()));
                    return (Vec::new(), Vec::new());
                }
            };
        let data: SchemaRef = Arc::new(Schema::new(
            full_schema
                .fields()
                .iter()
                .filter(|f| !partitions.iter().any(|p| &p.name == f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let mut groups: BTreeMap<Vec<Option<String>>, Vec<usize>> = BTreeMap::new();
        for (i, values) in usable {
            groups.entry(values.clone()).or_default().push(*i);
        }
        let mut files = Vec::new();
        let mut added = Vec::new();
        for (values, members) in groups {
            let partition = match datafile::partition_struct(partitions, &values) {
                Ok(p) => p,
                Err(f) => {
                    for i in &members {
                        report.error(&self.entries[*i].full(), &f);
                    }
                    continue;
                }
            };
            let mut batches = Vec::new();
            let mut ok = Vec::new();
            for i in members {
                let e = &self.entries[i];
                match self
                    .read_object(i, &data, &full_schema, partitions, &values)
                    .await
                {
                    Ok(b) => {
                        batches.extend(b);
                        ok.push(i);
                    }
                    Err(f) => report.error(&e.full(), f),
                }
            }
            if ok.is_empty() {
                continue;
            }
            let part = (!partitions.is_empty()).then_some(partition);
            match ingest::write(table, part, batches, self.run_id).await {
                Ok(f) => {
                    files.extend(f);
                    added.extend(ok);
                }
                Err(f) => {
                    for i in ok {
                        report.error(&self.entries[i].full(), &f);
                    }
                }
            }
        }
        (files, added)
    }

    async fn read_object(
        &self,
        i: usize,
        data: &SchemaRef,
        full: &SchemaRef,
        partitions: &[PartitionColumn],
        values: &[Option<String>],
    ) -> Result<Vec<arrow_array::RecordBatch>, ObjectFailure> {
        let e = &self.entries[i];
        let inf = &self.inferred[&i];
        let body = match &inf.body {
            Some(b) => b.clone(),
            None => {
                let raw = self.store.get_all(&e.bucket, &e.meta.key).await?;
                let c = match Compression::from_magic(&raw) {
                    Compression::None => Compression::from_key(&e.meta.key),
                    c => c,
                };
                if inf.format == Format::Avro {
                    raw
                } else {
                    bytes::Bytes::from(compression::decompress(&raw, c, false, usize::MAX)?)
                }
            }
        };
        let batches = ingest::decode(&body, inf.format, &inf.dialect, &inf.schema, data)?;
        batches
            .iter()
            .map(|b| ingest::with_partitions(b, full, partitions, values))
            .collect()
    }
}

/// Columns to add (with their parent path for nested ones), promotions Iceberg allows (dotted
/// path → new type) and type changes it does not.
#[allow(clippy::type_complexity)]
fn additions(
    diff: &schema::SchemaDiff,
) -> (
    Vec<(Option<String>, Field)>,
    Vec<(String, iceberg::spec::PrimitiveType)>,
    Vec<String>,
) {
    let mut adds: Vec<(Option<String>, Field)> =
        diff.added.iter().map(|f| (None, f.clone())).collect();
    let mut widen = Vec::new();
    let mut refused = Vec::new();
    fn nested(
        path: &str,
        old: &Field,
        new: &Field,
        adds: &mut Vec<(Option<String>, Field)>,
        widen: &mut Vec<(String, iceberg::spec::PrimitiveType)>,
        refused: &mut Vec<String>,
    ) {
        use iceberg::spec::PrimitiveType as P;
        match (old.data_type(), new.data_type()) {
            (DataType::Struct(of), DataType::Struct(nf)) => {
                for f in nf.iter() {
                    match of.iter().find(|o| o.name() == f.name()) {
                        None => adds.push((Some(path.to_string()), f.as_ref().clone())),
                        Some(o) if o.data_type() != f.data_type() => {
                            nested(&format!("{path}.{}", f.name()), o, f, adds, widen, refused)
                        }
                        Some(_) => {}
                    }
                }
            }
            (DataType::Int32, DataType::Int64) => widen.push((path.to_string(), P::Long)),
            (DataType::Float32, DataType::Float64) => widen.push((path.to_string(), P::Double)),
            (DataType::Decimal128(_, s1), DataType::Decimal128(p, s)) if s1 == s => widen.push((
                path.to_string(),
                P::Decimal {
                    precision: *p as u32,
                    scale: *s as u32,
                },
            )),
            (a, b) => refused.push(format!("{path}: {a}→{b}")),
        }
    }
    for (old, new) in &diff.widened {
        nested(old.name(), old, new, &mut adds, &mut widen, &mut refused);
    }
    (adds, widen, refused)
}

fn describe(s: &Schema) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
