//! Grants compiled into Trino's file-based access control
//! (<https://trino.io/docs/478/security/file-system-access-control.html>): the coordinator reads
//! `rules.json` from the ConfigMap `<lake>-trino-access`, mounted as a directory (no `subPath`)
//! so that the kubelet replaces the file in place, and re-reads it every
//! [`REFRESH_SECONDS`] (`security.refresh-period`): a Grant takes effect without a restart.
//!
//! - A lake with no Grants allows everything (what Trino does without access control), so
//!   access control can always be on and the first Grant needs no restart either.
//! - With Grants, the user [`ADMIN_USER`] (what `lakeform query` sends by default) may do
//!   everything; every other user gets exactly what its Grants say. Trino uses the **first**
//!   matching rule: table-specific rules come before database-wide ones, and a newer Grant of
//!   the same principal on the same table or database is refused (`Conflict`).
//! - Column filters: `exclude` denies those columns; `include` denies every other column of the
//!   table as the catalog knows it now ([`TableColumns`]). Row filters become the rule's
//!   `filter`.
//! - Data-location Grants are not Trino's to enforce; they are reported as such.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use lakeform_api::datalake::DataLake;
use lakeform_api::grant::{Grant, Permission};
use serde_json::{Value, json};

use super::meta::owned_meta;
use super::trino::{COORDINATOR_COMPONENT, java_regex_literal};
use super::{identity, trino_auth};

/// The user with every privilege once a lake has Grants (`lakeform query`'s default user).
pub const ADMIN_USER: &str = "lakeform";
/// Where the coordinator mounts the rules ConfigMap.
pub const ACCESS_DIR: &str = "/etc/trino-access";
/// The rules file's name (the ConfigMap key).
pub const RULES_FILE: &str = "rules.json";
/// How often Trino re-reads the rules.
pub const REFRESH_SECONDS: u32 = 5;

/// Columns of the tables Grants name, by (database, table), as the catalog has them.
pub type TableColumns = BTreeMap<(String, String), Vec<String>>;

/// What became of one Grant in Trino's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Compiled into the rules.
    Enforced,
    /// Not compiled: a reason (CamelCase) and a message.
    Refused(&'static str, String),
    /// Not Trino's to enforce (a data location).
    NotApplicable,
}

/// Name of the rules ConfigMap.
pub fn config_map_name(lake: &DataLake) -> String {
    format!("{}-trino-access", lake.name_any())
}

/// The rules ConfigMap (part of the coordinator's component, so it is pruned with it).
pub fn config_map(lake: &DataLake, rules: &Value) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(lake, config_map_name(lake), COORDINATOR_COMPONENT),
        data: Some(BTreeMap::from([(
            RULES_FILE.to_string(),
            format!("{rules:#}"),
        )])),
        ..Default::default()
    }
}

/// `access-control.properties` lines of the coordinator.
pub fn properties() -> Vec<(&'static str, String)> {
    vec![
        ("access-control.name", "file".into()),
        ("security.config-file", format!("{ACCESS_DIR}/{RULES_FILE}")),
        ("security.refresh-period", format!("{REFRESH_SECONDS}s")),
    ]
}

/// Trino's rules for `grants` (the lake's, in any order) and what became of each, by name.
pub fn rules(grants: &[Grant], columns: &TableColumns) -> (Value, BTreeMap<String, Enforcement>) {
    let mut outcome = BTreeMap::new();
    if grants.is_empty() {
        return (allow_all(), outcome);
    }
    let mut sorted: Vec<&Grant> = grants.iter().collect();
    // Table-specific before database-wide (first match wins); among equals the oldest Grant
    // first (a newer duplicate is the one refused), then by name: stable output.
    sorted.sort_by_key(|g| {
        let created = g.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (g.spec.resource.table.is_none(), created, g.name_any())
    });
    let admin = json!({"user": regex_literal(ADMIN_USER)});
    let mut catalogs = vec![merge(&admin, json!({"allow": "all"}))];
    let mut schemas = vec![merge(&admin, json!({"owner": true}))];
    let mut tables = vec![merge(&admin, json!({"privileges": ALL_PRIVILEGES}))];
    let mut seen: BTreeMap<(String, String, Option<String>), String> = BTreeMap::new();
    for grant in sorted {
        let name = grant.name_any();
        let r = &grant.spec.resource;
        let Some(database) = r.database.clone() else {
            outcome.insert(name, Enforcement::NotApplicable);
            continue;
        };
        if trino_auth::login_name(&identity::principal_of(grant)).is_none() {
            let message = format!(
                "principal {} cannot log in to Trino: basic authentication carries no ':' in a user name, and lakeform, system/… and group/… are reserved",
                grant.spec.principal.name
            );
            outcome.insert(name, Enforcement::Refused("UnsupportedPrincipal", message));
            continue;
        }
        let who = principal(grant);
        let key = (who.to_string(), database.clone(), r.table.clone());
        if let Some(first) = seen.get(&key) {
            let message = format!(
                "Grant {first} already grants this principal {}: merge the permissions into one Grant",
                r.table
                    .as_deref()
                    .map_or("this database".into(), |t| format!(
                        "the table {database}.{t}"
                    ))
            );
            outcome.insert(name, Enforcement::Refused("Conflict", message));
            continue;
        }
        let table_rule = match table_rule(grant, &who, &database, columns) {
            Ok(rule) => rule,
            Err((reason, message)) => {
                outcome.insert(name, Enforcement::Refused(reason, message));
                continue;
            }
        };
        seen.insert(key, name.clone());
        let read_only = grant.spec.permissions.iter().all(|p| READS.contains(p));
        let access = if read_only { "read-only" } else { "all" };
        catalogs.push(merge(&who, json!({"allow": access})));
        let owner = grant.spec.permissions.iter().any(|p| OWNING.contains(p));
        schemas.push(merge(
            &who,
            json!({"schema": regex_literal(&database), "owner": owner && r.table.is_none()}),
        ));
        tables.push(table_rule);
        outcome.insert(name, Enforcement::Enforced);
    }
    let rules = json!({"catalogs": catalogs, "schemas": schemas, "tables": tables});
    (rules, outcome)
}

