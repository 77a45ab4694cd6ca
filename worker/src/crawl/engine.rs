//! One crawl, as a pipeline of named stages (`run_crawl` reads top to bottom):
//!
//! 1. `connect` to the catalog (not in a dry run) and `Previous::load` what earlier runs left:
//!    the crawler's tables with their source objects, and the objects it could not use;
//! 2. `list` every target ([`crate::crawl::listing`]);
//! 3. `triage` the listed objects: known (not read again), skipped before with the same
//!    fingerprint, or new;
//! 4. `examine_new` objects ([`crate::crawl::examine`]), [`CONCURRENCY`] at a time;
//! 5. `plan_tables`: group the objects into datasets ([`crate::crawl::layout`]) and name their
//!    tables, then `check_threshold`;
//! 6. register, evolve and ingest each planned table ([`crate::crawl::register`]), then
//!    `retire_vanished` tables whose data is gone and `remember_skipped` objects;
//! 7. report: `outcome`, or `planned` for a dry run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::RestCatalog;
use lakeform_api::connection::S3Connection;
use lakeform_api::crawler::{
    CrawlRun, CrawledTable, CrawlerSpec, DeleteBehavior, ObjectError, RecrawlPolicy,
};
use lakeform_api::datalake::DataLake;

use crate::crawl::catalog::{self, PROP_DEPRECATED, PROP_FORMAT, PROP_OBJECTS, PROP_SOURCE};
use crate::crawl::classify::Classifiers;
use crate::crawl::error::{CrawlError, ObjectFailure};
use crate::crawl::examine::{Examined, examine};
use crate::crawl::layout::{self, Dataset, LayoutObject, LayoutOptions};
use crate::crawl::listing::{self, Excludes};
use crate::crawl::model::{Format, Inferred, ObjectMeta};
use crate::crawl::register::DatasetCtx;
use crate::lake;
use crate::lake::catalog::CatalogConn;
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
pub(crate) struct Entry {
    pub(crate) target: usize,
    pub(crate) bucket: String,
    pub(crate) meta: ObjectMeta,
    pub(crate) rel: String,
}

impl Entry {
    /// `bucket/key`, how the crawler's state names the object.
    pub(crate) fn full(&self) -> String {
        format!("{}/{}", self.bucket, self.meta.key)
    }
}

/// What the crawler knows about a table it maintains.
pub(crate) struct Known {
    pub(crate) table: Table,
    pub(crate) format: Format,
    /// Source objects (`bucket/key`) in the table → their fingerprint when added.
    pub(crate) objects: BTreeMap<String, String>,
}

/// The run's tally, filled by every stage.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) created: i64,
    pub(crate) updated: i64,
    pub(crate) deprecated: i64,
    pub(crate) deleted: i64,
    pub(crate) unclassified: i64,
    pub(crate) errors: Vec<ObjectError>,
    pub(crate) notes: Vec<String>,
}

impl Report {
    pub(crate) fn error(&mut self, key: &str, f: impl std::fmt::Display) {
        self.errors.push(ObjectError {
            key: key.to_string(),
            message: f.to_string(),
        });
    }
}

/// Namespace property holding the objects `crawler` could not use (JSON: `bucket/key` →
/// `fingerprint#reason`).
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

