//! lakeform data plane (crawler, workflow steps).
