//! Workflows and WorkflowRuns (issue 9, first part: the DAG engine with crawl and container
//! steps; on-demand, cron and afterWorkflow triggers) against the real API server, Job and
//! garbage collector controllers, the pod runner, MinIO and the REST catalog, with the real
//! operator.
//! `e2e/run workflow` selects these.

mod chain;
mod common;
mod dag;
mod retry_resume;
mod schedule;
