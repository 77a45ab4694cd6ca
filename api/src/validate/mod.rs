//! Pure validators for what a CRD schema cannot check: cron expressions, time zones, durations,
//! glob patterns, step DAGs and blueprint templates. Reconcilers call these in their `validate`
//! stage and report failures as `Ready=False` with reason `InvalidSpec`.

mod blueprint;
mod crawler;
mod dag;
mod datalake;
mod schedule;
mod workflow;

use std::fmt;

pub use blueprint::{
    Params, render_blueprint, resolve_parameters, sample_parameters, validate_blueprint,
};
pub use crawler::validate_crawler;
pub use dag::topological_order;
pub use datalake::validate_datalake;
pub use schedule::{next_fire, parse_cron, parse_duration, parse_time_zone};
pub use workflow::validate_workflow;

/// One problem with a spec: where (a field path such as `spec.steps[2].dependsOn`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path from the object root.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All problems found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<FieldError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// Collects field errors while a validator walks a spec.
#[derive(Debug, Default)]
pub(crate) struct Collector(Vec<FieldError>);

impl Collector {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn check<E: fmt::Display>(&mut self, path: impl Into<String>, r: Result<(), E>) {
        if let Err(e) = r {
            self.add(path, e.to_string());
        }
    }

    pub(crate) fn finish(self) -> Result<(), SpecErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(self.0))
        }
    }
}
