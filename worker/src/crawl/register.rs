//! Registering one planned table: create it, or evolve its schema within what Iceberg allows
//! ([`crate::crawl::evolve`]); turn its new objects into data files (Parquet in place through
//! [`crate::crawl::datafile`], other formats ingested through [`crate::crawl::ingest`]); and
//! commit the files, the object state and the name mapping in one snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableIdent};
use iceberg_catalog_rest::RestCatalog;
use lakeform_api::crawler::{CrawlerSpec, UpdateBehavior};

use crate::crawl::catalog::{
    self, PROP_CLASSIFIER, PROP_COLUMN_FORMAT, PROP_CRAWLER, PROP_DEPRECATED, PROP_FORMAT,
    PROP_NAME_MAPPING, PROP_OBJECTS, PROP_SOURCE, PROP_TEXT_COLUMNS,
};
use crate::crawl::compression::{self, Compression};
use crate::crawl::datafile;
use crate::crawl::dates;
use crate::crawl::engine::{Entry, Known, Plan, Report};
use crate::crawl::error::{CrawlError, ObjectFailure};
use crate::crawl::evolve;
use crate::crawl::ingest;
use crate::crawl::layout::Dataset;
use crate::crawl::model::{Format, Inferred};
use crate::crawl::schema::{self, Widening};
use crate::lake;
use crate::lake::catalog::{CatalogConn, PartitionColumn};
use crate::lake::s3::Store;

/// Largest object (and decompressed object) a crawl ingests: beyond it the object is reported
/// against its key, never read into memory.
pub const MAX_OBJECT_BYTES: usize = 512 << 20;

/// Most lines of [`PROP_TEXT_COLUMNS`] kept on a table.
const MAX_TEXT_NOTES: usize = 20;

/// New objects of a dataset: index into the listing, and partition values.
type NewObjects = Vec<(usize, Vec<Option<String>>)>;

/// Shared state for registering datasets.
pub(crate) struct DatasetCtx<'a> {
    pub(crate) catalog: &'a RestCatalog,
    pub(crate) conn: &'a CatalogConn,
    pub(crate) store: &'a Store,
    pub(crate) entries: &'a [Entry],
    pub(crate) inferred: &'a HashMap<usize, Inferred>,
    pub(crate) spec: &'a CrawlerSpec,
    pub(crate) crawler: &'a str,
    pub(crate) run_id: &'a str,
}

