//! From object keys (with their formats and schemas) to datasets: table roots, partition
//! columns (Hive `key=value` or `partition_N`) and merged schemas. Pure: no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Schema, SchemaRef};

use crate::crawl::model::Format;
use crate::crawl::schema::{Widening, merge, similarity};
pub use crate::lake::catalog::PartitionColumn;

/// Value of a Hive partition that holds nulls.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// One classified object, as layout sees it.
#[derive(Clone, Debug)]
pub struct LayoutObject {
    /// Key relative to the target prefix (`orders/year=2024/part-0.parquet`).
    pub rel: String,
    pub format: Format,
    pub schema: SchemaRef,
}

/// How folders map to tables (`spec.grouping`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LayoutOptions {
    pub table_level: Option<usize>,
    pub combine_compatible_schemas: bool,
}

/// A table-to-be.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Folder segments below the prefix that make the table root.
    pub root: Vec<String>,
    /// Name before sanitising and the table prefix.
    pub name: String,
    pub format: Format,
    /// Merged data schema, without partition columns.
    pub schema: Schema,
    pub partitions: Vec<PartitionColumn>,
    /// Object index in the input and its raw partition values (None: null).
    pub objects: Vec<(usize, Vec<Option<String>>)>,
}

#[derive(Default)]
struct Node {
    files: Vec<usize>,
    children: BTreeMap<String, Node>,
}

#[derive(Clone, Debug)]
struct Cand {
    root: Vec<String>,
    format: Format,
    schema: Schema,
    /// Hive key of each partition level (None: unnamed).
    levels: Vec<Option<String>>,
    objects: Vec<(usize, Vec<String>)>,
}

fn hive(seg: &str) -> Option<(&str, &str)> {
    seg.split_once('=').filter(|(k, _)| !k.is_empty())
}

/// Similarity required between schemas to share a table.
#[derive(Clone, Copy)]
enum Need {
    /// Files in one folder or Hive partitions: any overlap.
    Overlap,
    /// Sibling plain folders: at least half of the columns.
    Half,
}

fn compatible(a: &Schema, b: &Schema, need: Need, combine: bool) -> Option<Schema> {
    let merged = merge(a, b, Widening::Iceberg).or_else(|| {
        // int/double mixes are fine within one dataset
        merge(a, b, Widening::Text).filter(|m| {
            m.fields().iter().all(|f| {
                let before = [a.field_with_name(f.name()), b.field_with_name(f.name())];
                !(f.data_type() == &DataType::Utf8
                    && before
                        .iter()
                        .flatten()
                        .any(|o| o.data_type() != &DataType::Utf8))
            })
        })
    })?;
    let sim = similarity(a, b);
    let ok = combine
        || match need {
            Need::Overlap => sim > 0.0 || a.fields().is_empty() || b.fields().is_empty(),
            Need::Half => sim >= 0.5,
        };
    ok.then_some(merged)
}

fn group_files(
    files: &[usize],
    root: &[String],
    objs: &[LayoutObject],
    opts: LayoutOptions,
) -> Vec<Cand> {
    let mut out: Vec<Cand> = Vec::new();
    for &i in files {
        let o = &objs[i];
        let slot = out.iter_mut().find_map(|c| {
            if c.format != o.format {
                return None;
            }
            compatible(
                &c.schema,
                &o.schema,
                Need::Overlap,
                opts.combine_compatible_schemas,
            )
            .map(|m| (c, m))
        });
        match slot {
            Some((c, merged)) => {
                c.schema = merged;
                c.objects.push((i, Vec::new()));
            }
            None => out.push(Cand {
                root: root.to_vec(),
                format: o.format,
                schema: o.schema.as_ref().clone(),
                levels: Vec::new(),
                objects: vec![(i, Vec::new())],
            }),
        }
    }
    out
}

