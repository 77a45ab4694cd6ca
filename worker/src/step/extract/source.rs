//! What the PostgreSQL and MySQL sources share: a table's description (columns, their
//! [`Kind`], primary key), the bookmark [`Range`] a read is limited to, the [`ConsistentRead`]
//! each engine implements over one read-only transaction, where the rows go ([`Rows`]) and the
//! timeouts every source call runs under.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::{Stream, StreamExt};
use lakeform_api::workflow::BookmarkOrder;

use crate::lake::schema::UTC;
use crate::step::error::StepError;
use crate::step::table::FileSink;

/// Rows per Arrow batch: what a read holds at a time.
pub const BATCH_ROWS: usize = 8192;

/// Longest wait for a connection to the source.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for one source call: a catalog query, the bookmark bound, the next batch of
/// rows. A bound on an unindexed column scans the table, hence minutes rather than seconds.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How a column travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    /// decimal(p, s), sent as text.
    Decimal(u8, i8),
    /// Days since 1970-01-01.
    Date,
    /// Epoch microseconds; `true` for a UTC instant (`timestamptz`, MySQL `timestamp`).
    Timestamp(bool),
    Bytes,
    /// Anything else, as its text form.
    Text,
}

/// A source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The column's type as the source spells it, e.g. `timestamp with time zone` or
    /// `int(10) unsigned`.
    pub sql_type: String,
    pub kind: Kind,
}

/// A source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub database: String,
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

impl SourceTable {
    /// `schema.table`, as bookmarks and messages name it.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The Arrow schema of the rows a read returns.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, arrow_type(c.kind), true))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The Arrow type a kind becomes.
pub fn arrow_type(kind: Kind) -> DataType {
    match kind {
        Kind::Bool => DataType::Boolean,
        Kind::Int32 => DataType::Int32,
        Kind::Int64 => DataType::Int64,
        Kind::Float32 => DataType::Float32,
        Kind::Float64 => DataType::Float64,
        Kind::Decimal(p, s) => DataType::Decimal128(p, s),
        Kind::Date => DataType::Date32,
        Kind::Timestamp(tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.then(|| UTC.into())),
        Kind::Bytes => DataType::Binary,
        Kind::Text => DataType::Utf8,
    }
}

/// A text array (decimal digits) as the decimal of `kind`; a value that does not fit fails.
pub fn text_to_decimal(text: ArrayRef, kind: Kind) -> Result<ArrayRef, String> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&text, &arrow_type(kind), &strict).map_err(|e| e.to_string())
}

/// The rows of one incremental load: key tuples past `after` (when set) up to `upto`, both
/// in the order of the bookmark.
#[derive(Debug, Clone)]
pub struct Range<'a> {
    pub columns: Vec<&'a Column>,
    pub order: BookmarkOrder,
    /// The key of the last load (excluded), as text; `None` on the first load.
    pub after: Option<Vec<String>>,
    /// The key this load goes up to (included), as text.
    pub upto: Vec<String>,
}

impl Range<'_> {
    /// The SQL condition of the range and its parameters (`upto`'s values, then `after`'s).
    /// `quote` spells a column name, `param(column, n)` the `n`-th parameter (from 0) cast to
    /// the column's type. Tuples compare lexicographically; a NULL in the key is outside.
    pub fn condition(
        &self,
        quote: impl Fn(&str) -> String,
        param: impl Fn(&Column, usize) -> String,
    ) -> (String, Vec<String>) {
        let cols = self
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>();
        let tuple = |from: usize| {
            let values = self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| param(c, from + i))
                .collect::<Vec<_>>();
            format!("({})", values.join(", "))
        };
        let (to, past) = match self.order {
            BookmarkOrder::Ascending => ("<=", ">"),
            BookmarkOrder::Descending => (">=", "<"),
        };
        let key = format!("({})", cols.join(", "));
        let mut parts: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        parts.push(format!("{key} {to} {}", tuple(0)));
        let mut params = self.upto.clone();
        if let Some(after) = &self.after {
            parts.push(format!("{key} {past} {}", tuple(self.columns.len())));
            params.extend(after.iter().cloned());
        }
        (parts.join(" AND "), params)
    }
}