impl DatasetCtx<'_> {
    /// Brings table `ident` (`prev` when the crawler already maintains it) up to date with
    /// `plan`: objects gone from storage are forgotten, new ones added, the schema evolved.
    /// `source` is where the objects are, recorded on a new table.
    pub(crate) async fn register(
        &self,
        ident: &TableIdent,
        plan: &Plan,
        prev: Option<&Known>,
        source: &str,
        report: &mut Report,
    ) -> Result<(), CrawlError> {
        let ds = &plan.dataset;
        let new = self.new_objects(plan);
        let listed: HashSet<String> = plan
            .members
            .iter()
            .map(|i| self.entries[*i].full())
            .collect();
        let mut objects: BTreeMap<String, String> =
            prev.map(|k| k.objects.clone()).unwrap_or_default();
        let gone = forget_gone(&mut objects, &listed, ds.format, ident, report);
        if new.is_empty() && gone == 0 {
            return Ok(());
        }

        let (table, created) = match prev {
            Some(k) => (k.table.clone(), false),
            None => {
                let why = self.decisions(&new);
                (self.create(ident, ds, source, why, report).await?, true)
            }
        };
        let partitions: Vec<PartitionColumn> = catalog::partition_columns(&table);
        let (table, usable, evolved) = if created {
            (table, new, false)
        } else {
            self.evolve(ident, table, &partitions, &new, report).await?
        };
        let (files, added) = if ds.format.in_place() {
            self.in_place_files(&table, &partitions, &usable, report)
        } else {
            self.ingest(&table, &partitions, &usable, report).await
        };
        if created && added.is_empty() {
            // none of its objects could be read: no table rather than an empty one
            self.catalog
                .drop_table(ident)
                .await
                .map_err(CrawlError::catalog(format!("dropping {ident}")))?;
            report.created -= 1;
            report.notes.push(format!(
                "{ident} not created: none of its {} new objects could be read (see errors)",
                usable.len()
            ));
            return Ok(());
        }
        for i in &added {
            let e = &self.entries[*i];
            objects.insert(e.full(), e.meta.fingerprint());
        }
        self.commit(ident, &table, &objects, files, added.len())
            .await?;
        if !created && (evolved || !added.is_empty()) {
            report.updated += 1;
        }
        Ok(())
    }

    /// The plan's objects examined this run, with their partition values.
    fn new_objects(&self, plan: &Plan) -> NewObjects {
        plan.dataset
            .objects
            .iter()
            .zip(&plan.members)
            .filter(|(_, i)| self.inferred.contains_key(i))
            .map(|((_, values), i)| (*i, values.clone()))
            .collect()
    }

    /// How the new objects were read, as table properties: the least certain object's
    /// classifier, the date shapes of columns, the columns that fell back to text.
    fn decisions(&self, new: &NewObjects) -> HashMap<String, String> {
        let mut props = HashMap::new();
        let mut least: Option<&Inferred> = None;
        let mut text = Vec::new();
        for (i, _) in new {
            let inf = &self.inferred[i];
            if least.is_none_or(|l| inf.decision.certainty < l.decision.certainty) {
                least = Some(inf);
            }
            let key = &self.entries[*i].meta.key;
            text.extend(
                inf.decision
                    .text_columns
                    .iter()
                    .map(|n| format!("{key}: {n}")),
            );
            for f in inf.schema.fields() {
                if let Some(shape) = f.metadata().get(dates::FORMAT_KEY) {
                    props.insert(format!("{PROP_COLUMN_FORMAT}{}", f.name()), shape.clone());
                }
            }
        }
        if let Some(d) = least.map(|l| &l.decision) {
            let said = format!("{} (certainty {:.2})", d.classifier, d.certainty);
            props.insert(PROP_CLASSIFIER.to_string(), said);
        }
        if !text.is_empty() {
            text.truncate(MAX_TEXT_NOTES);
            props.insert(PROP_TEXT_COLUMNS.to_string(), text.join("\n"));
        }
        props
    }

    /// Creates the table of a new dataset, owned by the crawler; `why` says how its objects
    /// were read (`decisions`).
    async fn create(
        &self,
        ident: &TableIdent,
        ds: &Dataset,
        source: &str,
        why: HashMap<String, String>,
        report: &mut Report,
    ) -> Result<Table, CrawlError> {
        let mut props = HashMap::from([
            (PROP_CRAWLER.to_string(), self.crawler.to_string()),
            (PROP_FORMAT.to_string(), ds.format.as_str().to_string()),
            (PROP_SOURCE.to_string(), source.to_string()),
        ]);
        props.extend(why);
        let t = lake::catalog::create_table(self.catalog, ident, &ds.schema, &ds.partitions, props)
            .await?;
        report.created += 1;
        Ok(t)
    }

    /// Schema evolution of an existing table: the new objects whose schemas merge with the
    /// table's are kept, the change is applied (or logged) as `spec.schemaChangePolicy.update`
    /// says, and objects that still do not fit are left out. Returns the (reloaded) table, the
    /// usable objects, and whether the schema changed.
    async fn evolve(
        &self,
        ident: &TableIdent,
        mut table: Table,
        partitions: &[PartitionColumn],
        new: &NewObjects,
        report: &mut Report,
    ) -> Result<(Table, NewObjects, bool), CrawlError> {
        let current = catalog::data_schema(&catalog::arrow_schema(&table)?, partitions);
        let (merged, mut usable) = self.mergeable(ident, &current, partitions, new, report);
        let diff = schema::diff(&current, &merged);
        let mut evolved = false;
        if !diff.is_empty() {
            match self.spec.schema_change_policy.update {
                UpdateBehavior::Update => {
                    (table, evolved) = self.apply_change(ident, table, &diff, report).await?;
                }
                UpdateBehavior::Log => report.notes.push(format!(
                    "{ident}: schema change not applied (update: Log): {}",
                    evolve::describe_diff(&diff)
                )),
            }
        }
        // objects that still do not fit (widening not applied) are left out
        let now = catalog::data_schema(&catalog::arrow_schema(&table)?, partitions);
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
        Ok((table, usable, evolved))
    }

    /// The table's data schema merged with every new object's that fits (Iceberg widening
    /// only), and those objects; the others are reported.
    fn mergeable(
        &self,
        ident: &TableIdent,
        current: &Schema,
        partitions: &[PartitionColumn],
        new: &NewObjects,
        report: &mut Report,
    ) -> (Schema, NewObjects) {
        let mut merged = current.clone();
        let mut usable: NewObjects = Vec::new();
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
                None => report.error(&full, format!("schema does not fit {ident}: {} (Iceberg allows only int→long, float→double, decimal precision and new columns)", evolve::describe(&inf.schema))),
            }
        }
        (merged, usable)
    }

    /// Applies a schema change: promotions Iceberg allows (a REST commit, then the table is
    /// reloaded), then new columns; other type changes are noted. Returns the table and whether
    /// it changed.
    async fn apply_change(
        &self,
        ident: &TableIdent,
        mut table: Table,
        diff: &schema::SchemaDiff,
        report: &mut Report,
    ) -> Result<(Table, bool), CrawlError> {
        let mut evolved = false;
        let (adds, widen, refused) = evolve::additions(diff);
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
        Ok((table, evolved))
    }

    /// Parquet objects registered in place: data files built from their footers. Returns the
    /// files and the objects they are for.
    fn in_place_files(
        &self,
        table: &Table,
        partitions: &[PartitionColumn],
        usable: &NewObjects,
        report: &mut Report,
    ) -> (Vec<DataFile>, Vec<usize>) {
        let mut files: Vec<DataFile> = Vec::new();
        let mut added: Vec<usize> = Vec::new();
        let spec_id = table.metadata().default_partition_spec_id();
        for (i, values) in usable {
            let e = &self.entries[*i];
            let Some(meta) = self.inferred[i].parquet.as_ref() else {
                continue;
            };
            let made = datafile::partition_struct(partitions, values).and_then(|p| {
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
        (files, added)
    }

    /// One commit: the data files (as an append), the object state and the name mapping; a
    /// deprecated table is deprecated no more.
    async fn commit(
        &self,
        ident: &TableIdent,
        table: &Table,
        objects: &BTreeMap<String, String>,
        files: Vec<DataFile>,
        added: usize,
    ) -> Result<(), CrawlError> {
        let mut tx = Transaction::new(table);
        let mut props = tx
            .update_table_properties()
            .set(
                PROP_OBJECTS.into(),
                serde_json::to_string(objects).map_err(CrawlError::Report)?,
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
                    ("lakeform.source-objects".to_string(), added.to_string()),
                ]))
                .add_data_files(files)
                .apply(tx)
                .map_err(CrawlError::catalog(format!("append to {ident}")))?;
        }
        tx.commit(self.catalog)
            .await
            .map_err(CrawlError::catalog(format!("committing to {ident}")))?;
        Ok(())
    }

    /// Converts new text/Avro objects to Parquet data files, one writer per partition.
    async fn ingest(
        &self,
        table: &Table,
        partitions: &[PartitionColumn],
        usable: &NewObjects,
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
                if e.meta.size > MAX_OBJECT_BYTES as u64 {
                    return Err(ObjectFailure::TooLarge {
                        what: "the object",
                        limit: MAX_OBJECT_BYTES as u64,
                    });
                }
                let raw = self.store.get_all(&e.bucket, &e.meta.key).await?;
                let c = match Compression::from_magic(&raw) {
                    Compression::None => Compression::from_key(&e.meta.key),
                    c => c,
                };
                if inf.format == Format::Avro {
                    raw
                } else {
                    bytes::Bytes::from(compression::decompress_whole(&raw, c, MAX_OBJECT_BYTES)?)
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

/// Drops the objects no longer listed from `objects` and reports them: Parquet registered in
/// place stays a data file (an error), ingested rows stay (a note). Returns how many went.
fn forget_gone(
    objects: &mut BTreeMap<String, String>,
    listed: &HashSet<String>,
    format: Format,
    ident: &TableIdent,
    report: &mut Report,
) -> usize {
    let gone: Vec<String> = objects
        .keys()
        .filter(|k| !listed.contains(*k))
        .cloned()
        .collect();
    for key in &gone {
        objects.remove(key);
        if format.in_place() {
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
    gone.len()
}
