//! `Merge` (upsert on key columns) and the snapshot diff, computed with DataFusion over the
//! table's current snapshot and the incoming rows, written copy-on-write as one `overwrite`
//! snapshot: rows whose key arrives are replaced, the others kept.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use iceberg::table::Table;
use iceberg_datafusion::IcebergStaticTableProvider;

use crate::step::commit::overwrite;
use crate::step::error::StepError;
use crate::step::table::{FileSink, Lake, append, arrow_schema, conform};

/// What a merge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// Incoming rows whose key was new.
    pub inserted: u64,
    /// Incoming rows that replaced a row with the same key.
    pub updated: u64,
    /// Rows of the table now.
    pub total: u64,
}

/// `"name"` with embedded quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64, StepError> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(StepError::sql(sql.to_string()))?
        .collect()
        .await
        .map_err(StepError::sql(sql.to_string()))?;
    Ok(batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>())
        .map(|a| a.value(0).max(0) as u64)
        .unwrap_or(0))
}

/// A session with the table's current rows as `existing` and `incoming` in memory (conformed
/// to the table's schema).
async fn session(table: &Table, incoming: &[RecordBatch]) -> Result<SessionContext, StepError> {
    let name = table.identifier().to_string();
    let schema = arrow_schema(table)?;
    let rows = incoming
        .iter()
        .map(|b| conform(b, &schema, &name))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = SessionContext::new();
    let mem = MemTable::try_new(schema, vec![rows]).map_err(StepError::sql("incoming rows"))?;
    ctx.register_table("incoming", Arc::new(mem))
        .map_err(StepError::sql("incoming rows"))?;
    let existing = IcebergStaticTableProvider::try_new_from_table(table.clone())
        .await
        .map_err(StepError::catalog(format!("reading {name}")))?;
    ctx.register_table("existing", Arc::new(existing))
        .map_err(StepError::sql(format!("reading {name}")))?;
    Ok(ctx)
}

fn key_match(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("i.{0} = e.{0}", quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Upserts `incoming` into `table` on `keys`. Keys must name columns of the table, be non-null
/// and unique among the incoming rows; otherwise nothing is written.
pub async fn merge(
    lake: &Lake,
    table: &Table,
    incoming: Vec<RecordBatch>,
    keys: &[String],
    run_id: &str,
    properties: HashMap<String, String>,
) -> Result<Merged, StepError> {
    let name = table.identifier().to_string();
    let schema = arrow_schema(table)?;
    let bad = |message: String| StepError::Data {
        table: name.clone(),
        message,
    };
    if let Some(k) = keys.iter().find(|k| schema.field_with_name(k).is_err()) {
        return Err(bad(format!("merge key {k} is not a column of the table")));
    }
    let ctx = session(table, &incoming).await?;
    check_incoming_keys(&ctx, keys, bad).await?;
    let arriving = count(&ctx, "SELECT count(*) FROM incoming").await?;
    if table.metadata().current_snapshot().is_none() {
        let mut sink = FileSink::open(table, run_id).await?;
        for b in &incoming {
            sink.write(b).await?;
        }
        append(lake, table, sink.close().await?, properties).await?;
        return Ok(Merged {
            inserted: arriving,
            updated: 0,
            total: arriving,
        });
    }
    let on = key_match(keys);
    let updated = count(
        &ctx,
        &format!(
            "SELECT count(*) FROM incoming i WHERE EXISTS (SELECT 1 FROM existing e WHERE {on})"
        ),
    )
    .await?;
    let kept = format!(
        "SELECT e.* FROM existing e WHERE NOT EXISTS (SELECT 1 FROM incoming i WHERE {on})"
    );
    let mut sink = FileSink::open(table, run_id).await?;
    for sql in [kept.as_str(), "SELECT * FROM incoming"] {
        write_query(&ctx, sql, &mut sink).await?;
    }
    let total = sink.rows;
    overwrite(lake, table, sink.close().await?, properties).await?;
    Ok(Merged {
        inserted: arriving - updated,
        updated,
        total,
    })
}

/// Fails (with `bad`'s error) when a merge key is null in an incoming row, or a key value
/// arrives more than once.
async fn check_incoming_keys(
    ctx: &SessionContext,
    keys: &[String],
    bad: impl Fn(String) -> StepError,
) -> Result<(), StepError> {
    let cols = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let nulls = keys
        .iter()
        .map(|k| format!("{} IS NULL", quote(k)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let null_rows = count(ctx, &format!("SELECT count(*) FROM incoming WHERE {nulls}")).await?;
    if null_rows > 0 {
        return Err(bad(format!(
            "{null_rows} incoming row(s) have a null merge key ({cols})"
        )));
    }
    let dups = count(
        ctx,
        &format!(
            "SELECT count(*) FROM (SELECT {cols} FROM incoming GROUP BY {cols} HAVING count(*) > 1)"
        ),
    )
    .await?;
    if dups > 0 {
        return Err(bad(format!(
            "{dups} merge key value(s) ({cols}) appear more than once in the incoming rows"
        )));
    }
    Ok(())
}

/// Streams the rows of `sql` into `sink`.
async fn write_query(
    ctx: &SessionContext,
    sql: &str,
    sink: &mut FileSink,
) -> Result<(), StepError> {
    let mut stream = ctx
        .sql(sql)
        .await
        .map_err(StepError::sql(sql.to_string()))?
        .execute_stream()
        .await
        .map_err(StepError::sql(sql.to_string()))?;
    while let Some(b) = stream.next().await {
        sink.write(&b.map_err(StepError::sql(sql.to_string()))?)
            .await?;
    }
    Ok(())
}

/// Rows only in `incoming` and rows only in the table (a full snapshot diff).
pub async fn diff(table: &Table, incoming: &[RecordBatch]) -> Result<(u64, u64), StepError> {
    if table.metadata().current_snapshot().is_none() {
        let rows = incoming.iter().map(|b| b.num_rows() as u64).sum();
        return Ok((rows, 0));
    }
    let ctx = session(table, incoming).await?;
    let added = count(
        &ctx,
        "SELECT count(*) FROM (SELECT * FROM incoming EXCEPT ALL SELECT * FROM existing)",
    )
    .await?;
    let removed = count(
        &ctx,
        "SELECT count(*) FROM (SELECT * FROM existing EXCEPT ALL SELECT * FROM incoming)",
    )
    .await?;
    Ok((added, removed))
}
