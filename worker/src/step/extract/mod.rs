//! `extract` steps: PostgreSQL tables copied into the lake. `Snapshot` replaces each table's
//! contents; `Incremental` loads rows past a bookmark (merged on the primary key when there is
//! one, appended otherwise) or, for a table without a bookmark column, compares a full snapshot
//! with the table and rewrites it only when something changed.

pub mod bookmark;
pub mod pattern;
pub mod postgres;

use std::collections::HashMap;

use iceberg::table::Table;
use lakeform_api::workflow::{ExtractMode, ExtractStep, SourceEngine};
use serde::Serialize;
use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::step::commit::overwrite;
use crate::step::error::StepError;
use crate::step::merge::{diff, merge};
use crate::step::table::{FileSink, Lake, append, ident, prepare};
use bookmark::{Bookmarks, Mark};
use pattern::{TablePattern, select};
use postgres::SourceTable;

/// What happened to one table.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    /// `schema.table` in the source.
    pub source: String,
    /// `database.table` in the lake.
    pub target: String,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows with a new key (or appended).
    pub inserted: u64,
    /// Rows that replaced a row with the same key.
    pub updated: u64,
    /// Rows removed (snapshot diff, overwrite).
    pub removed: u64,
    /// The bookmark after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
    /// Nothing changed: no snapshot was committed.
    pub unchanged: bool,
}

/// Name of the lake table for a source table: `<prefix><table>`, or `<prefix><schema>_<table>`
/// outside the `public` schema; lower case, other characters than `[a-z0-9_]` become `_`.
pub fn target_name(prefix: Option<&str>, schema: &str, table: &str) -> String {
    let base = if schema == "public" {
        table.to_string()
    } else {
        format!("{schema}_{table}")
    };
    let clean: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{clean}", prefix.unwrap_or_default())
}

/// Runs the extract: checks the step, picks the source tables, loads each.
pub async fn run(
    lake: &Lake,
    step_name: &str,
    step: &ExtractStep,
    source_url: &str,
    bookmarks: &mut Bookmarks,
    run_id: &str,
    properties: HashMap<String, String>,
) -> Result<Vec<TableReport>, StepError> {
    if step.source.engine != SourceEngine::Postgres {
        return Err(StepError::Config(format!(
            "spec.steps[{step_name}].extract.source.engine {:?} is not supported yet (Postgres is)",
            step.source.engine
        )));
    }
    let parse = |list: &[String]| {
        list.iter()
            .map(|p| TablePattern::parse(p).map_err(StepError::Config))
            .collect::<Result<Vec<_>, _>>()
    };
    let include = parse(&step.tables)?;
    let exclude = parse(&step.exclude)?;
    let mut client = postgres::connect(source_url).await?;
    let all = postgres::tables(&client).await?;
    let chosen = choose(step_name, step, &all, &include, &exclude)?;
    let extract = Extract {
        lake,
        step_name,
        step,
        run_id,
        properties: &properties,
    };
    let mut reports = Vec::new();
    for (db, schema, name) in chosen {
        reports.push(
            extract
                .table(&mut client, bookmarks, (db, schema, name))
                .await?,
        );
    }
    Ok(reports)
}

/// The source tables the step's patterns select; none, or a bookmark naming a table not
/// selected, is a configuration error.
fn choose<'t>(
    step_name: &str,
    step: &ExtractStep,
    all: &'t [(String, String, String)],
    include: &[TablePattern],
    exclude: &[TablePattern],
) -> Result<Vec<&'t (String, String, String)>, StepError> {
    let chosen = select(all, include, exclude);
    if chosen.is_empty() {
        return Err(StepError::Config(format!(
            "no source table matches spec.steps[{step_name}].extract.tables {:?} (minus exclude); the source has {} table(s)",
            step.tables,
            all.len()
        )));
    }
    for b in &step.bookmarks {
        if !chosen.iter().any(|(_, s, t)| format!("{s}.{t}") == b.table) {
            return Err(StepError::Config(format!(
                "spec.steps[{step_name}].extract.bookmarks names {}, which is not among the extracted tables",
                b.table
            )));
        }
    }
    Ok(chosen)
}

/// An extract step, as each of its tables is loaded.
struct Extract<'a> {
    lake: &'a Lake,
    step_name: &'a str,
    step: &'a ExtractStep,
    run_id: &'a str,
    properties: &'a HashMap<String, String>,
}

/// One source table being loaded into its lake table.
struct Load<'a> {
    source: &'a SourceTable,
    table: &'a Table,
    /// Snapshot properties of the commit.
    props: HashMap<String, String>,
}