const ALL_PRIVILEGES: [&str; 6] = [
    "SELECT",
    "INSERT",
    "DELETE",
    "UPDATE",
    "OWNERSHIP",
    "GRANT_SELECT",
];
const READS: [Permission; 2] = [Permission::Select, Permission::Describe];
const OWNING: [Permission; 2] = [Permission::CreateTable, Permission::All];

/// The rules of a lake without Grants: everything allowed, as without access control.
fn allow_all() -> Value {
    json!({
        "catalogs": [{"allow": "all"}],
        "schemas": [{"owner": true}],
        "tables": [{"privileges": ALL_PRIVILEGES}],
    })
}

/// `{"user": …}`: the principal as Trino matches it (anchored regex): the Trino user of its
/// login (`trino_auth::trino_user`; a Group is its shared login `group/<name>`).
fn principal(grant: &Grant) -> Value {
    let p = identity::principal_of(grant);
    json!({"user": regex_literal(&trino_auth::trino_user(&p))})
}

/// The table rule of a database or table Grant: privileges, denied columns, row filter.
fn table_rule(
    grant: &Grant,
    who: &Value,
    database: &str,
    columns: &TableColumns,
) -> Result<Value, (&'static str, String)> {
    let r = &grant.spec.resource;
    let mut rule = merge(
        who,
        json!({"schema": regex_literal(database), "privileges": privileges(grant)}),
    );
    if let Some(table) = &r.table {
        rule["table"] = json!(regex_literal(table));
        let denied = denied_columns(grant, database, table, columns)?;
        if !denied.is_empty() {
            let cols: Vec<Value> = denied
                .iter()
                .map(|c| json!({"name": c, "allow": false}))
                .collect();
            rule["columns"] = json!(cols);
        }
        if let Some(filter) = &r.row_filter {
            rule["filter"] = json!(filter);
        }
    }
    Ok(rule)
}

/// Trino privileges of the Grant's permissions (`DESCRIBE` alone gives none: the table is only
/// visible).
fn privileges(grant: &Grant) -> Vec<&'static str> {
    let mut out = Vec::new();
    for p in &grant.spec.permissions {
        let add: &[&'static str] = match p {
            Permission::Select => &["SELECT"],
            Permission::Insert => &["INSERT"],
            Permission::Delete => &["DELETE", "UPDATE"],
            Permission::Alter | Permission::Drop => &["OWNERSHIP"],
            Permission::Describe | Permission::CreateTable => &[],
            Permission::All => &["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"],
        };
        out.extend_from_slice(add);
    }
    if grant.spec.grantable && out.contains(&"SELECT") {
        out.push("GRANT_SELECT");
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The columns a column filter hides: `exclude` as given; for `include`, every column of the
/// table (from the catalog) not included — which needs the table to exist.
fn denied_columns(
    grant: &Grant,
    database: &str,
    table: &str,
    columns: &TableColumns,
) -> Result<Vec<String>, (&'static str, String)> {
    let Some(filter) = &grant.spec.resource.columns else {
        return Ok(Vec::new());
    };
    if let Some(exclude) = &filter.exclude {
        return Ok(exclude.clone());
    }
    let include = filter.include.clone().unwrap_or_default();
    let Some(all) = columns.get(&(database.to_string(), table.to_string())) else {
        return Err((
            "TableNotFound",
            format!(
                "the table {database}.{table} is not in the catalog: its columns are needed to apply columns.include"
            ),
        ));
    };
    if let Some(missing) = include.iter().find(|c| !all.contains(c)) {
        return Err((
            "ColumnNotFound",
            format!(
                "the table {database}.{table} has no column {missing} (columns: {})",
                all.join(", ")
            ),
        ));
    }
    Ok(all
        .iter()
        .filter(|c| !include.contains(c))
        .cloned()
        .collect())
}

/// `base` with the fields of `extra` added.
fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}

