//! PostgreSQL sources: tables, their columns and primary keys from the system catalogs, and
//! rows read as Arrow batches. Each column is selected as a type the wire protocol gives us
//! exactly (dates as day numbers, timestamps as epoch microseconds, numerics as text parsed
//! into decimals), so no value is rounded or reinterpreted on the way.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch};
use arrow_schema::SchemaRef;
use lakeform_api::workflow::BookmarkOrder;
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row, Transaction};

use super::source::{
    CONNECT_TIMEOUT, Column, ConsistentRead, Kind, QUERY_TIMEOUT, Range, Rows, SourceTable,
    bound_order, drain, text_to_decimal, timed,
};
use crate::lake::schema::UTC;
use crate::step::error::StepError;
use crate::step::merge::quote;

/// `"schema"."table"`.
fn qualified(table: &SourceTable) -> String {
    format!("{}.{}", quote(&table.schema), quote(&table.name))
}

/// The kind of a column from its type name and numeric precision/scale.
pub fn kind_of(type_name: &str, precision: Option<i32>, scale: Option<i32>) -> Kind {
    match type_name {
        "bool" => Kind::Bool,
        "int2" | "int4" => Kind::Int32,
        "int8" => Kind::Int64,
        "float4" => Kind::Float32,
        "float8" => Kind::Float64,
        "numeric" => match (precision, scale) {
            (Some(p), Some(s)) if (1..=38).contains(&p) && (0..=p).contains(&s) => {
                Kind::Decimal(p as u8, s as i8)
            }
            // unconstrained numeric: any precision; text keeps every digit
            _ => Kind::Text,
        },
        "date" => Kind::Date,
        "timestamp" => Kind::Timestamp(false),
        "timestamptz" => Kind::Timestamp(true),
        "bytea" => Kind::Bytes,
        _ => Kind::Text,
    }
}

/// The select expression of a column.
fn select_expr(c: &Column) -> String {
    let q = quote(&c.name);
    match c.kind {
        Kind::Bool | Kind::Int64 | Kind::Float32 | Kind::Float64 | Kind::Bytes => q,
        Kind::Int32 => format!("{q}::int4"),
        Kind::Decimal(..) | Kind::Text => format!("{q}::text"),
        Kind::Date => format!("({q} - DATE '1970-01-01')"),
        Kind::Timestamp(_) => format!("(EXTRACT(EPOCH FROM {q}) * 1000000)::int8"),
    }
}

/// Connects within [`CONNECT_TIMEOUT`] (the connection runs on its own task until the
/// client is dropped).
pub async fn connect(url: &str) -> Result<Client, StepError> {
    let (client, connection) = timed("connecting", CONNECT_TIMEOUT, async {
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(StepError::source("connecting"))
    })
    .await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "source database connection ended");
        }
    });
    Ok(client)
}

/// A read-only, repeatable-read transaction: one consistent view of the database.
pub async fn begin(client: &mut Client) -> Result<Transaction<'_>, StepError> {
    let what = "starting a read transaction";
    timed(what, QUERY_TIMEOUT, async {
        client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(StepError::source(what))
    })
    .await
}