/// `ORDER BY` of the bookmark bound query: the bound comes first (`DESC` for `Ascending`).
pub fn bound_order(
    columns: &[&Column],
    order: BookmarkOrder,
    quote: impl Fn(&str) -> String,
) -> String {
    let dir = match order {
        BookmarkOrder::Ascending => "DESC",
        BookmarkOrder::Descending => "ASC",
    };
    columns
        .iter()
        .map(|c| format!("{} {dir}", quote(&c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads of one table in one consistent, read-only view of the source.
pub(crate) trait ConsistentRead {
    /// The key of `columns` a load goes up to: the largest tuple without NULLs (`Ascending`)
    /// or the smallest (`Descending`), as text; `None` when there is no such row.
    async fn bound(
        &mut self,
        table: &SourceTable,
        columns: &[&Column],
        order: BookmarkOrder,
    ) -> Result<Option<Vec<String>>, StepError>;

    /// The rows of `table` (only those in `range` when set), into `out` batch by batch.
    async fn read(
        &mut self,
        table: &SourceTable,
        range: Option<&Range<'_>>,
        out: &mut Rows<'_>,
    ) -> Result<(), StepError>;
}

/// Where read rows go: kept (a merge or a diff needs them all) or written to data files as
/// they come (memory stays at one batch).
pub enum Rows<'a> {
    Memory(&'a mut Vec<RecordBatch>),
    Files(&'a mut FileSink),
}

impl Rows<'_> {
    /// Takes one batch.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<(), StepError> {
        match self {
            Rows::Memory(v) => v.push(batch),
            Rows::Files(sink) => sink.write(&batch).await?,
        }
        Ok(())
    }

    /// Rows taken so far.
    pub fn count(&self) -> u64 {
        match self {
            Rows::Memory(v) => v.iter().map(|b| b.num_rows() as u64).sum(),
            Rows::Files(sink) => sink.rows,
        }
    }
}

/// `fut`, failed with a timeout error naming `what` after `limit`.
pub async fn timed<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| StepError::SourceTimeout {
            context: what.to_string(),
            seconds: limit.as_secs(),
        })?
}

/// Every item of `stream`, [`BATCH_ROWS`] at a time, made into a batch by `to_batch` and
/// pushed into `out`; each batch must arrive within [`QUERY_TIMEOUT`]. The stream is fused:
/// a finished PostgreSQL row stream polled again reports a closed connection.
pub async fn drain<S, T, E>(
    stream: S,
    what: &str,
    to_batch: impl Fn(&[T]) -> Result<RecordBatch, StepError>,
    out: &mut Rows<'_>,
) -> Result<(), StepError>
where
    S: Stream<Item = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut stream = std::pin::pin!(stream.fuse());
    loop {
        let rows = timed(what, QUERY_TIMEOUT, async {
            let mut rows = Vec::with_capacity(BATCH_ROWS);
            while rows.len() < BATCH_ROWS {
                match stream.next().await {
                    Some(row) => rows.push(row.map_err(StepError::source(what))?),
                    None => break,
                }
            }
            Ok(rows)
        })
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        out.push(to_batch(&rows)?).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            sql_type: "int".into(),
            kind: Kind::Int32,
        }
    }

    /// Rows, then an error for any poll after the end (what tokio-postgres's row stream does).
    fn strict_stream(n: i32) -> impl Stream<Item = Result<i32, std::io::Error>> {
        let mut next = 0;
        let mut ended = false;
        futures::stream::poll_fn(move |_| {
            if ended {
                return std::task::Poll::Ready(Some(Err(std::io::Error::other(
                    "connection closed",
                ))));
            }
            next += 1;
            if next > n {
                ended = true;
                return std::task::Poll::Ready(None);
            }
            std::task::Poll::Ready(Some(Ok(next)))
        })
    }

    fn ints(rows: &[i32]) -> Result<RecordBatch, StepError> {
        let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int32, false)]));
        let col: ArrayRef = Arc::new(arrow_array::Int32Array::from(rows.to_vec()));
        RecordBatch::try_new(schema, vec![col]).map_err(|e| StepError::Config(e.to_string()))
    }

    #[tokio::test]
    async fn drain_batches_rows_and_stops_at_the_end() {
        for n in [0, 5, BATCH_ROWS as i32, BATCH_ROWS as i32 + 3] {
            let mut kept = Vec::new();
            drain(
                strict_stream(n),
                "reading t",
                ints,
                &mut Rows::Memory(&mut kept),
            )
            .await
            .expect("drained");
            let sizes: Vec<usize> = kept.iter().map(RecordBatch::num_rows).collect();
            let want: Vec<usize> = match n as usize {
                0 => vec![],
                n if n <= BATCH_ROWS => vec![n],
                n => vec![BATCH_ROWS, n - BATCH_ROWS],
            };
            assert_eq!(sizes, want, "{n} rows");
        }
    }

    #[test]
    fn a_compound_range_compares_tuples_and_leaves_nulls_out() {
        let (a, b) = (col("day"), col("line"));
        let range = Range {
            columns: vec![&a, &b],
            order: BookmarkOrder::Ascending,
            after: Some(vec!["1".into(), "7".into()]),
            upto: vec!["3".into(), "2".into()],
        };
        let (sql, params) = range.condition(|c| format!("`{c}`"), |_, n| format!("${}", n + 1));
        assert_eq!(
            sql,
            "`day` IS NOT NULL AND `line` IS NOT NULL AND (`day`, `line`) <= ($1, $2) AND (`day`, `line`) > ($3, $4)"
        );
        assert_eq!(params, vec!["3", "2", "1", "7"]);
    }

    #[test]
    fn a_descending_first_load_takes_everything_down_to_the_bound() {
        let a = col("id");
        let range = Range {
            columns: vec![&a],
            order: BookmarkOrder::Descending,
            after: None,
            upto: vec!["-40".into()],
        };
        let (sql, params) = range.condition(|c| c.to_string(), |_, _| "?".into());
        assert_eq!(sql, "id IS NOT NULL AND (id) >= (?)");
        assert_eq!(params, vec!["-40"]);
        assert_eq!(
            bound_order(&[&a], BookmarkOrder::Descending, |c| c.to_string()),
            "id ASC"
        );
        assert_eq!(
            bound_order(&[&a], BookmarkOrder::Ascending, |c| c.to_string()),
            "id DESC"
        );
    }
}