impl Extract<'_> {
    /// Loads source table `db.schema.name` into the lake (created or widened first), from one
    /// consistent read of it.
    async fn table(
        &self,
        client: &mut Client,
        bookmarks: &mut Bookmarks,
        (db, schema, name): (&str, &str, &str),
    ) -> Result<TableReport, StepError> {
        let source = postgres::describe(client, db, schema, name).await?;
        let target = ident(
            &self.step.target_database,
            &target_name(self.step.table_prefix.as_deref(), schema, name),
        );
        let mut props = self.properties.clone();
        props.insert(
            "lakeform.source".into(),
            format!("postgres:{db}/{schema}/{name}"),
        );
        let table = prepare(self.lake, &target, &source.arrow_schema(), props.clone()).await?;
        // one consistent view of the table per load
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(StepError::source("starting a read transaction"))?;
        let mut report = TableReport {
            source: source.display(),
            target: target.to_string(),
            ..Default::default()
        };
        let column = self
            .step
            .bookmarks
            .iter()
            .find(|b| b.table == source.display())
            .map(|b| b.column.clone());
        let load = Load {
            source: &source,
            table: &table,
            props,
        };
        let loaded = match (self.step.mode, column) {
            (ExtractMode::Incremental, Some(column)) => {
                let key = bookmark::key(self.step_name, schema, name);
                self.past_bookmark(tx, load, bookmarks, &key, column, &mut report)
                    .await?
            }
            (mode, _) => self.whole(tx, load, mode, &mut report).await?,
        };
        if loaded {
            tracing::info!(report = ?report, "table extracted");
        }
        Ok(report)
    }

    /// Incremental load past the bookmark of `column` (up to its current largest value), then
    /// the bookmark moves. False when the source table is empty (nothing done).
    async fn past_bookmark(
        &self,
        tx: Transaction<'_>,
        load: Load<'_>,
        bookmarks: &mut Bookmarks,
        key: &str,
        column: String,
        report: &mut TableReport,
    ) -> Result<bool, StepError> {
        let source = load.source;
        let col = source.column(&column).ok_or_else(|| {
            StepError::Config(format!(
                "bookmark column {column} is not a column of {}",
                source.display()
            ))
        })?;
        let after = bookmarks.get(key, &column);
        let Some(upto) = postgres::max_value(&tx, source, &column).await? else {
            report.unchanged = true;
            return Ok(false);
        };
        let rows = postgres::read(&tx, source, Some((col, after.as_deref(), &upto))).await?;
        drop(tx);
        report.rows_read = rows.iter().map(|b| b.num_rows() as u64).sum();
        if report.rows_read == 0 {
            report.unchanged = true;
        } else {
            load_increment(
                self.lake,
                load.table,
                source,
                rows,
                self.run_id,
                load.props,
                report,
            )
            .await?;
        }
        if after.as_deref() != Some(upto.as_str()) {
            let mark = Mark {
                column,
                value: upto.clone(),
            };
            bookmarks.set(key, mark).await?;
        }
        report.bookmark = Some(upto);
        Ok(true)
    }

    /// The whole source table replaces the lake table's contents (`Snapshot`, or
    /// `Incremental` without a bookmark column, where an unchanged table is left alone: false).
    async fn whole(
        &self,
        tx: Transaction<'_>,
        load: Load<'_>,
        mode: ExtractMode,
        report: &mut TableReport,
    ) -> Result<bool, StepError> {
        let rows = postgres::read(&tx, load.source, None).await?;
        drop(tx);
        report.rows_read = rows.iter().map(|b| b.num_rows() as u64).sum();
        if mode == ExtractMode::Incremental {
            // no monotonic column: compare the whole table
            let (added, removed) = diff(load.table, &rows).await?;
            report.inserted = added;
            report.removed = removed;
            if added == 0 && removed == 0 {
                report.unchanged = true;
                return Ok(false);
            }
        }
        let mut sink = FileSink::open(load.table, self.run_id).await?;
        for b in &rows {
            sink.write(b).await?;
        }
        let files = sink.close().await?;
        let replaced = overwrite(self.lake, load.table, files, load.props).await?;
        if mode == ExtractMode::Snapshot {
            report.inserted = replaced.added_rows;
            report.removed = replaced.removed_rows;
        }
        Ok(true)
    }
}

/// New and changed rows: merged on the primary key, or appended when the table has none.
async fn load_increment(
    lake: &Lake,
    table: &iceberg::table::Table,
    source: &SourceTable,
    rows: Vec<arrow_array::RecordBatch>,
    run_id: &str,
    props: HashMap<String, String>,
    report: &mut TableReport,
) -> Result<(), StepError> {
    if source.primary_key.is_empty() {
        let mut sink = FileSink::open(table, run_id).await?;
        for b in &rows {
            sink.write(b).await?;
        }
        report.inserted = sink.rows;
        append(lake, table, sink.close().await?, props).await?;
    } else {
        let m = merge(lake, table, rows, &source.primary_key, run_id, props).await?;
        report.inserted = m.inserted;
        report.updated = m.updated;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        assert_eq!(target_name(None, "public", "Orders"), "orders");
        assert_eq!(
            target_name(Some("pg_"), "sales", "line-items"),
            "pg_sales_line_items"
        );
    }
}