fn collapse(node: &Node, path: &[String], objs: &[LayoutObject], opts: LayoutOptions) -> Vec<Cand> {
    let mut child_cands: Vec<(String, Vec<Cand>)> = Vec::new();
    for (seg, child) in &node.children {
        let mut p = path.to_vec();
        p.push(seg.clone());
        child_cands.push((seg.clone(), collapse(child, &p, objs, opts)));
    }
    let whole_children = !child_cands.is_empty()
        && node.files.is_empty()
        && child_cands.iter().all(|(seg, c)| {
            c.len() == 1 && c[0].root.len() == path.len() + 1 && c[0].root.last() == Some(seg)
        });
    if whole_children {
        let keys: Vec<Option<&str>> = child_cands
            .iter()
            .map(|(s, _)| hive(s).map(|(k, _)| k))
            .collect();
        let hive_key = match keys.first() {
            Some(Some(k)) if keys.iter().all(|x| *x == Some(*k)) => Some(k.to_string()),
            _ => None,
        };
        let need = if hive_key.is_some() {
            Need::Overlap
        } else {
            Need::Half
        };
        // one plain folder is a partition only when its name looks like a value (`2024`)
        let single_plain = hive_key.is_none()
            && child_cands.len() < 2
            && !child_cands[0].0.starts_with(|c: char| c.is_ascii_digit());
        let first = &child_cands[0].1[0];
        let mut merged = Some(first.schema.clone());
        for (_, c) in &child_cands[1..] {
            let c = &c[0];
            merged = merged.and_then(|m| {
                (c.format == first.format && c.levels == first.levels)
                    .then(|| compatible(&m, &c.schema, need, opts.combine_compatible_schemas))
                    .flatten()
            });
        }
        if let Some(schema) = merged.filter(|_| !single_plain) {
            let mut levels = vec![hive_key.clone()];
            levels.extend(first.levels.iter().cloned());
            let mut objects = Vec::new();
            for (seg, c) in &child_cands {
                let value = match (&hive_key, hive(seg)) {
                    (Some(_), Some((_, v))) => v.to_string(),
                    _ => seg.clone(),
                };
                for (i, vals) in &c[0].objects {
                    let mut v = vec![value.clone()];
                    v.extend(vals.iter().cloned());
                    objects.push((*i, v));
                }
            }
            return vec![Cand {
                root: path.to_vec(),
                format: first.format,
                schema,
                levels,
                objects,
            }];
        }
    }
    let mut out = group_files(&node.files, path, objs, opts);
    out.extend(child_cands.into_iter().flat_map(|(_, c)| c));
    out
}

/// Cands with a fixed table level: the first `level` folders are the root, the folders below
/// (down to the shallowest file of the table) are partitions.
fn fixed_level(objs: &[LayoutObject], level: usize, opts: LayoutOptions) -> Vec<Cand> {
    let mut roots: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for (i, o) in objs.iter().enumerate() {
        let segs: Vec<String> = o.rel.split('/').map(String::from).collect();
        let folders = &segs[..segs.len() - 1];
        let root = if folders.len() >= level {
            folders[..level].to_vec()
        } else {
            // a file above the table level is a table of its own, named after its stem
            let mut r = folders.to_vec();
            r.push(format!("\u{0}{}", stem(&segs[segs.len() - 1])));
            r
        };
        roots.entry(root).or_default().push(i);
    }
    let mut out = Vec::new();
    for (root, files) in roots {
        for mut cand in group_files(&files, &root, objs, opts) {
            let depth_of = |i: usize| {
                objs[i]
                    .rel
                    .split('/')
                    .count()
                    .saturating_sub(1 + root.len())
            };
            let depth = cand
                .objects
                .iter()
                .map(|(i, _)| depth_of(*i))
                .min()
                .unwrap_or(0);
            let mut levels: Vec<Option<String>> = Vec::new();
            for l in 0..depth {
                let segs: Vec<String> = cand
                    .objects
                    .iter()
                    .map(|(i, _)| {
                        objs[*i]
                            .rel
                            .split('/')
                            .nth(root.len() + l)
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                let key = segs
                    .first()
                    .and_then(|s| hive(s))
                    .map(|(k, _)| k.to_string());
                let all_same = key.as_ref().is_some_and(|k| {
                    segs.iter()
                        .all(|s| hive(s).map(|(x, _)| x) == Some(k.as_str()))
                });
                levels.push(if all_same { key } else { None });
            }
            for (i, vals) in cand.objects.iter_mut() {
                let segs: Vec<&str> = objs[*i].rel.split('/').collect();
                *vals = (0..depth)
                    .map(|l| {
                        let s = segs[root.len() + l];
                        match (&levels[l], hive(s)) {
                            (Some(_), Some((_, v))) => v.to_string(),
                            _ => s.to_string(),
                        }
                    })
                    .collect();
            }
            cand.levels = levels;
            out.push(cand);
        }
    }
    out
}

fn stem(file: &str) -> String {
    let base = crate::crawl::compression::strip_suffix(file);
    match base.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s.to_string(),
        _ => base.to_string(),
    }
}

/// Type of a partition column from its values: long, date, or string.
pub fn partition_type<'a>(values: impl Iterator<Item = &'a str> + Clone) -> DataType {
    let mut vals = values.filter(|v| *v != HIVE_NULL).peekable();
    if vals.peek().is_none() {
        return DataType::Utf8;
    }
    if vals.clone().all(|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if vals.all(|v| jiff::civil::Date::strptime("%Y-%m-%d", v).is_ok()) {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

/// Lowercase, `[a-z0-9_]`, not starting with a digit.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s = s.trim_matches('_').to_string();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s = format!("t_{s}");
    }
    s
}

/// Groups objects into datasets. `base_name` names a table rooted at the prefix itself.
pub fn group(objs: &[LayoutObject], opts: LayoutOptions, base_name: &str) -> Vec<Dataset> {
    let cands = match opts.table_level {
        Some(level) if level > 0 => fixed_level(objs, level, opts),
        _ => {
            let mut tree = Node::default();
            for (i, o) in objs.iter().enumerate() {
                let segs: Vec<&str> = o.rel.split('/').collect();
                let mut node = &mut tree;
                for s in &segs[..segs.len() - 1] {
                    node = node.children.entry((*s).to_string()).or_default();
                }
                node.files.push(i);
            }
            collapse(&tree, &[], objs, opts)
        }
    };
    // names: the root's last segment; collisions get the format, then a number
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    let base: Vec<String> = cands
        .iter()
        .map(|c| match c.root.last() {
            Some(s) => sanitize(s.trim_start_matches('\u{0}')),
            None => sanitize(base_name),
        })
        .collect();
    for b in &base {
        *by_name.entry(b.clone()).or_default() += 1;
    }
    let mut used: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (c, b) in cands.into_iter().zip(base) {
        let mut name = if by_name.get(&b).copied().unwrap_or(0) > 1 {
            format!("{b}_{}", c.format)
        } else {
            b
        };
        let plain = name.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{plain}_{n}");
            n += 1;
        }
        used.push(name.clone());
        out.push(finish(c, name));
    }
    out
}