/// The pipeline; see the module doc for its stages.
async fn run_crawl(input: &CrawlInput, dry: bool) -> Result<CrawlOutcome, CrawlError> {
    let spec = &input.spec;
    let cls = Classifiers::from_spec(spec)?;
    let store = Store::new(&input.s3);
    let ns = NamespaceIdent::new(spec.database.clone());
    let catalog = match dry {
        true => None,
        false => Some(connect(input, &ns).await?),
    };
    let mut report = Report::default();
    let run_id = run_id();
    let previous = match &catalog {
        Some(c) => Previous::load(c, &ns, input).await?,
        None => Previous::default(),
    };

    let listing = list(input, &store).await?;
    let entries = &listing.entries;
    let mut triage = triage(input, entries, &previous, &mut report);
    let examined = examine_new(&store, &cls, entries, &mut triage, &mut report).await;
    let used_names = taken_names(catalog.as_ref(), &ns, spec, &previous.known).await?;
    let objects = Objects {
        entries,
        inferred: &examined.inferred,
        known_entry: &triage.known,
    };
    let plans = plan_tables(spec, &objects, &previous.known, used_names)?;
    check_threshold(spec, &plans, &previous.known)?;
    let Some(catalog) = catalog else {
        return Ok(planned(
            &plans,
            entries,
            spec,
            &report,
            listing.scanned,
            examined.count,
            &store,
        ));
    };

    let ctx = DatasetCtx {
        catalog: &catalog,
        conn: &input.catalog,
        store: &store,
        entries,
        inferred: &examined.inferred,
        spec,
        crawler: &input.crawler_id,
        run_id: &run_id,
    };
    let mut touched: HashSet<String> = HashSet::new();
    for plan in plans {
        touched.insert(plan.name.clone());
        let ident = TableIdent::new(ns.clone(), plan.name.clone());
        let source = location(spec, entries, &plan);
        let prev = previous.known.get(&plan.name);
        ctx.register(&ident, &plan, prev, &source, &mut report)
            .await?;
    }
    retire_vanished(&catalog, spec, &previous.known, &touched, &mut report).await?;
    remember_skipped(input, &previous.skipped, &triage.skipped, &mut report).await?;

    let tables = table_status(&catalog, &ns, &input.crawler_id).await?;
    Ok(outcome(
        report,
        listing.scanned,
        examined.count,
        tables,
        &store,
    ))
}

/// Connects to the catalog and makes sure the crawler's namespace exists.
async fn connect(input: &CrawlInput, ns: &NamespaceIdent) -> Result<RestCatalog, CrawlError> {
    let c = lake::catalog::connect(&input.catalog, &input.s3).await?;
    lake::catalog::ensure_namespace(&c, ns).await?;
    Ok(c)
}

/// What earlier runs left in the catalog (nothing in a dry run).
#[derive(Default)]
struct Previous {
    /// The crawler's tables, by name.
    known: BTreeMap<String, Known>,
    /// Source objects of those tables (`bucket/key`) → (table, fingerprint).
    keys: HashMap<String, (String, String)>,
    /// Objects the crawler could not use (`bucket/key` → `fingerprint#reason`).
    skipped: BTreeMap<String, String>,
}

