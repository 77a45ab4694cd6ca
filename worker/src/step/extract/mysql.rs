//! MySQL and MariaDB sources: tables, columns and primary keys from `information_schema`, and
//! rows read as Arrow batches over the binary protocol, which sends integers, floats, dates and
//! times as typed values and decimals as their digits, so nothing is rounded on the way.
//!
//! MySQL has no schemas inside a database: a table is `(database, database, table)`, the
//! database standing in both the database and the schema part of a `database/schema/table`
//! pattern. The session runs in UTC (`time_zone = '+00:00'`), so `timestamp` columns arrive
//! as UTC instants and `datetime` columns as written. A zero date (`0000-00-00`) becomes NULL.

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, PrimitiveArray, RecordBatch,
    StringArray,
};
use arrow_schema::SchemaRef;
use lakeform_api::workflow::BookmarkOrder;
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{
    Conn, IsolationLevel, Opts, OptsBuilder, Params, Row, Transaction, TxOpts, Value,
};

use super::source::{
    CONNECT_TIMEOUT, Column, ConsistentRead, Kind, QUERY_TIMEOUT, Range, Rows, SourceTable,
    bound_order, drain, text_to_decimal, timed,
};
use crate::lake::schema::UTC;
use crate::step::error::StepError;

/// Databases of the server itself, never extracted.
const SYSTEM_DATABASES: &str = "'mysql', 'information_schema', 'performance_schema', 'sys'";

/// Session settings: UTC, UTF-8 text, and ten minutes (not one) before the server gives up
/// on a client that is slow to take rows (it may be writing a data file meanwhile).
const SESSION: [&str; 3] = [
    "SET time_zone = '+00:00'",
    "SET NAMES utf8mb4",
    "SET SESSION net_write_timeout = 600",
];

/// `` `name` `` with embedded backticks doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn qualified(table: &SourceTable) -> String {
    format!("{}.{}", quote(&table.schema), quote(&table.name))
}

/// The database the URL names (`mysql://user:pass@host:3306/<database>`).
pub fn database_of(url: &str) -> Result<String, StepError> {
    let opts = Opts::from_url(url).map_err(StepError::source("reading the connection URL"))?;
    Ok(opts.db_name().unwrap_or_default().to_string())
}

/// Connects within [`CONNECT_TIMEOUT`], in UTC and UTF-8.
pub async fn connect(url: &str) -> Result<Conn, StepError> {
    let opts = Opts::from_url(url).map_err(StepError::source("reading the connection URL"))?;
    let opts = OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .init(SESSION.to_vec());
    timed("connecting", CONNECT_TIMEOUT, async {
        Conn::new(opts)
            .await
            .map_err(StepError::source("connecting"))
    })
    .await
}

/// A read-only, repeatable-read transaction with a consistent snapshot: one view of the data.
pub async fn begin(conn: &mut Conn) -> Result<Transaction<'_>, StepError> {
    let what = "starting a read transaction";
    let mut opts = TxOpts::default();
    opts.with_consistent_snapshot(true)
        .with_isolation_level(IsolationLevel::RepeatableRead)
        .with_readonly(true);
    timed(what, QUERY_TIMEOUT, async {
        conn.start_transaction(opts)
            .await
            .map_err(StepError::source(what))
    })
    .await
}

/// `q.exec(sql, params)` within [`QUERY_TIMEOUT`].
async fn exec<T, Q>(q: &mut Q, what: &str, sql: &str, params: Params) -> Result<Vec<T>, StepError>
where
    T: FromRow + Send + 'static,
    Q: Queryable,
{
    timed(what, QUERY_TIMEOUT, async {
        q.exec(sql, params).await.map_err(StepError::source(what))
    })
    .await
}