fn finish(c: Cand, name: String) -> Dataset {
    let partitions: Vec<PartitionColumn> = c
        .levels
        .iter()
        .enumerate()
        .map(|(l, key)| PartitionColumn {
            name: key.clone().unwrap_or_else(|| format!("partition_{l}")),
            data_type: partition_type(c.objects.iter().map(|(_, v)| v[l].as_str())),
        })
        .collect();
    // a data column named like a partition column is the partition column
    let schema = Schema::new(
        c.schema
            .fields()
            .iter()
            .filter(|f| !partitions.iter().any(|p| &p.name == f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let root = c
        .root
        .into_iter()
        .filter(|s| !s.starts_with('\u{0}'))
        .collect();
    Dataset {
        root,
        name,
        format: c.format,
        schema,
        partitions,
        objects: c
            .objects
            .into_iter()
            .map(|(i, v)| {
                (
                    i,
                    v.into_iter()
                        .map(|x| (x != HIVE_NULL).then_some(x))
                        .collect(),
                )
            })
            .collect(),
    }
}

/// Helper for tests and callers: a schema ref from (name, type) pairs.
pub fn schema_of(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| arrow_schema::Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;

    fn obj(rel: &str, format: Format, fields: &[(&str, DataType)]) -> LayoutObject {
        LayoutObject {
            rel: rel.into(),
            format,
            schema: schema_of(fields),
        }
    }

    fn names(ds: &[Dataset]) -> Vec<String> {
        let mut n: Vec<String> = ds.iter().map(|d| d.name.clone()).collect();
        n.sort();
        n
    }

    #[test]
    fn hive_partitions_are_typed() {
        let f = [("id", Int64), ("v", Float64)];
        let objs = vec![
            obj("sales/year=2024/month=01/a.parquet", Format::Parquet, &f),
            obj("sales/year=2024/month=02/a.parquet", Format::Parquet, &f),
            obj("sales/year=2025/month=01/b.parquet", Format::Parquet, &f),
        ];
        let ds = group(&objs, LayoutOptions::default(), "root");
        assert_eq!(ds.len(), 1);
        let d = &ds[0];
        assert_eq!(d.name, "sales");
        assert_eq!(d.root, vec!["sales"]);
        assert_eq!(
            d.partitions,
            vec![
                PartitionColumn {
                    name: "year".into(),
                    data_type: Int64
                },
                PartitionColumn {
                    name: "month".into(),
                    data_type: Int64
                },
            ]
        );
        assert_eq!(
            d.objects[2].1,
            vec![Some("2025".to_string()), Some("01".to_string())]
        );
    }

    #[test]
    fn unnamed_partitions_and_separate_tables() {
        let objs = vec![
            obj(
                "logs/2024/01/a.json",
                Format::Json,
                &[("msg", Utf8), ("lvl", Utf8)],
            ),
            obj(
                "logs/2024/02/a.json",
                Format::Json,
                &[("msg", Utf8), ("lvl", Utf8)],
            ),
            obj("users/u.csv", Format::Csv, &[("id", Int64), ("name", Utf8)]),
        ];
        let ds = group(&objs, LayoutOptions::default(), "root");
        assert_eq!(names(&ds), vec!["logs", "users"]);
        let logs = ds.iter().find(|d| d.name == "logs").expect("logs");
        assert_eq!(logs.partitions.len(), 2);
        assert_eq!(logs.partitions[0].name, "partition_0");
        assert_eq!(logs.partitions[1].name, "partition_1");
    }

    #[test]
    fn mixed_schemas_under_one_prefix_split() {
        let objs = vec![
            obj("mixed/a.csv", Format::Csv, &[("id", Int64), ("name", Utf8)]),
            obj(
                "mixed/b.csv",
                Format::Csv,
                &[("flag", Boolean), ("when", Date32)],
            ),
            obj("mixed/c.json", Format::Json, &[("id", Int64)]),
            obj(
                "mixed/d.csv",
                Format::Csv,
                &[("id", Int64), ("name", Utf8), ("extra", Float64)],
            ),
        ];
        let ds = group(&objs, LayoutOptions::default(), "root");
        assert_eq!(names(&ds), vec!["mixed_csv", "mixed_csv_2", "mixed_json"]);
        let first = ds
            .iter()
            .find(|d| d.name == "mixed_csv")
            .expect("csv table");
        assert_eq!(
            first.schema.fields().len(),
            3,
            "a.csv and d.csv share a table"
        );
        let combined = group(
            &objs,
            LayoutOptions {
                combine_compatible_schemas: true,
                ..Default::default()
            },
            "root",
        );
        assert_eq!(names(&combined), vec!["mixed_csv", "mixed_json"]);
    }

    #[test]
    fn incompatible_siblings_stay_apart_and_compatible_ones_merge() {
        let a = [("id", Int64), ("name", Utf8)];
        let objs = vec![
            obj("orders/a.csv", Format::Csv, &a),
            obj(
                "customers/c.csv",
                Format::Csv,
                &[("cid", Int64), ("email", Utf8), ("vip", Boolean)],
            ),
        ];
        assert_eq!(
            names(&group(&objs, LayoutOptions::default(), "root")),
            vec!["customers", "orders"]
        );
        let objs = vec![
            obj("2024/a.csv", Format::Csv, &a),
            obj("2025/a.csv", Format::Csv, &a),
        ];
        let ds = group(&objs, LayoutOptions::default(), "events");
        assert_eq!(names(&ds), vec!["events"]);
        assert_eq!(ds[0].partitions[0].name, "partition_0");
    }

    #[test]
    fn table_level_fixes_the_root() {
        let f = [("id", Int64)];
        let objs = vec![
            obj("db/orders/2024/a.csv", Format::Csv, &f),
            obj("db/orders/2025/b.csv", Format::Csv, &f),
            obj("db/items/x.csv", Format::Csv, &f),
            obj("top.csv", Format::Csv, &f),
        ];
        let ds = group(
            &objs,
            LayoutOptions {
                table_level: Some(2),
                ..Default::default()
            },
            "root",
        );
        assert_eq!(names(&ds), vec!["items", "orders", "top"]);
        let orders = ds.iter().find(|d| d.name == "orders").expect("orders");
        assert_eq!(orders.root, vec!["db", "orders"]);
        assert_eq!(orders.partitions[0].name, "partition_0");
        let top = ds.iter().find(|d| d.name == "top").expect("top");
        assert!(top.root.is_empty());
    }

    #[test]
    fn partition_types_and_names() {
        assert_eq!(partition_type(["1", "22"].into_iter()), Int64);
        assert_eq!(partition_type(["2024-01-02"].into_iter()), Date32);
        assert_eq!(partition_type(["eu", "1"].into_iter()), Utf8);
        assert_eq!(sanitize("My-Table.v2"), "my_table_v2");
        assert_eq!(sanitize("2024"), "t_2024");
    }
}
