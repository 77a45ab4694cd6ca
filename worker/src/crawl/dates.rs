//! Dates and timestamps in the common shapes that are not ISO 8601 (arrow's readers type ISO
//! already): `2012/01/01`, `2010/01/01 00:00`, `2010/01/01 00:00:00`, `Jan 1 2000`,
//! `01/31/2015`. Parsing is jiff's `strptime` (a maintained parser); a text column whose every
//! sampled value has one shape becomes a date or timestamp column, the shape recorded in the
//! field's metadata ([`FORMAT_KEY`]) so ingestion parses with it and the table's properties
//! say it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Date32Array, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, TimeUnit};
use jiff::civil::{Date, DateTime};

/// Field metadata key holding the `strptime` format of a date or timestamp column.
pub const FORMAT_KEY: &str = "lakeform.format";

/// A shape: the `strptime` format and whether it carries a time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    format: &'static str,
    time: bool,
}

/// The shapes tried, most specific first.
const SHAPES: [Shape; 6] = [
    Shape {
        format: "%Y/%m/%d %H:%M:%S",
        time: true,
    },
    Shape {
        format: "%Y/%m/%d %H:%M",
        time: true,
    },
    Shape {
        format: "%Y/%m/%d",
        time: false,
    },
    Shape {
        format: "%b %d %Y",
        time: false,
    },
    Shape {
        format: "%m/%d/%Y",
        time: false,
    },
    Shape {
        format: "%m/%d/%Y %H:%M:%S",
        time: true,
    },
];

fn parses(shape: &Shape, v: &str) -> bool {
    match shape.time {
        true => DateTime::strptime(shape.format, v).is_ok(),
        false => Date::strptime(shape.format, v).is_ok(),
    }
}

/// The type and format of a text column whose values (nulls and empty values left out) all
/// have one shape; `None` when they do not, or there are none.
pub fn infer<'v>(values: impl IntoIterator<Item = &'v str>) -> Option<(DataType, &'static str)> {
    let mut candidates: Vec<Shape> = SHAPES.to_vec();
    let mut seen = false;
    for v in values {
        let v = v.trim();
        if crate::crawl::infer::csv::is_null_token(v) {
            continue;
        }
        seen = true;
        candidates.retain(|s| parses(s, v));
        if candidates.is_empty() {
            return None;
        }
    }
    let shape = candidates.first().filter(|_| seen)?;
    let dt = match shape.time {
        true => DataType::Timestamp(TimeUnit::Microsecond, None),
        false => DataType::Date32,
    };
    Some((dt, shape.format))
}

/// `field` typed as a date or timestamp of `format`.
pub fn with_format(field: &Field, dt: DataType, format: &str) -> Field {
    let mut metadata: HashMap<String, String> = field.metadata().clone();
    metadata.insert(FORMAT_KEY.to_string(), format.to_string());
    Field::new(field.name(), dt, true).with_metadata(metadata)
}

/// Text values (nulls already applied) as `field`'s type: parsed with its recorded format when
/// it has one, else with arrow's cast, which must not turn any value into a null.
pub fn cast_text(strings: &StringArray, field: &Field) -> Result<ArrayRef, String> {
    let Some(format) = field.metadata().get(FORMAT_KEY) else {
        let options = arrow_cast::CastOptions {
            safe: false,
            ..Default::default()
        };
        return arrow_cast::cast_with_options(strings, field.data_type(), &options)
            .map_err(|e| e.to_string());
    };
    match field.data_type() {
        DataType::Date32 => {
            let parse = |v: &str| Date::strptime(format, v).ok().and_then(epoch_days);
            Ok(Arc::new(Date32Array::from(parse_all(
                strings, field, parse,
            )?)))
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            let parse = |v: &str| DateTime::strptime(format, v).ok().and_then(epoch_micros);
            Ok(Arc::new(TimestampMicrosecondArray::from(parse_all(
                strings, field, parse,
            )?)))
        }
        other => Err(format!("a recorded format on a {other} column")),
    }
}

/// Every value of `strings` parsed (trimmed); the first that does not parse is the error.
fn parse_all<T>(
    strings: &StringArray,
    field: &Field,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<Option<T>>, String> {
    let format = field.metadata().get(FORMAT_KEY).map_or("", String::as_str);
    strings
        .iter()
        .map(|v| {
            v.map(|v| {
                parse(v.trim()).ok_or_else(|| {
                    format!("{v:?} is not a {} of shape {format}", field.data_type())
                })
            })
            .transpose()
        })
        .collect()
}

fn epoch_days(d: Date) -> Option<i32> {
    let span = Date::constant(1970, 1, 1).until(d).ok()?;
    Some(span.get_days())
}

fn epoch_micros(t: DateTime) -> Option<i64> {
    let ts = t.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn common_shapes_are_recognised() {
        type Case<'a> = (&'a [&'a str], Option<(DataType, &'a str)>);
        let cases: [Case<'_>; 6] = [
            (
                &["2012/01/01", "2012/12/31", "NA"],
                Some((DataType::Date32, "%Y/%m/%d")),
            ),
            (
                &["2010/01/01 00:00", "2010/01/01 13:45"],
                Some((
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    "%Y/%m/%d %H:%M",
                )),
            ),
            (
                &["Jan 1 2000", "Feb 29 2000"],
                Some((DataType::Date32, "%b %d %Y")),
            ),
            (
                &["01/31/2015", "12/01/2014"],
                Some((DataType::Date32, "%m/%d/%Y")),
            ),
            (&["2012/01/01", "soon"], None),
            (&["NA", ""], None),
        ];
        for (values, want) in cases {
            assert_eq!(infer(values.iter().copied()), want, "{values:?}");
        }
    }

    #[test]
    fn values_parse_with_the_recorded_shape() {
        let field = with_format(
            &Field::new("d", DataType::Utf8, true),
            DataType::Date32,
            "%b %d %Y",
        );
        let strings = StringArray::from(vec![Some("Jan 1 1970"), None, Some("Jan 2 1970")]);
        let out = cast_text(&strings, &field).expect("dates");
        let days = out.as_any().downcast_ref::<Date32Array>().expect("date32");
        assert_eq!(days.iter().collect::<Vec<_>>(), [Some(0), None, Some(1)]);
        let strings = StringArray::from(vec![Some("Jan 1 1970"), Some("later")]);
        let err = cast_text(&strings, &field).expect_err("not a date");
        assert!(err.contains("\"later\""), "{err}");
        let ts = with_format(
            &Field::new("t", DataType::Utf8, true),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            "%Y/%m/%d %H:%M",
        );
        let out = cast_text(&StringArray::from(vec!["1970/01/01 00:01"]), &ts).expect("ts");
        let micros = out
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("micros");
        assert_eq!(micros.value(0), 60_000_000);
    }

    #[test]
    fn without_a_format_arrow_casts_strictly() {
        let field = Field::new("n", DataType::Float64, true);
        let out = cast_text(&StringArray::from(vec![Some("1.5"), None]), &field).expect("cast");
        assert_eq!(out.null_count(), 1);
        assert!(cast_text(&StringArray::from(vec!["abc"]), &field).is_err());
    }
}