/// Every base table outside the system databases, as `(database, database, table)`.
pub async fn tables(conn: &mut Conn) -> Result<Vec<(String, String, String)>, StepError> {
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
          WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({SYSTEM_DATABASES})
          ORDER BY TABLE_SCHEMA, TABLE_NAME"
    );
    let rows: Vec<(String, String)> = exec(conn, "listing tables", &sql, Params::Empty).await?;
    Ok(rows
        .into_iter()
        .map(|(db, table)| (db.clone(), db, table))
        .collect())
}

/// One row of `information_schema.COLUMNS`: name, `DATA_TYPE`, `COLUMN_TYPE`, numeric
/// precision and scale.
type ColumnRow = (String, String, String, Option<u64>, Option<u64>);

/// Columns and primary key of one table.
pub async fn describe(conn: &mut Conn, schema: &str, name: &str) -> Result<SourceTable, StepError> {
    let what = format!("describing {schema}.{name}");
    let params = || Params::Positional(vec![schema.into(), name.into()]);
    let columns: Vec<ColumnRow> = exec(
        conn,
        &what,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
          ORDER BY ORDINAL_POSITION",
        params(),
    )
    .await?;
    let primary_key: Vec<String> = exec(
        conn,
        &what,
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS
          WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'
          ORDER BY SEQ_IN_INDEX",
        params(),
    )
    .await?;
    Ok(SourceTable {
        database: schema.to_string(),
        schema: schema.to_string(),
        name: name.to_string(),
        columns: columns
            .into_iter()
            .map(|(name, data_type, column_type, p, s)| Column {
                kind: kind_of(&data_type.to_lowercase(), &column_type.to_lowercase(), p, s),
                name,
                sql_type: column_type,
            })
            .collect(),
        primary_key,
    })
}

/// The kind of a column from `DATA_TYPE`, `COLUMN_TYPE` and numeric precision and scale.
/// `tinyint(1)` (what `bool` declares) is a boolean; unsigned integers widen so every value
/// fits (`bigint unsigned` becomes `decimal(20, 0)`); decimals wider than 38 digits, `time`,
/// `enum`, `set` and `json` travel as text.
pub fn kind_of(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
) -> Kind {
    let unsigned = column_type.contains("unsigned");
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => Kind::Bool,
        "bool" | "boolean" => Kind::Bool,
        "tinyint" | "smallint" | "mediumint" | "year" => Kind::Int32,
        "int" | "integer" if unsigned => Kind::Int64,
        "int" | "integer" => Kind::Int32,
        "bigint" if unsigned => Kind::Decimal(20, 0),
        "bigint" => Kind::Int64,
        "float" => Kind::Float32,
        "double" | "real" | "double precision" => Kind::Float64,
        "decimal" | "numeric" => match (precision, scale) {
            (Some(p), Some(s)) if (1..=38).contains(&p) && s <= p => {
                Kind::Decimal(p as u8, s as i8)
            }
            _ => Kind::Text,
        },
        "date" => Kind::Date,
        "datetime" => Kind::Timestamp(false),
        "timestamp" => Kind::Timestamp(true),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" => Kind::Bytes,
        _ => Kind::Text,
    }
}

/// A bookmark parameter cast to the column's type, so the server compares values, not text
/// (an integer compared with a string would go through a double and lose digits).
fn param(c: &Column) -> String {
    let unsigned = c.sql_type.to_lowercase().contains("unsigned");
    match c.kind {
        Kind::Bool => "CAST(? AS SIGNED)".into(),
        Kind::Int32 | Kind::Int64 | Kind::Decimal(20, 0) if unsigned => {
            "CAST(? AS UNSIGNED)".into()
        }
        Kind::Int32 | Kind::Int64 => "CAST(? AS SIGNED)".into(),
        Kind::Decimal(p, s) => format!("CAST(? AS DECIMAL({p}, {s}))"),
        Kind::Date => "CAST(? AS DATE)".into(),
        Kind::Timestamp(_) => "CAST(? AS DATETIME(6))".into(),
        Kind::Float32 | Kind::Float64 => "(? + 0e0)".into(),
        Kind::Bytes | Kind::Text => "?".into(),
    }
}

