//! Replacing a table's contents in one snapshot (Iceberg `overwrite`): iceberg-rust 0.10.1 only
//! offers appends, so the manifests, the manifest list and the snapshot are written here with
//! its public writers and committed through the REST endpoint, as its own `SnapshotProducer`
//! does for appends. Readers see the old rows or the new rows, never a mix or an empty table.

use std::collections::HashMap;

use iceberg::spec::{
    DataFile, DataFileFormat, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestListWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention,
    SnapshotSummaryCollector, Summary,
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
    let io = table.file_io();
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let snapshot_id = new_snapshot_id(table);
    let sequence = metadata.next_sequence_number();
    let commit = format!("{snapshot_id:x}");
    let meta_path = |what: &str| {
        format!(
            "{}/metadata/{commit}-{what}.{}",
            metadata.location(),
            DataFileFormat::Avro
        )
    };
    let mut summary = SnapshotSummaryCollector::default();
    let mut replaced = Replaced::default();
    let mut manifests = Vec::new();

    // the current data files, as deleted entries
    if let Some(current) = metadata.current_snapshot() {
        let list = table
            .manifest_list_reader(current)
            .load()
            .await
            .map_err(StepError::catalog(format!(
                "reading the manifest list of {name}"
            )))?;
        let mut deleted: Option<iceberg::spec::ManifestWriter> = None;
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
                    None => {
                        let out = io
                            .new_output(meta_path("m0"))
                            .map_err(StepError::catalog(format!("a manifest of {name}")))?;
                        deleted.insert(
                            ManifestWriterBuilder::new(
                                out,
                                Some(snapshot_id),
                                schema.clone(),
                                spec.as_ref().clone(),
                            )
                            .build_v2_data(),
                        )
                    }
                };
                summary.remove_file(e.data_file(), schema.clone(), spec.clone());
                replaced.removed_files += 1;
                replaced.removed_rows += e.record_count();
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
            manifests.push(
                w.write_manifest_file()
                    .await
                    .map_err(StepError::catalog(format!("writing a manifest of {name}")))?,
            );
        }
    }

    // the new files
    if !files.is_empty() {
        let out = io
            .new_output(meta_path("m1"))
            .map_err(StepError::catalog(format!("a manifest of {name}")))?;
        let mut w = ManifestWriterBuilder::new(
            out,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for f in files {
            summary.add_file(&f, schema.clone(), spec.clone());
            replaced.added_files += 1;
            replaced.added_rows += f.record_count();
            w.add_file(f, sequence)
                .map_err(StepError::catalog(format!("listing a new file of {name}")))?;
        }
        manifests.push(
            w.write_manifest_file()
                .await
                .map_err(StepError::catalog(format!("writing a manifest of {name}")))?,
        );
    }

    let list_path = format!(
        "{}/metadata/snap-{snapshot_id}-0-{commit}.{}",
        metadata.location(),
        DataFileFormat::Avro
    );
    let out = io
        .new_output(&list_path)
        .map_err(StepError::catalog(format!("the manifest list of {name}")))?
        .writer()
        .await
        .map_err(StepError::catalog(format!("the manifest list of {name}")))?;
    let mut list =
        ManifestListWriter::v2(out, snapshot_id, metadata.current_snapshot_id(), sequence);
    list.add_manifests(manifests.into_iter())
        .map_err(StepError::catalog(format!("the manifest list of {name}")))?;
    list.close().await.map_err(StepError::catalog(format!(
        "writing the manifest list of {name}"
    )))?;

    let mut props = properties;
    props.extend(summary.build());
    // an overwrite leaves exactly the new files
    props.insert("total-data-files".into(), replaced.added_files.to_string());
    props.insert("total-records".into(), replaced.added_rows.to_string());
    props.insert("total-delete-files".into(), "0".into());
    props.insert("total-position-deletes".into(), "0".into());
    props.insert("total-equality-deletes".into(), "0".into());
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(metadata.current_snapshot_id())
        .with_sequence_number(sequence)
        .with_timestamp_ms(jiff::Timestamp::now().as_millisecond())
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation: Operation::Overwrite,
            additional_properties: props,
        })
        .with_schema_id(metadata.current_schema_id())
        .build();
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
        &format!("overwriting {name}"),
    )
    .await?;
    Ok(replaced)
}