/// `client.query(sql, params)` within [`QUERY_TIMEOUT`].
async fn query(
    client: &Client,
    what: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StepError> {
    timed(what, QUERY_TIMEOUT, async {
        client
            .query(sql, params)
            .await
            .map_err(StepError::source(what))
    })
    .await
}

/// Every ordinary and partitioned table outside the system schemas, as
/// `(database, schema, table)`.
pub async fn tables(client: &Client) -> Result<Vec<(String, String, String)>, StepError> {
    let rows = query(
        client,
        "listing tables",
        "SELECT current_database()::text, n.nspname::text, c.relname::text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%'
          ORDER BY 2, 3",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Columns and primary key of one table.
pub async fn describe(
    client: &Client,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<SourceTable, StepError> {
    let qualified = format!("{}.{}", quote(schema), quote(name));
    let what = format!("describing {schema}.{name}");
    let rows = query(
        client,
        &what,
        "SELECT a.attname::text, t.typname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                    CASE WHEN t.typname = 'numeric' AND a.atttypmod >= 4
                         THEN ((a.atttypmod - 4) >> 16) & 65535 END,
                    CASE WHEN t.typname = 'numeric' AND a.atttypmod >= 4
                         THEN (a.atttypmod - 4) & 65535 END
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
        &[&qualified],
    )
    .await?;
    let columns = rows
        .iter()
        .map(|r| {
            let type_name: String = r.get(1);
            Column {
                name: r.get(0),
                sql_type: r.get(2),
                kind: kind_of(&type_name, r.get(3), r.get(4)),
            }
        })
        .collect();
    let pk = query(
        client,
        &what,
        "SELECT a.attname::text
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = $1::text::regclass AND i.indisprimary
              ORDER BY array_position(i.indkey::int2[], a.attnum)",
        &[&qualified],
    )
    .await?;
    Ok(SourceTable {
        database: database.to_string(),
        schema: schema.to_string(),
        name: name.to_string(),
        columns,
        primary_key: pk.iter().map(|r| r.get(0)).collect(),
    })
}

impl ConsistentRead for Transaction<'_> {
    async fn bound(
        &mut self,
        table: &SourceTable,
        columns: &[&Column],
        order: BookmarkOrder,
    ) -> Result<Option<Vec<String>>, StepError> {
        let text = columns
            .iter()
            .map(|c| format!("{}::text", quote(&c.name)))
            .collect::<Vec<_>>();
        let not_null = columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote(&c.name)))
            .collect::<Vec<_>>();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1",
            text.join(", "),
            qualified(table),
            not_null.join(" AND "),
            // qualified: a bare name would sort the `::text` output column of that name
            bound_order(columns, order, |c| format!(
                "{}.{}",
                qualified(table),
                quote(c)
            ))
        );
        let what = format!("bookmark of {}", table.display());
        let rows = query(self.client(), &what, &sql, &[]).await?;
        Ok(rows
            .first()
            .map(|r| (0..columns.len()).map(|i| r.get(i)).collect()))
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
            .map(select_expr)
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {list} FROM {}", qualified(table));
        let mut params: Vec<String> = Vec::new();
        if let Some(range) = range {
            let (cond, values) =
                range.condition(quote, |c, n| format!("${}::text::{}", n + 1, c.sql_type));
            sql.push_str(&format!(" WHERE {cond}"));
            params = values;
        }
        let what = format!("reading {}", table.display());
        let stream = timed(&what, QUERY_TIMEOUT, async {
            self.query_raw(&sql, params.iter())
                .await
                .map_err(StepError::source(what.as_str()))
        })
        .await?;
        let schema = table.arrow_schema();
        drain(stream, &what, |rows| to_batch(table, &schema, rows), out).await
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

/// Value `i` of a row, as `T` (`None` for NULL).
fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<Option<T>, String> {
    r.try_get::<_, Option<T>>(i).map_err(|e| e.to_string())
}

/// Column `i` of `rows` as a primitive array of `P`, read as its native type.
fn primitive<'a, P>(rows: &'a [Row], i: usize) -> Result<PrimitiveArray<P>, String>
where
    P: ArrowPrimitiveType,
    P::Native: FromSql<'a>,
{
    let mut b = PrimitiveBuilder::<P>::with_capacity(rows.len());
    for r in rows {
        b.append_option(get::<P::Native>(r, i)?);
    }
    Ok(b.finish())
}

/// Column `i` of `rows` as the Arrow array of `c`'s kind.
fn column(c: &Column, i: usize, rows: &[Row]) -> Result<ArrayRef, String> {
    let n = rows.len();
    Ok(match c.kind {
        Kind::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for r in rows {
                b.append_option(get::<bool>(r, i)?);
            }
            Arc::new(b.finish())
        }
        Kind::Int32 => Arc::new(primitive::<Int32Type>(rows, i)?),
        Kind::Int64 => Arc::new(primitive::<Int64Type>(rows, i)?),
        Kind::Float32 => Arc::new(primitive::<Float32Type>(rows, i)?),
        Kind::Float64 => Arc::new(primitive::<Float64Type>(rows, i)?),
        Kind::Date => Arc::new(primitive::<Date32Type>(rows, i)?),
        Kind::Timestamp(tz) => Arc::new(
            primitive::<TimestampMicrosecondType>(rows, i)?.with_timezone_opt(tz.then_some(UTC)),
        ),
        Kind::Bytes => {
            let mut b = BinaryBuilder::with_capacity(n, n * 16);
            for r in rows {
                b.append_option(get::<&[u8]>(r, i)?);
            }
            Arc::new(b.finish())
        }
        Kind::Text | Kind::Decimal(..) => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for r in rows {
                b.append_option(get::<&str>(r, i)?);
            }
            let text: ArrayRef = Arc::new(b.finish());
            match c.kind {
                Kind::Decimal(..) => text_to_decimal(text, c.kind)?,
                _ => text,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, TimeUnit};

    use super::*;
    use crate::step::extract::source::arrow_type;

    #[test]
    fn kinds_keep_values_exact() {
        assert_eq!(kind_of("int2", None, None), Kind::Int32);
        assert_eq!(kind_of("numeric", Some(12), Some(2)), Kind::Decimal(12, 2));
        // more digits than a decimal128 holds, or no declared precision: text
        assert_eq!(kind_of("numeric", Some(60), Some(2)), Kind::Text);
        assert_eq!(kind_of("numeric", None, None), Kind::Text);
        assert_eq!(kind_of("timestamptz", None, None), Kind::Timestamp(true));
        assert_eq!(kind_of("uuid", None, None), Kind::Text);
        assert_eq!(kind_of("jsonb", None, None), Kind::Text);
    }

    #[test]
    fn select_expressions_by_kind() {
        let col = |name: &str, kind| Column {
            name: name.into(),
            sql_type: String::new(),
            kind,
        };
        assert_eq!(
            select_expr(&col("d", Kind::Date)),
            "(\"d\" - DATE '1970-01-01')"
        );
        assert_eq!(
            select_expr(&col("at", Kind::Timestamp(true))),
            "(EXTRACT(EPOCH FROM \"at\") * 1000000)::int8"
        );
        assert_eq!(
            select_expr(&col("we\"ird", Kind::Text)),
            "\"we\"\"ird\"::text"
        );
        assert_eq!(
            arrow_type(Kind::Timestamp(true)),
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
    }
}
