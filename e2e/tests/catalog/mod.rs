//! DataLake catalog stage against a real Iceberg REST catalog (issue: DataLake controller,
//! part 2). `e2e/run catalog` selects these.

mod managed;
mod namespaces;