/// An anchored Java regex matching exactly `s`.
fn regex_literal(s: &str) -> String {
    format!("^{}$", java_regex_literal(s))
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

    fn orders() -> TableColumns {
        TableColumns::from([(
            ("sales".into(), "orders".into()),
            vec![
                "id".into(),
                "country".into(),
                "amount".into(),
                "secret".into(),
            ],
        )])
    }

    #[test]
    fn no_grants_allow_everything() {
        let (rules, outcome) = rules(&[], &orders());
        assert_eq!(rules, allow_all());
        assert!(outcome.is_empty());
    }

    #[test]
    fn include_denies_the_other_columns_and_keeps_the_filter() {
        let g = grant(
            "alice-orders",
            "  principal: {kind: User, name: alice.b}\n  resource: {database: sales, table: orders, columns: {include: [id, country, amount]}, rowFilter: \"country = 'DE'\"}\n  permissions: [SELECT]\n",
        );
        let (rules, outcome) = rules(&[g], &orders());
        assert_eq!(outcome["alice-orders"], Enforcement::Enforced);
        let alice = &rules["tables"][1];
        assert_eq!(alice["user"], "^alice\\.b$");
        assert_eq!(alice["table"], "^orders$");
        assert_eq!(alice["privileges"], json!(["SELECT"]));
        assert_eq!(
            alice["columns"],
            json!([{"name": "secret", "allow": false}])
        );
        assert_eq!(alice["filter"], "country = 'DE'");
        assert_eq!(rules["catalogs"][1]["allow"], "read-only");
        assert_eq!(rules["tables"][0]["user"], "^lakeform$");
    }

    #[test]
    fn table_rules_come_first_and_duplicates_conflict() {
        let db = grant(
            "a-db",
            "  principal: {kind: Group, name: analysts}\n  resource: {database: sales}\n  permissions: [ALL]\n  grantable: true\n",
        );
        let t = grant(
            "z-table",
            "  principal: {kind: Group, name: analysts}\n  resource: {database: sales, table: orders}\n  permissions: [SELECT]\n",
        );
        let dup = grant(
            "b-db",
            "  principal: {kind: Group, name: analysts}\n  resource: {database: sales}\n  permissions: [SELECT]\n",
        );
        let (rules, outcome) = rules(&[db, t, dup], &orders());
        assert_eq!(rules["tables"][1]["table"], "^orders$");
        assert_eq!(
            rules["tables"][2]["privileges"],
            json!([
                "DELETE",
                "GRANT_SELECT",
                "INSERT",
                "OWNERSHIP",
                "SELECT",
                "UPDATE"
            ])
        );
        assert_eq!(rules["schemas"][2]["owner"], true);
        assert!(matches!(
            outcome["b-db"],
            Enforcement::Refused("Conflict", _)
        ));
    }

    #[test]
    fn include_needs_the_table_and_its_columns() {
        let missing = grant(
            "m",
            "  principal: {kind: User, name: bob}\n  resource: {database: sales, table: returns, columns: {include: [id]}}\n  permissions: [SELECT]\n",
        );
        let bad = grant(
            "c",
            "  principal: {kind: User, name: bob}\n  resource: {database: sales, table: orders, columns: {include: [nope]}}\n  permissions: [SELECT]\n",
        );
        let (_, outcome) = rules(&[missing, bad], &orders());
        assert!(matches!(
            outcome["m"],
            Enforcement::Refused("TableNotFound", _)
        ));
        assert!(matches!(
            outcome["c"],
            Enforcement::Refused("ColumnNotFound", _)
        ));
    }

    #[test]
    fn service_accounts_are_api_server_user_names_and_locations_are_not_trinos() {
        let sa = grant(
            "sa",
            "  principal: {kind: ServiceAccount, name: report}\n  resource: {database: sales}\n  permissions: [DESCRIBE]\n",
        );
        let loc = grant(
            "loc",
            "  principal: {kind: User, name: bob}\n  resource: {dataLocation: {zone: raw, prefix: orders/}}\n  permissions: [SELECT]\n",
        );
        let (rules, outcome) = rules(&[sa, loc], &orders());
        assert_eq!(
            rules["tables"][1]["user"],
            "^system:serviceaccount:team:report$"
        );
        assert_eq!(rules["tables"][1]["privileges"], json!([]));
        assert_eq!(outcome["loc"], Enforcement::NotApplicable);
    }
}
