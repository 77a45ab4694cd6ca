//! `extract` steps: PostgreSQL, MySQL and MariaDB tables copied into the lake. `Snapshot`
//! replaces each table's contents; `Incremental` loads rows past a bookmark (merged on the
//! primary key when there is one, appended otherwise) or, for a table without a bookmark,
//! compares a full snapshot with the table and rewrites it only when something changed.
//!
//! Memory: a snapshot, and an increment of a table without a primary key, go to data files a
//! batch at a time; an increment merged on a primary key, and the full read an incremental
//! load without a bookmark compares, are held until the commit.

pub mod bookmark;
pub mod mysql;
pub mod pattern;
pub mod postgres;
pub mod source;

use std::collections::HashMap;

use iceberg::table::Table;
use lakeform_api::workflow::{Bookmark, ExtractMode, ExtractStep, SourceEngine};
use serde::Serialize;

use crate::step::commit::overwrite;
use crate::step::error::StepError;
use crate::step::merge::{diff, merge};
use crate::step::partition::PartitionBy;
use crate::step::table::{FileSink, Lake, append, ident, prepare_partitioned};
use bookmark::{Bookmarks, Mark};
use pattern::{TablePattern, select};
use source::{ConsistentRead, Range, Rows, SourceTable};

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
    /// The bookmark after the run (a compound key's values joined by `, `).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
    /// Nothing changed: no snapshot was committed.
    pub unchanged: bool,
}