impl Previous {
    async fn load(
        catalog: &RestCatalog,
        ns: &NamespaceIdent,
        input: &CrawlInput,
    ) -> Result<Previous, CrawlError> {
        let mut known: BTreeMap<String, Known> = BTreeMap::new();
        for table in catalog::crawler_tables(catalog, ns, &input.crawler_id).await? {
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
        let keys: HashMap<String, (String, String)> = known
            .iter()
            .flat_map(|(t, k)| {
                k.objects
                    .iter()
                    .map(move |(key, fp)| (key.clone(), (t.clone(), fp.clone())))
            })
            .collect();
        let skipped: BTreeMap<String, String> = catalog
            .get_namespace(ns)
            .await
            .map_err(CrawlError::catalog(format!(
                "loading namespace {}",
                input.spec.database
            )))?
            .properties()
            .get(&skipped_key(&input.crawler_id))
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        Ok(Previous {
            known,
            keys,
            skipped,
        })
    }
}

/// The objects of every target, with how many were listed in the targets' prefixes.
struct Listing {
    entries: Vec<Entry>,
    scanned: i64,
}

/// Lists every target's prefix; noise and excluded keys are counted but not kept.
async fn list(input: &CrawlInput, store: &Store) -> Result<Listing, CrawlError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut scanned = 0i64;
    for (t, target) in input.spec.targets.iter().enumerate() {
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
    Ok(Listing { entries, scanned })
}

/// What becomes of each listed object (by index into the listing).
struct Triage {
    /// New objects to examine.
    examine: Vec<usize>,
    /// Objects already in a table → that table.
    known: HashMap<usize, String>,
    /// Objects that cannot be used, as the namespace property will remember them.
    skipped: BTreeMap<String, String>,
}

/// Sorts out what is known, skipped before (same fingerprint), or new; objects rewritten in
/// place since they were added are reported.
fn triage(
    input: &CrawlInput,
    entries: &[Entry],
    previous: &Previous,
    report: &mut Report,
) -> Triage {
    let known_folders: HashSet<String> = previous
        .keys
        .keys()
        .map(|k| parent(k).to_string())
        .collect();
    let mut out = Triage {
        examine: Vec::new(),
        known: HashMap::new(),
        skipped: BTreeMap::new(),
    };
    for (i, e) in entries.iter().enumerate() {
        let full = e.full();
        let fp = e.meta.fingerprint();
        if let Some((table, old)) = previous.keys.get(&full) {
            out.known.insert(i, table.clone());
            if *old != fp {
                // rewritten in place: its old data is in the table and cannot be replaced
                let msg = format!(
                    "changed since it was added to table {table} (ETag/size differ); iceberg-rust 0.10.1 cannot replace the data it holds, so it is not read again"
                );
                report.error(&full, &msg);
            }
            continue;
        }
        if let Some(old) = previous.skipped.get(&full)
            && let Some((ofp, reason)) = old.split_once('#')
            && ofp == fp
        {
            match reason.strip_prefix("error:") {
                Some(msg) => report.error(&full, msg),
                None => report.unclassified += 1,
            }
            out.skipped.insert(full, old.clone());
            continue;
        }
        if input
            .only_keys
            .as_ref()
            .is_some_and(|only| !only.contains(&full))
        {
            continue;
        }
        if input.spec.recrawl_policy == RecrawlPolicy::NewFoldersOnly
            && known_folders.contains(parent(&full))
        {
            continue;
        }
        out.examine.push(i);
    }
    out
}

/// The examined objects: schemas of those classified, and how many were examined.
struct Examination {
    inferred: HashMap<usize, Inferred>,
    count: usize,
}

/// Examines the new objects of `triage`, [`CONCURRENCY`] at a time. Objects that cannot be
/// used are reported and added to the skipped ones.
async fn examine_new(
    store: &Store,
    cls: &Classifiers,
    entries: &[Entry],
    triage: &mut Triage,
    report: &mut Report,
) -> Examination {
    let to_examine = std::mem::take(&mut triage.examine);
    let examined: Vec<(usize, Result<Examined, ObjectFailure>)> = futures::stream::iter(to_examine)
        .map(|i| {
            let e = &entries[i];
            async move { (i, examine(store, &e.bucket, &e.meta, cls).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let count = examined.len();
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
                triage.skipped.insert(
                    full,
                    format!("{}#unclassified: {why}", e.meta.fingerprint()),
                );
            }
            Err(f) => {
                triage
                    .skipped
                    .insert(full.clone(), format!("{}#error:{f}", e.meta.fingerprint()));
                report.error(&full, f);
            }
        }
    }
    Examination { inferred, count }
}

/// The listed objects as the later stages see them.
struct Objects<'a> {
    entries: &'a [Entry],
    /// Schemas of the new objects that were classified.
    inferred: &'a HashMap<usize, Inferred>,
    /// Objects already in a table → that table.
    known_entry: &'a HashMap<usize, String>,
}

/// A table to create or update: its name, the dataset layout found, and its objects (indices
/// into the listing, in the dataset's order).
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) dataset: Dataset,
    pub(crate) members: Vec<usize>,
}