impl ConsistentRead for Transaction<'_> {
    async fn bound(
        &mut self,
        table: &SourceTable,
        columns: &[&Column],
        order: BookmarkOrder,
    ) -> Result<Option<Vec<String>>, StepError> {
        let names = columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>();
        let not_null = names
            .iter()
            .map(|c| format!("{c} IS NOT NULL"))
            .collect::<Vec<_>>();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1",
            names.join(", "),
            qualified(table),
            not_null.join(" AND "),
            bound_order(columns, order, quote)
        );
        let what = format!("bookmark of {}", table.display());
        let rows: Vec<Row> = exec(self, &what, &sql, Params::Empty).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let values = columns
            .iter()
            .enumerate()
            .map(|(i, c)| row.as_ref(i).and_then(|v| text_of(v, c.kind)))
            .collect::<Option<Vec<_>>>();
        Ok(values)
    }

    async fn read(
        &mut self,
        table: &SourceTable,
        range: Option<&Range<'_>>,
        out: &mut Rows<'_>,
    ) -> Result<(), StepError> {
        let list = table
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>();
        let mut sql = format!("SELECT {} FROM {}", list.join(", "), qualified(table));
        let mut params = Params::Empty;
        if let Some(range) = range {
            let (cond, values) = range.condition(quote, |c, _| param(c));
            sql.push_str(&format!(" WHERE {cond}"));
            params = Params::Positional(values.into_iter().map(Value::from).collect());
        }
        let what = format!("reading {}", table.display());
        let mut result = timed(&what, QUERY_TIMEOUT, async {
            self.exec_iter(sql.as_str(), params)
                .await
                .map_err(StepError::source(what.as_str()))
        })
        .await?;
        let stream = result
            .stream::<Row>()
            .await
            .map_err(StepError::source(what.as_str()))?;
        let Some(stream) = stream else {
            return Ok(());
        };
        let schema = table.arrow_schema();
        drain(stream, &what, |rows| to_batch(table, &schema, rows), out).await
    }
}

/// A value as the text a bookmark keeps (what the server parses back with [`param`]'s cast).
fn text_of(v: &Value, kind: Kind) -> Option<String> {
    Some(match v {
        Value::NULL => return None,
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Date(y, m, d, ..) if kind == Kind::Date => format!("{y:04}-{m:02}-{d:02}"),
        Value::Date(y, m, d, h, mi, s, us) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::Time(neg, days, h, m, s, us) => {
            let sign = if *neg { "-" } else { "" };
            let hours = u64::from(*days) * 24 + u64::from(*h);
            format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}")
        }
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A date or date-time value as days, or microseconds, since the epoch; a zero date is NULL.
fn epoch(v: &Value, micros: bool) -> Result<Option<i64>, String> {
    match v {
        Value::NULL | Value::Date(0, _, _, _, _, _, _) | Value::Date(_, 0, _, _, _, _, _) => {
            Ok(None)
        }
        Value::Date(y, m, d, h, mi, s, us) => {
            let days = days_from_civil(i64::from(*y), u32::from(*m), u32::from(*d));
            if !micros {
                return Ok(Some(days));
            }
            let secs = days * 86_400 + i64::from(*h) * 3600 + i64::from(*mi) * 60 + i64::from(*s);
            Ok(Some(secs * 1_000_000 + i64::from(*us)))
        }
        other => Err(format!("expected a date, got {other:?}")),
    }
}

/// An integer value (signed or not).
fn int(v: &Value) -> Result<Option<i128>, String> {
    match v {
        Value::NULL => Ok(None),
        Value::Int(i) => Ok(Some(i128::from(*i))),
        Value::UInt(u) => Ok(Some(i128::from(*u))),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| format!("expected an integer, got {:?}", String::from_utf8_lossy(b))),
        other => Err(format!("expected an integer, got {other:?}")),
    }
}

fn float(v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::NULL => Ok(None),
        Value::Float(f) => Ok(Some(f64::from(*f))),
        Value::Double(d) => Ok(Some(*d)),
        other => int(other).map(|i| i.map(|i| i as f64)),
    }
}

