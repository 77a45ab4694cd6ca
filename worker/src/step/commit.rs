//! Replacing a table's contents in one snapshot (Iceberg `overwrite`): iceberg-rust 0.10.1 only
//! offers appends, so the manifests, the manifest list and the snapshot are written here with
//! its public writers and committed through the REST endpoint, as its own `SnapshotProducer`
//! does for appends. Readers see the old rows or the new rows, never a mix or an empty table.

use std::collections::HashMap;

use iceberg::spec::{
    DataFile, DataFileFormat, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestFile,
    ManifestListWriter, ManifestWriter, ManifestWriterBuilder, Operation, Snapshot,
    SnapshotReference, SnapshotRetention, SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::{TableRequirement, TableUpdate};

use crate::lake::rest::commit_table;
use crate::step::error::StepError;
use crate::step::table::Lake;

/// What an overwrite replaced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub removed_files: u64,
    pub removed_rows: u64,
    pub added_files: u64,
    pub added_rows: u64,
}

fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) as i64).wrapping_abs();
        if id > 0 && table.metadata().snapshots().all(|s| s.snapshot_id() != id) {
            return id;
        }
    }
}

/// Replaces every data file of `table` with `files` in one `overwrite` snapshot. The removed
/// files are listed as deleted entries, so snapshot expiry and incremental readers see the
/// change. Fails (nothing committed) if another writer committed first.
pub async fn overwrite(
    lake: &Lake,
    table: &Table,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> Result<Replaced, StepError> {
    let metadata = table.metadata();
    let name = table.identifier().to_string();
    if metadata.format_version() != FormatVersion::V2 {
        return Err(StepError::Data {
            table: name,
            message: format!(
                "overwrite needs Iceberg format version 2 (the table has {})",
                metadata.format_version()
            ),
        });
    }
    let mut snapshot = NewSnapshot::new(table, name);
    snapshot.remove_current().await?;
    snapshot.add(files).await?;
    let list_path = snapshot.write_manifest_list().await?;
    let (snapshot_id, replaced, snapshot) = snapshot.build(list_path, properties);
    let requirements = serde_json::json!([
        TableRequirement::UuidMatch {
            uuid: metadata.uuid()
        },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: metadata.current_snapshot_id(),
        },
    ]);
    let updates = serde_json::json!([
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: MAIN_BRANCH.to_string(),
            reference: SnapshotReference::new(
                snapshot_id,
                SnapshotRetention::branch(None, None, None)
            ),
        },
    ]);
    commit_table(
        &lake.conn,
        table.identifier(),
        requirements,
        updates,
        &format!("overwriting {}", table.identifier()),
    )
    .await?;
    Ok(replaced)
}

/// An `overwrite` snapshot of a table being written: its manifests, then its manifest list,
/// then the snapshot itself.
struct NewSnapshot<'a> {
    table: &'a Table,
    /// The table's name, for messages.
    name: String,
    snapshot_id: i64,
    sequence: i64,
    /// Names the metadata files this snapshot writes.
    commit: String,
    summary: SnapshotSummaryCollector,
    replaced: Replaced,
    manifests: Vec<ManifestFile>,
}

impl<'a> NewSnapshot<'a> {
    fn new(table: &'a Table, name: String) -> Self {
        let snapshot_id = new_snapshot_id(table);
        NewSnapshot {
            table,
            name,
            snapshot_id,
            sequence: table.metadata().next_sequence_number(),
            commit: format!("{snapshot_id:x}"),
            summary: SnapshotSummaryCollector::default(),
            replaced: Replaced::default(),
            manifests: Vec::new(),
        }
    }

    /// Path of a metadata file of this snapshot.
    fn meta_path(&self, what: &str) -> String {
        format!(
            "{}/metadata/{}-{what}.{}",
            self.table.metadata().location(),
            self.commit,
            DataFileFormat::Avro
        )
    }

    /// A manifest writer for this snapshot's data files.
    fn manifest_writer(&self, what: &str) -> Result<ManifestWriter, StepError> {
        let metadata = self.table.metadata();
        let out = self
            .table
            .file_io()
            .new_output(self.meta_path(what))
            .map_err(StepError::catalog(format!("a manifest of {}", self.name)))?;
        Ok(ManifestWriterBuilder::new(
            out,
            Some(self.snapshot_id),
            metadata.current_schema().clone(),
            metadata.default_partition_spec().as_ref().clone(),
        )
        .build_v2_data())
    }