/// Names of tables someone else owns in the namespace: taken (none in a dry run).
async fn taken_names(
    catalog: Option<&RestCatalog>,
    ns: &NamespaceIdent,
    spec: &CrawlerSpec,
    known: &BTreeMap<String, Known>,
) -> Result<HashSet<String>, CrawlError> {
    let Some(c) = catalog else {
        return Ok(HashSet::new());
    };
    Ok(c.list_tables(ns)
        .await
        .map_err(CrawlError::catalog(format!(
            "listing tables of {}",
            spec.database
        )))?
        .into_iter()
        .map(|t| t.name().to_string())
        .filter(|n| !known.contains_key(n))
        .collect())
}

/// Groups each target's usable objects into datasets and names their tables.
fn plan_tables(
    spec: &CrawlerSpec,
    objects: &Objects<'_>,
    known: &BTreeMap<String, Known>,
    mut used_names: HashSet<String>,
) -> Result<Vec<Plan>, CrawlError> {
    let mut plans: Vec<Plan> = Vec::new();
    for (t, target) in spec.targets.iter().enumerate() {
        let (idx, objs) = layout_objects(t, objects, known)?;
        let opts = LayoutOptions {
            table_level: spec.grouping.table_level.map(|l| l.max(1) as usize),
            combine_compatible_schemas: spec.grouping.combine_compatible_schemas,
        };
        let bucket = objects
            .entries
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
        for dataset in layout::group(&objs, opts, &base) {
            let members: Vec<usize> = dataset.objects.iter().map(|(o, _)| idx[*o]).collect();
            let name = table_name(spec, &dataset, &members, objects, known, &used_names);
            used_names.insert(name.clone());
            plans.push(Plan {
                name,
                dataset,
                members,
            });
        }
    }
    Ok(plans)
}