fn to_batch(
    table: &SourceTable,
    schema: &SchemaRef,
    rows: &[Row],
) -> Result<RecordBatch, StepError> {
    let bad = |message: String| StepError::SourceData {
        table: table.display(),
        message,
    };
    let columns = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| column(c, i, rows).map_err(|e| bad(format!("column {}: {e}", c.name))))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| bad(e.to_string()))
}

/// Value `i` of each row, through `f`.
fn values<T>(
    rows: &[Row],
    i: usize,
    f: impl Fn(&Value) -> Result<Option<T>, String>,
) -> Result<Vec<Option<T>>, String> {
    rows.iter()
        .map(|r| r.as_ref(i).map_or(Ok(None), &f))
        .collect()
}

/// Column `i` as a primitive array of `P`, each value converted by `f`.
fn primitive<P: ArrowPrimitiveType>(
    rows: &[Row],
    i: usize,
    f: impl Fn(&Value) -> Result<Option<P::Native>, String>,
) -> Result<PrimitiveArray<P>, String> {
    Ok(values(rows, i, f)?.into_iter().collect())
}

/// An integer that must fit `T`.
fn narrow<T: TryFrom<i128>>(v: &Value) -> Result<Option<T>, String> {
    int(v)?
        .map(|i| T::try_from(i).map_err(|_| format!("{i} is out of range")))
        .transpose()
}

