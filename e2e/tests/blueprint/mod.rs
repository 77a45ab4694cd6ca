//! Blueprints: an instance's lifecycle and refusals against the real API server (`instances`),
//! and the four built-in blueprints running end to end through the real Job controller
//! (`builtins`). `e2e/run blueprint` runs them.

mod builtins;
mod common;
mod instances;