/// Name of the lake table for a source table: `<prefix><table>`, or `<prefix><schema>_<table>`
/// outside the `home` schema (`public` for PostgreSQL, the URL's database for MySQL); lower
/// case, other characters than `[a-z0-9_]` become `_`.
pub fn target_name(prefix: Option<&str>, home: &str, schema: &str, table: &str) -> String {
    let base = if schema == home {
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

/// A connection to the source database.
enum Source {
    Postgres(tokio_postgres::Client),
    /// With the database the URL names (the home schema).
    Mysql(mysql_async::Conn, String),
}

impl Source {
    async fn connect(engine: SourceEngine, url: &str) -> Result<Source, StepError> {
        Ok(match engine {
            SourceEngine::Postgres => Source::Postgres(postgres::connect(url).await?),
            SourceEngine::Mysql => {
                Source::Mysql(mysql::connect(url).await?, mysql::database_of(url)?)
            }
        })
    }

    /// Schema whose tables keep their bare name in the lake.
    fn home(&self) -> &str {
        match self {
            Source::Postgres(_) => "public",
            Source::Mysql(_, db) => db,
        }
    }

    /// Prefix of the `lakeform.source` property.
    fn engine(&self) -> &'static str {
        match self {
            Source::Postgres(_) => "postgres",
            Source::Mysql(..) => "mysql",
        }
    }

    async fn tables(&mut self) -> Result<Vec<(String, String, String)>, StepError> {
        match self {
            Source::Postgres(c) => postgres::tables(c).await,
            Source::Mysql(c, _) => mysql::tables(c).await,
        }
    }

    async fn describe(
        &mut self,
        (db, schema, name): (&str, &str, &str),
    ) -> Result<SourceTable, StepError> {
        match self {
            Source::Postgres(c) => postgres::describe(c, db, schema, name).await,
            Source::Mysql(c, _) => mysql::describe(c, schema, name).await,
        }
    }

    /// Ends the session (PostgreSQL's ends when the client is dropped).
    async fn close(self) {
        if let Source::Mysql(conn, _) = self
            && let Err(e) = conn.disconnect().await
        {
            tracing::warn!(error = %e, "closing the source database connection");
        }
    }
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
    let parse = |list: &[String]| {
        list.iter()
            .map(|p| TablePattern::parse(p).map_err(StepError::Config))
            .collect::<Result<Vec<_>, _>>()
    };
    let include = parse(&step.tables)?;
    let exclude = parse(&step.exclude)?;
    let mut source = Source::connect(step.source.engine, source_url).await?;
    let all = source.tables().await?;
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
        let report = extract
            .table(&mut source, bookmarks, (db, schema, name))
            .await;
        match report {
            Ok(r) => reports.push(r),
            Err(e) => {
                source.close().await;
                return Err(e);
            }
        }
    }
    source.close().await;
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
    for p in &step.partitions {
        if !chosen.iter().any(|(_, s, t)| format!("{s}.{t}") == p.table) {
            return Err(StepError::Config(format!(
                "spec.steps[{step_name}].extract.partitions names {}, which is not among the extracted tables",
                p.table
            )));
        }
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
        conn: &mut Source,
        bookmarks: &mut Bookmarks,
        (db, schema, name): (&str, &str, &str),
    ) -> Result<TableReport, StepError> {
        let source = conn.describe((db, schema, name)).await?;
        let target = ident(
            &self.step.target_database,
            &target_name(self.step.table_prefix.as_deref(), conn.home(), schema, name),
        );
        let mut props = self.properties.clone();
        props.insert(
            "lakeform.source".into(),
            format!("{}:{db}/{schema}/{name}", conn.engine()),
        );
        let display = source.display();
        let partitioning = self
            .step
            .partitions
            .iter()
            .enumerate()
            .find(|(_, p)| p.table == display);
        let field = partitioning.map(|(k, _)| {
            format!(
                "spec.steps[{}].extract.partitions[{k}].columns",
                self.step_name
            )
        });
        let partition_by = partitioning
            .zip(field.as_deref())
            .map(|((_, p), field)| PartitionBy {
                columns: &p.columns,
                field,
            });
        let table = prepare_partitioned(
            self.lake,
            &target,
            &source.arrow_schema(),
            partition_by,
            props.clone(),
        )
        .await?;
        let mut report = TableReport {
            source: source.display(),
            target: target.to_string(),
            ..Default::default()
        };
        let load = Load {
            source: &source,
            table: &table,
            props,
        };
        // one consistent view of the table per load
        let loaded = match conn {
            Source::Postgres(c) => {
                let tx = postgres::begin(c).await?;
                self.load(tx, load, bookmarks, &mut report).await?
            }
            Source::Mysql(c, _) => {
                let tx = mysql::begin(c).await?;
                self.load(tx, load, bookmarks, &mut report).await?
            }
        };
        if loaded {
            tracing::info!(report = ?report, "table extracted");
        }
        Ok(report)
    }

    /// Past the table's bookmark (`Incremental` with one), or the whole table.
    async fn load(
        &self,
        read: impl ConsistentRead,
        load: Load<'_>,
        bookmarks: &mut Bookmarks,
        report: &mut TableReport,
    ) -> Result<bool, StepError> {
        let display = load.source.display();
        let mark = self.step.bookmarks.iter().find(|b| b.table == display);
        match (self.step.mode, mark) {
            (ExtractMode::Incremental, Some(mark)) => {
                let key = bookmark::key(self.step_name, &load.source.schema, &load.source.name);
                self.past_bookmark(read, load, bookmarks, (&key, mark), report)
                    .await
            }
            (mode, _) => self.whole(read, load, mode, report).await,
        }
    }

    /// Incremental load past the bookmark (up to the current largest key, or the smallest
    /// when `Descending`), then the bookmark moves. False when no row has a key (nothing done).
    async fn past_bookmark(
        &self,
        mut read: impl ConsistentRead,
        load: Load<'_>,
        bookmarks: &mut Bookmarks,
        (key, mark): (&str, &Bookmark),
        report: &mut TableReport,
    ) -> Result<bool, StepError> {
        let source = load.source;
        let names = mark.key_columns();
        let columns = names
            .iter()
            .map(|n| {
                source.column(n).ok_or_else(|| {
                    StepError::Config(format!(
                        "bookmark column {n} is not a column of {}",
                        source.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let after = bookmarks.get(key, &names, mark.order);
        let Some(upto) = read.bound(source, &columns, mark.order).await? else {
            report.unchanged = true;
            return Ok(false);
        };
        let range = Range {
            columns,
            order: mark.order,
            after: after.clone(),
            upto: upto.clone(),
        };
        self.increment(read, load, &range, report).await?;
        report.unchanged = report.rows_read == 0;
        if after.as_ref() != Some(&upto) {
            let moved = Mark {
                columns: names,
                order: mark.order,
                values: upto.clone(),
            };
            bookmarks.set(key, &moved).await?;
        }
        report.bookmark = Some(upto.join(", "));
        Ok(true)
    }

    /// The rows in `range`: merged on the primary key (held until the merge), or appended
    /// when the table has none (written to data files as they come).
    async fn increment(
        &self,
        mut read: impl ConsistentRead,
        load: Load<'_>,
        range: &Range<'_>,
        report: &mut TableReport,
    ) -> Result<(), StepError> {
        if load.source.primary_key.is_empty() {
            // appended: straight into data files
            let mut sink = FileSink::open(load.table, self.run_id).await?;
            read.read(load.source, Some(range), &mut Rows::Files(&mut sink))
                .await?;
            drop(read);
            report.rows_read = sink.rows;
            report.inserted = sink.rows;
            if sink.rows > 0 {
                append(self.lake, load.table, sink.close().await?, load.props).await?;
            }
        } else {
            let mut rows = Vec::new();
            read.read(load.source, Some(range), &mut Rows::Memory(&mut rows))
                .await?;
            drop(read);
            report.rows_read = rows.iter().map(|b| b.num_rows() as u64).sum();
            if report.rows_read > 0 {
                let keys = &load.source.primary_key;
                let m = merge(self.lake, load.table, rows, keys, self.run_id, load.props).await?;
                report.inserted = m.inserted;
                report.updated = m.updated;
            }
        }
        Ok(())
    }

    /// The whole source table replaces the lake table's contents (`Snapshot`, or
    /// `Incremental` without a bookmark, where an unchanged table is left alone: false).
    async fn whole(
        &self,
        mut read: impl ConsistentRead,
        load: Load<'_>,
        mode: ExtractMode,
        report: &mut TableReport,
    ) -> Result<bool, StepError> {
        let mut sink = FileSink::open(load.table, self.run_id).await?;
        if mode == ExtractMode::Incremental {
            // no monotonic key: compare the whole table
            let mut rows = Vec::new();
            read.read(load.source, None, &mut Rows::Memory(&mut rows))
                .await?;
            drop(read);
            report.rows_read = rows.iter().map(|b| b.num_rows() as u64).sum();
            let (added, removed) = diff(load.table, &rows).await?;
            report.inserted = added;
            report.removed = removed;
            if added == 0 && removed == 0 {
                report.unchanged = true;
                return Ok(false);
            }
            for b in &rows {
                sink.write(b).await?;
            }
        } else {
            read.read(load.source, None, &mut Rows::Files(&mut sink))
                .await?;
            drop(read);
            report.rows_read = sink.rows;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_and_partitions_must_name_extracted_tables() {
        let step: ExtractStep = serde_yaml::from_str(
            "source: {engine: Postgres, connectionSecretRef: {name: s, key: url}}\n\
             tables: [shop/public/%]\nexclude: [shop/public/audit%]\ntargetDatabase: d\n\
             partitions: [{table: public.events, columns: [day]}]\n",
        )
        .expect("step");
        let all: Vec<(String, String, String)> =
            [("shop", "public", "events"), ("shop", "public", "audit")]
                .iter()
                .map(|(d, s, t)| (d.to_string(), s.to_string(), t.to_string()))
                .collect();
        let include = [TablePattern::parse("shop/public/%").expect("pattern")];
        let exclude = [TablePattern::parse("shop/public/audit%").expect("pattern")];
        assert_eq!(
            choose("load", &step, &all, &include, &exclude)
                .expect("chosen")
                .len(),
            1
        );
        let mut excluded = step.clone();
        excluded.partitions[0].table = "public.audit".into();
        let err = choose("load", &excluded, &all, &include, &exclude).expect_err("excluded");
        assert!(
            err.to_string()
                .contains("extract.partitions names public.audit"),
            "{err}"
        );
    }

    #[test]
    fn target_names() {
        assert_eq!(target_name(None, "public", "public", "Orders"), "orders");
        assert_eq!(
            target_name(Some("pg_"), "public", "sales", "line-items"),
            "pg_sales_line_items"
        );
        // MySQL: tables of the URL's database keep their bare name
        assert_eq!(target_name(None, "shop", "shop", "orders"), "orders");
        assert_eq!(target_name(None, "shop", "audit", "log"), "audit_log");
    }
}
