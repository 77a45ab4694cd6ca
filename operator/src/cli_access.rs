//! `lakeform access NS/LAKE`: who may do what on a lake, in one table — every Grant of the lake
//! as a line (principal, resource, permissions, columns, row filter) with where it is enforced,
//! and the admin user that Trino's rules always allow once the lake has Grants.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use kube::Api;
use kube::api::ListParams;
use lakeform_api::common::find_condition;
use lakeform_api::grant::{Grant, PrincipalKind};

use crate::desired::trino_access::ADMIN_USER;

/// Arguments of `lakeform access`.
#[derive(clap::Args, Debug)]
pub struct AccessArgs {
    /// The DataLake, as `<namespace>/<name>`.
    pub lake: String,
    /// Path to a kubeconfig (default: in-cluster or `$KUBECONFIG`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

const HEADER: [&str; 7] = [
    "PRINCIPAL",
    "RESOURCE",
    "PERMISSIONS",
    "COLUMNS",
    "ROWS",
    "ENFORCED",
    "GRANT",
];

/// Print the lake's effective permissions, one line per Grant, tab-separated.
pub async fn run(args: &AccessArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (ns, name) = crate::cli::split_ref("DataLake", &args.lake)?;
    let client = crate::cli::kube_client(args.kubeconfig.as_ref()).await?;
    let grants: Vec<Grant> = Api::<Grant>::namespaced(client, ns)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing the Grants in {ns}"))?
        .items
        .into_iter()
        .filter(|g| g.spec.lake_ref.name == name)
        .collect();
    for line in lines(&grants) {
        writeln!(out, "{}", line.join("\t"))?;
    }
    Ok(())
}

/// The table: a header, the admin line when there are Grants, then one line per Grant sorted
/// by principal and resource. Without Grants: the header and one line saying all is allowed.
pub fn lines(grants: &[Grant]) -> Vec<Vec<String>> {
    let mut out = vec![HEADER.iter().map(|h| h.to_string()).collect()];
    let admin = |who: &str, what: &str| {
        let cells = [who, "*", "ALL", "all", "all", what, "-"];
        cells.iter().map(|c| c.to_string()).collect::<Vec<_>>()
    };
    if grants.is_empty() {
        out.push(admin("*", "no Grants: Trino allows everything"));
        return out;
    }
    out.push(admin(&format!("User:{ADMIN_USER}"), "Trino (admin)"));
    let mut rows: Vec<Vec<String>> = grants.iter().map(line).collect();
    rows.sort();
    out.extend(rows);
    out
}

/// One Grant as a line.
fn line(g: &Grant) -> Vec<String> {
    let s = &g.spec;
    let p = &s.principal;
    let principal = match (p.kind, &p.namespace) {
        (PrincipalKind::ServiceAccount, Some(ns)) => format!("ServiceAccount:{ns}/{}", p.name),
        (kind, _) => format!("{kind:?}:{}", p.name),
    };
    let r = &s.resource;
    let resource = match (&r.database, &r.table, &r.data_location) {
        (Some(db), Some(t), _) => format!("{db}.{t}"),
        (Some(db), None, _) => format!("{db}.*"),
        (None, _, Some(l)) => format!("zone {}/{}", l.zone, l.prefix),
        _ => "-".into(),
    };
    let mut permissions: Vec<String> = s
        .permissions
        .iter()
        .map(|p| {
            serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    if s.grantable {
        permissions.push("(grantable)".into());
    }
    let columns = match r.columns.as_ref() {
        Some(c) if c.include.is_some() => c.include.clone().unwrap_or_default().join(","),
        Some(c) => format!(
            "all but {}",
            c.exclude.clone().unwrap_or_default().join(",")
        ),
        None => "all".into(),
    };
    let rows = r.row_filter.clone().unwrap_or_else(|| "all".into());
    vec![
        principal,
        resource,
        permissions.join(","),
        columns,
        rows,
        enforced(g),
        g.metadata.name.clone().unwrap_or_default(),
    ]
}

/// Where the Grant is enforced, or why it is not (its `Ready` reason).
fn enforced(g: &Grant) -> String {
    let status = g.status.clone().unwrap_or_default();
    match (
        status.enforced_by,
        find_condition(&status.conditions, "Ready"),
    ) {
        (Some(by), _) => by,
        (None, Some(c)) => format!("no ({})", c.reason),
        (None, None) => "not yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(name: &str, body: &str) -> Grant {
        let yaml = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Grant\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  lakeRef: {{name: sales}}\n{body}"
        );
        serde_yaml::from_str(&yaml).expect("grant")
    }

    #[test]
    fn one_line_per_grant_after_the_admin() {
        let mut alice = grant(
            "alice-orders",
            "  principal: {kind: User, name: alice}\n  resource: {database: sales, table: orders, columns: {include: [id, amount]}, rowFilter: \"country = 'DE'\"}\n  permissions: [SELECT]\n  grantable: true\n",
        );
        alice.status = Some(
            serde_json::from_value(serde_json::json!({"enforcedBy": "Trino"})).expect("status"),
        );
        let bob = grant(
            "bob-raw",
            "  principal: {kind: ServiceAccount, name: loader, namespace: etl}\n  resource: {dataLocation: {zone: raw, prefix: in/}}\n  permissions: [SELECT, INSERT]\n",
        );
        let lines = lines(&[bob, alice]);
        assert_eq!(lines[0][0], "PRINCIPAL");
        assert_eq!(lines[1][0], "User:lakeform");
        assert_eq!(
            lines[2],
            [
                "ServiceAccount:etl/loader",
                "zone raw/in/",
                "SELECT,INSERT",
                "all",
                "all",
                "not yet",
                "bob-raw"
            ]
        );
        assert_eq!(
            lines[3],
            [
                "User:alice",
                "sales.orders",
                "SELECT,(grantable)",
                "id,amount",
                "country = 'DE'",
                "Trino",
                "alice-orders"
            ]
        );
    }

    #[test]
    fn no_grants_say_everything_is_allowed() {
        let lines = lines(&[]);
        assert_eq!(lines.len(), 2);
        assert!(lines[1][5].contains("allows everything"));
    }
}
