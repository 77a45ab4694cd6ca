//! Schema inference per format, over bytes (no I/O here).

pub mod avro;
pub mod csv;
pub mod document;
pub mod json;
pub mod log;
pub mod parquet;