/// The objects of target `t` that layout groups (new and classified, or already in a table),
/// with their indices into the listing.
fn layout_objects(
    t: usize,
    objects: &Objects<'_>,
    known: &BTreeMap<String, Known>,
) -> Result<(Vec<usize>, Vec<LayoutObject>), CrawlError> {
    let entries = objects.entries;
    let idx: Vec<usize> = (0..entries.len())
        .filter(|i| {
            entries[*i].target == t
                && (objects.inferred.contains_key(i) || objects.known_entry.contains_key(i))
        })
        .collect();
    let mut objs = Vec::with_capacity(idx.len());
    for &i in &idx {
        let (format, schema) = match (objects.inferred.get(&i), objects.known_entry.get(&i)) {
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
    Ok((idx, objs))
}

/// A dataset holding objects of a known table keeps that table's name; otherwise the
/// dataset's name (with the spec's prefix), suffixed `_2`, `_3`, … while taken.
fn table_name(
    spec: &CrawlerSpec,
    dataset: &Dataset,
    members: &[usize],
    objects: &Objects<'_>,
    known: &BTreeMap<String, Known>,
    used_names: &HashSet<String>,
) -> String {
    let known_entry = objects.known_entry;
    if let Some(name) = members.iter().find_map(|i| known_entry.get(i).cloned()) {
        return name;
    }
    let base = layout::sanitize(&format!(
        "{}{}",
        spec.table_prefix.clone().unwrap_or_default(),
        dataset.name
    ));
    let mut name = base.clone();
    let mut n = 2;
    while used_names.contains(&name)
        || (known.contains_key(&name) && !members.iter().any(|i| known_entry.get(i) == Some(&name)))
    {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// Fails the run, before anything is created, when it would create more tables than
/// `spec.tableThreshold`.
fn check_threshold(
    spec: &CrawlerSpec,
    plans: &[Plan],
    known: &BTreeMap<String, Known>,
) -> Result<(), CrawlError> {
    let Some(threshold) = spec.table_threshold else {
        return Ok(());
    };
    let would_create = plans
        .iter()
        .filter(|p| !known.contains_key(&p.name))
        .count();
    if would_create > threshold.max(0) as usize {
        return Err(CrawlError::TableThreshold {
            would_create,
            threshold,
        });
    }
    Ok(())
}

/// Tables whose data is gone (no object of theirs listed this run): dropped, marked deprecated
/// or noted, as `spec.schemaChangePolicy.delete` says.
async fn retire_vanished(
    catalog: &RestCatalog,
    spec: &CrawlerSpec,
    known: &BTreeMap<String, Known>,
    touched: &HashSet<String>,
    report: &mut Report,
) -> Result<(), CrawlError> {
    for (name, k) in known {
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
                if deprecate(catalog, &k.table, &ident).await? {
                    report.deprecated += 1;
                }
            }
            DeleteBehavior::Log => report
                .notes
                .push(format!("the data of table {name} is gone (delete: Log)")),
        }
    }
    Ok(())
}

/// Marks `table` deprecated; false when it already was.
async fn deprecate(
    catalog: &RestCatalog,
    table: &Table,
    ident: &TableIdent,
) -> Result<bool, CrawlError> {
    if table
        .metadata()
        .properties()
        .get(PROP_DEPRECATED)
        .map(String::as_str)
        == Some("true")
    {
        return Ok(false);
    }
    let tx = Transaction::new(table);
    let tx = tx
        .update_table_properties()
        .set(PROP_DEPRECATED.into(), "true".into())
        .apply(tx)
        .map_err(CrawlError::catalog(format!("deprecating {ident}")))?;
    tx.commit(catalog)
        .await
        .map_err(CrawlError::catalog(format!("deprecating {ident}")))?;
    Ok(true)
}

/// Remembers the objects that could not be used, so a re-run does not read them again. A
/// failure to record them is a note, not a failed run.
async fn remember_skipped(
    input: &CrawlInput,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    report: &mut Report,
) -> Result<(), CrawlError> {
    if new == old {
        return Ok(());
    }
    let prop = skipped_key(&input.crawler_id);
    let mut updates = HashMap::new();
    let mut removals = Vec::new();
    if new.is_empty() {
        removals.push(prop);
    } else {
        updates.insert(prop, serde_json::to_string(new)?);
    }
    if let Err(e) = lake::rest::update_namespace_properties(
        &input.catalog,
        &input.spec.database,
        updates,
        removals,
    )
    .await
    {
        report
            .notes
            .push(format!("could not record skipped objects: {e}"));
    }
    Ok(())
}

/// The outcome of a crawl: the run's counts and message, and the crawler's tables.
fn outcome(
    mut report: Report,
    scanned: i64,
    examined: usize,
    tables: Vec<CrawledTable>,
    store: &Store,
) -> CrawlOutcome {
    let errors_total = report.errors.len();
    let mut message = format!(
        "{} objects listed, {} examined, {} tables ({} created, {} updated, {} deprecated, {} deleted), {} unclassified, {} errors",
        scanned,
        examined,
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
    CrawlOutcome {
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
    }
}

/// The outcome of a dry run: the tables a crawl would create.
fn planned(
    plans: &[Plan],
    entries: &[Entry],
    spec: &CrawlerSpec,
    report: &Report,
    scanned: i64,
    examined: usize,
    store: &Store,
) -> CrawlOutcome {
    let tables: Vec<CrawledTable> = plans
        .iter()
        .map(|p| CrawledTable {
            name: p.name.clone(),
            format: p.dataset.format.as_str().to_string(),
            location: location(spec, entries, p),
            partitions: p
                .dataset
                .partitions
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            schema_version: 0,
            deprecated: false,
            ..Default::default()
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

/// Where a planned table's objects are: `s3://<bucket>/<target prefix>/<dataset root>`.
fn location(spec: &CrawlerSpec, entries: &[Entry], plan: &Plan) -> String {
    let e = &entries[plan.members[0]];
    let prefix = &spec.targets[e.target].prefix;
    format!(
        "s3://{}/{}",
        e.bucket,
        join_key(prefix, &plan.dataset.root.join("/"))
    )
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

/// The crawler's tables as its status lists them, by name.
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
            let (classifier, decisions) = catalog::decisions(props);
            CrawledTable {
                classifier,
                decisions,
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
