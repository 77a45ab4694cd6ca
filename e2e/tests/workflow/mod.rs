//! Workflows and WorkflowRuns (issue 9): the DAG engine with crawl, container, extract, sql and
//! spark steps; on-demand, cron, event and afterWorkflow triggers; bookmarks — against the real
//! API server, Job and garbage collector controllers, the real node, MinIO, PostgreSQL, MariaDB and the
//! REST catalog, with the real operator.
//! `e2e/run workflow` selects these.

mod chain;
pub mod common;
mod dag;
mod events;
pub(crate) mod extract_mysql;
pub(crate) mod extract_sql;
mod forbid;
mod retry_resume;
mod schedule;
mod spark;
mod sql_modes;