/// Column `i` of `rows` as the Arrow array of `c`'s kind.
fn column(c: &Column, i: usize, rows: &[Row]) -> Result<ArrayRef, String> {
    Ok(match c.kind {
        Kind::Bool => {
            let v = values(rows, i, |v| match v {
                Value::Bytes(b) => Ok(Some(b.iter().any(|x| *x != 0))),
                other => int(other).map(|i| i.map(|i| i != 0)),
            })?;
            Arc::new(BooleanArray::from(v))
        }
        Kind::Int32 => Arc::new(primitive::<Int32Type>(rows, i, narrow::<i32>)?),
        Kind::Int64 => Arc::new(primitive::<Int64Type>(rows, i, narrow::<i64>)?),
        Kind::Float32 => Arc::new(primitive::<Float32Type>(rows, i, |v| {
            float(v).map(|f| f.map(|f| f as f32))
        })?),
        Kind::Float64 => Arc::new(primitive::<Float64Type>(rows, i, float)?),
        Kind::Date => Arc::new(primitive::<Date32Type>(rows, i, |v| {
            epoch(v, false)?
                .map(|d| i32::try_from(d).map_err(|_| format!("day {d} is out of range")))
                .transpose()
        })?),
        Kind::Timestamp(tz) => Arc::new(
            primitive::<TimestampMicrosecondType>(rows, i, |v| epoch(v, true))?
                .with_timezone_opt(tz.then_some(UTC)),
        ),
        Kind::Bytes => {
            let v = values(rows, i, |v| match v {
                Value::Bytes(b) => Ok(Some(b.clone())),
                other => Ok(text_of(other, c.kind).map(String::into_bytes)),
            })?;
            Arc::new(BinaryArray::from_iter(v))
        }
        Kind::Text | Kind::Decimal(..) => {
            let v = values(rows, i, |v| match v {
                Value::Bytes(b) => String::from_utf8(b.clone())
                    .map(Some)
                    .map_err(|_| "a value is not UTF-8 text".to_string()),
                other => Ok(text_of(other, c.kind)),
            })?;
            let text: ArrayRef = Arc::new(StringArray::from(v));
            match c.kind {
                Kind::Decimal(..) => text_to_decimal(text, c.kind)?,
                _ => text,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_types_map_onto_exact_kinds() {
        assert_eq!(
            kind_of("tinyint", "tinyint(1)", Some(3), Some(0)),
            Kind::Bool
        );
        assert_eq!(
            kind_of("tinyint", "tinyint(4)", Some(3), Some(0)),
            Kind::Int32
        );
        assert_eq!(kind_of("int", "int(11)", Some(10), Some(0)), Kind::Int32);
        assert_eq!(
            kind_of("int", "int(10) unsigned", Some(10), Some(0)),
            Kind::Int64
        );
        assert_eq!(
            kind_of("bigint", "bigint(20)", Some(19), Some(0)),
            Kind::Int64
        );
        assert_eq!(
            kind_of("bigint", "bigint unsigned", Some(20), Some(0)),
            Kind::Decimal(20, 0)
        );
        assert_eq!(
            kind_of("decimal", "decimal(12,2)", Some(12), Some(2)),
            Kind::Decimal(12, 2)
        );
        assert_eq!(
            kind_of("decimal", "decimal(65,2)", Some(65), Some(2)),
            Kind::Text
        );
        assert_eq!(kind_of("float", "float", Some(12), None), Kind::Float32);
        assert_eq!(kind_of("double", "double", Some(22), None), Kind::Float64);
        assert_eq!(kind_of("varchar", "varchar(40)", None, None), Kind::Text);
        assert_eq!(kind_of("longtext", "longtext", None, None), Kind::Text);
        assert_eq!(kind_of("date", "date", None, None), Kind::Date);
        assert_eq!(
            kind_of("datetime", "datetime(6)", None, None),
            Kind::Timestamp(false)
        );
        assert_eq!(
            kind_of("timestamp", "timestamp", None, None),
            Kind::Timestamp(true)
        );
        assert_eq!(kind_of("blob", "blob", None, None), Kind::Bytes);
        assert_eq!(kind_of("enum", "enum('a','b')", None, None), Kind::Text);
    }

    #[test]
    fn days_and_instants_count_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(1900, 1, 1), -25_567);
        let v = Value::Date(2024, 2, 29, 13, 5, 7, 250);
        assert_eq!(
            epoch(&v, true),
            Ok(Some(
                19_782 * 86_400_000_000 + (13 * 3600 + 5 * 60 + 7) * 1_000_000 + 250
            ))
        );
        assert_eq!(epoch(&Value::Date(0, 0, 0, 0, 0, 0, 0), false), Ok(None));
    }

    #[test]
    fn bookmark_values_round_trip_as_text_the_server_casts_back() {
        assert_eq!(
            text_of(&Value::Date(2024, 2, 9, 0, 0, 0, 0), Kind::Date).as_deref(),
            Some("2024-02-09")
        );
        assert_eq!(
            text_of(&Value::Date(2024, 2, 9, 1, 2, 3, 4), Kind::Timestamp(false)).as_deref(),
            Some("2024-02-09 01:02:03.000004")
        );
        assert_eq!(
            text_of(&Value::UInt(u64::MAX), Kind::Decimal(20, 0)).as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(text_of(&Value::NULL, Kind::Int32), None);
        let col = |sql_type: &str, kind| Column {
            name: "c".into(),
            sql_type: sql_type.into(),
            kind,
        };
        assert_eq!(
            param(&col("bigint unsigned", Kind::Decimal(20, 0))),
            "CAST(? AS UNSIGNED)"
        );
        assert_eq!(
            param(&col("decimal(12,2)", Kind::Decimal(12, 2))),
            "CAST(? AS DECIMAL(12, 2))"
        );
        assert_eq!(
            param(&col("datetime", Kind::Timestamp(false))),
            "CAST(? AS DATETIME(6))"
        );
        assert_eq!(param(&col("varchar(9)", Kind::Text)), "?");
        assert_eq!(quote("we`ird"), "`we``ird`");
    }
}