    /// The current data files, as deleted entries of one manifest (none when the table has
    /// no snapshot or no live data file).
    async fn remove_current(&mut self) -> Result<(), StepError> {
        let metadata = self.table.metadata();
        let Some(current) = metadata.current_snapshot() else {
            return Ok(());
        };
        let (io, name) = (self.table.file_io(), self.name.clone());
        let list = self
            .table
            .manifest_list_reader(current)
            .load()
            .await
            .map_err(StepError::catalog(format!(
                "reading the manifest list of {name}"
            )))?;
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let mut deleted: Option<ManifestWriter> = None;
        for m in list.entries() {
            if m.content != ManifestContentType::Data {
                continue; // delete files stop mattering when every data file goes
            }
            let manifest = m
                .load_manifest(io)
                .await
                .map_err(StepError::catalog(format!("reading a manifest of {name}")))?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let w = match deleted.as_mut() {
                    Some(w) => w,
                    None => deleted.insert(self.manifest_writer("m0")?),
                };
                self.summary
                    .remove_file(e.data_file(), schema.clone(), spec.clone());
                self.replaced.removed_files += 1;
                self.replaced.removed_rows += e.record_count();
                w.add_delete_file(
                    e.data_file().clone(),
                    e.sequence_number().unwrap_or(0),
                    e.file_sequence_number,
                )
                .map_err(StepError::catalog(format!(
                    "listing a removed file of {name}"
                )))?;
            }
        }
        if let Some(w) = deleted {
            self.manifests.push(
                w.write_manifest_file()
                    .await
                    .map_err(StepError::catalog(format!("writing a manifest of {name}")))?,
            );
        }
        Ok(())
    }

    /// The new files, as added entries of one manifest (none without files).
    async fn add(&mut self, files: Vec<DataFile>) -> Result<(), StepError> {
        if files.is_empty() {
            return Ok(());
        }
        let metadata = self.table.metadata();
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let name = self.name.clone();
        let mut w = self.manifest_writer("m1")?;
        for f in files {
            self.summary.add_file(&f, schema.clone(), spec.clone());
            self.replaced.added_files += 1;
            self.replaced.added_rows += f.record_count();
            w.add_file(f, self.sequence)
                .map_err(StepError::catalog(format!("listing a new file of {name}")))?;
        }
        self.manifests.push(
            w.write_manifest_file()
                .await
                .map_err(StepError::catalog(format!("writing a manifest of {name}")))?,
        );
        Ok(())
    }

    /// Writes the manifest list; returns its path.
    async fn write_manifest_list(&mut self) -> Result<String, StepError> {
        let metadata = self.table.metadata();
        let name = &self.name;
        let list_path = format!(
            "{}/metadata/snap-{}-0-{}.{}",
            metadata.location(),
            self.snapshot_id,
            self.commit,
            DataFileFormat::Avro
        );
        let out = self
            .table
            .file_io()
            .new_output(&list_path)
            .map_err(StepError::catalog(format!("the manifest list of {name}")))?
            .writer()
            .await
            .map_err(StepError::catalog(format!("the manifest list of {name}")))?;
        let mut list = ManifestListWriter::v2(
            out,
            self.snapshot_id,
            metadata.current_snapshot_id(),
            self.sequence,
        );
        list.add_manifests(std::mem::take(&mut self.manifests).into_iter())
            .map_err(StepError::catalog(format!("the manifest list of {name}")))?;
        list.close().await.map_err(StepError::catalog(format!(
            "writing the manifest list of {name}"
        )))?;
        Ok(list_path)
    }

    /// The snapshot (its summary: `properties`, what changed, and the totals an overwrite
    /// leaves), with its id and what it replaced.
    fn build(
        self,
        list_path: String,
        properties: HashMap<String, String>,
    ) -> (i64, Replaced, Snapshot) {
        let metadata = self.table.metadata();
        let replaced = self.replaced;
        let mut props = properties;
        props.extend(self.summary.build());
        // an overwrite leaves exactly the new files
        props.insert("total-data-files".into(), replaced.added_files.to_string());
        props.insert("total-records".into(), replaced.added_rows.to_string());
        props.insert("total-delete-files".into(), "0".into());
        props.insert("total-position-deletes".into(), "0".into());
        props.insert("total-equality-deletes".into(), "0".into());
        let snapshot = Snapshot::builder()
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(metadata.current_snapshot_id())
            .with_sequence_number(self.sequence)
            .with_timestamp_ms(jiff::Timestamp::now().as_millisecond())
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation: Operation::Overwrite,
                additional_properties: props,
            })
            .with_schema_id(metadata.current_schema_id())
            .build();
        (self.snapshot_id, replaced, snapshot)
    }
}
