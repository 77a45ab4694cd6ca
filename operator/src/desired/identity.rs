//! S3 identities in a lake's managed MinIO: one MinIO user per Grant principal that holds
//! data-location Grants, one per Crawler and one per Workflow of the lake, each with a single
//! policy limited to the buckets and prefixes it was granted, crawls or names. No Job holds the
//! root keys, and no two principals share keys.
//!
//! Everything here is pure; `controller::datalake::identities` makes MinIO agree
//! (`storage::iam`), then applies [`desired_set`] — a Secret appears only once MinIO knows its
//! keys:
//!
//! - **access key**: `lf` + 18 hex digits of SHA-256 over `namespace/lake/what` — stable and
//!   within MinIO's 20 characters;
//! - **secret key**: 40 hex digits of HMAC-SHA256 keyed with the lake's root secret key over
//!   the access key — derived, so nothing but the Secret the principal reads holds it, and
//!   rotating the root key rotates every identity;
//! - **policy name**: `lf-<access key>-<8 hex digits of the policy and the secret key>`: MinIO
//!   is current exactly when the user's attached policy has that name, so a reconcile with
//!   nothing to change reads one list and writes nothing.
//!
//! The credentials Secret (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`,
//! `AWS_REGION`: usable with `envFrom` as it is) is readable only by its principal: a Role with
//! `get` on that one Secret, bound to the Grant's User, Group or ServiceAccount. A Crawler's
//! Secret is read by its own crawl pods (their Role names it, `desired::crawler::role`).
//!
//! Permissions of a data location: `SELECT` and `DESCRIBE` read (GET, LIST under the prefix),
//! `INSERT` writes (PUT, multipart), `DELETE` deletes, `ALL` all three. `ALTER`, `DROP` and
//! `CREATE_TABLE` are catalog permissions and give no object access.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use lakeform_api::common::{LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY};
use lakeform_api::connection::{IDENTITY_ACCESS_KEY_KEY, IDENTITY_SECRET_KEY_KEY};
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::DataLake;
use lakeform_api::grant::{Grant, Permission, Principal, PrincipalKind};
use lakeform_api::workflow::Workflow;
use serde_json::{Value, json};
use sha2::Sha256;

use super::meta::{bounded, owned_meta, short_hash};
use super::minio;
use super::set::{DesiredSet, Ownership};

/// The `app.kubernetes.io/component` of identity objects (Secrets, Roles, RoleBindings).
pub const COMPONENT: &str = "identity";

/// One MinIO user of the lake and the Kubernetes Secret with its keys.
#[derive(Clone, PartialEq)]
pub struct Identity {
    /// Whom it is for, as people say it: `User bob`, `Crawler orders`.
    pub of: String,
    /// MinIO access key (the user name).
    pub access_key: String,
    /// MinIO secret key.
    pub secret_key: String,
    /// The IAM policy document.
    pub policy: Value,
    /// The Secret holding the keys.
    pub secret_name: String,
    /// Who may read the Secret (none: the crawl pods' own Role names it).
    pub readers: Vec<Subject>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("of", &self.of)
            .field("access_key", &self.access_key)
            .field("secret_name", &self.secret_name)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The policy's name in MinIO: changes whenever the policy or the secret key does.
    pub fn policy_name(&self) -> String {
        let digest = format!("{}\n{}", self.policy, self.secret_key);
        format!(
            "{}{}-{}",
            POLICY_PREFIX,
            self.access_key,
            short_hash(&digest, 8)
        )
    }
}

/// Every policy lakeform names starts with this.
pub const POLICY_PREFIX: &str = "lf-";

/// Whether `access_key` has the shape of an identity's (`lf` + 18 hex digits).
pub fn is_identity_key(access_key: &str) -> bool {
    access_key.len() == 20
        && access_key.starts_with("lf")
        && access_key[2..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// What became of a data-location Grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationOutcome {
    /// Part of the policy of MinIO user `access_key` for `location` (`s3://bucket/prefix`);
    /// its keys are in Secret `secret`.
    Enforced {
        access_key: String,
        secret: String,
        location: String,
    },
    /// Not enforced: reason and message.
    Refused(&'static str, String),
}

/// The lake's identities and what became of each data-location Grant (by Grant name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identities {
    /// Whether the lake's storage is MinIO that lakeform manages (identities are possible).
    pub managed: bool,
    /// The identities, principals' first.
    pub list: Vec<Identity>,
    /// Data-location Grants by name.
    pub locations: BTreeMap<String, LocationOutcome>,
}

/// The identities of `lake`: its principals' (from the data-location Grants in `grants`), its
/// Crawlers' and its Workflows' (not blueprint instances: their child Workflows have steps).
/// `keyring`: from the managed MinIO's root secret key (`None` until it exists).
pub fn compile(
    lake: &DataLake,
    grants: &[Grant],
    crawlers: &[Crawler],
    workflows: &[Workflow],
    keyring: Option<&Keyring>,
) -> Identities {
    let managed = lake.spec.storage.external.is_none();
    let mut out = Identities {
        managed,
        ..Default::default()
    };
    let location_grants: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.spec.resource.data_location.is_some())
        .collect();
    let keys = match (managed, keyring) {
        (true, Some(keys)) => keys,
        (managed, _) => {
            let message = match managed {
                false => {
                    "the lake's storage is external: lakeform cannot make MinIO users there; give the principal keys limited to this location yourself"
                }
                true => "waiting for the managed MinIO's root credentials",
            };
            for g in location_grants {
                out.locations.insert(
                    g.name_any(),
                    LocationOutcome::Refused("NotEnforced", message.into()),
                );
            }
            return out;
        }
    };
    principals(lake, &location_grants, keys, &mut out);
    for crawler in crawlers {
        out.list.push(crawler_identity(lake, crawler, keys));
    }
    for workflow in workflows.iter().filter(|w| w.spec.blueprint_ref.is_none()) {
        out.list.push(workflow_identity(lake, workflow, keys));
    }
    out
}

/// One identity per principal with at least one data-location Grant that gives object access.
fn principals(lake: &DataLake, grants: &[&Grant], keys: &Keyring, out: &mut Identities) {
    type Granted = (Principal, Vec<Value>, Vec<(String, String)>);
    let mut statements: BTreeMap<String, Granted> = BTreeMap::new();
    for g in grants {
        let Some(loc) = g.spec.resource.data_location.as_ref() else {
            continue;
        };
        let Some(bucket) = lake.zone_bucket(&loc.zone) else {
            let message = format!(
                "spec.resource.dataLocation.zone: the lake has no zone {:?}",
                loc.zone
            );
            out.locations.insert(
                g.name_any(),
                LocationOutcome::Refused("ZoneNotFound", message),
            );
            continue;
        };
        let actions = object_actions(&g.spec.permissions);
        if actions.is_empty() {
            let message = "spec.permissions: ALTER, DROP and CREATE_TABLE are catalog permissions; a data location takes SELECT, DESCRIBE, INSERT, DELETE or ALL".to_string();
            out.locations.insert(
                g.name_any(),
                LocationOutcome::Refused("NoObjectAccess", message),
            );
            continue;
        }
        let principal = principal_of(g);
        let entry = statements
            .entry(principal_key(&principal))
            .or_insert_with(|| (principal.clone(), Vec::new(), Vec::new()));
        entry
            .1
            .extend(location_statements(&bucket, &loc.prefix, &actions));
        entry
            .2
            .push((g.name_any(), format!("s3://{bucket}/{}", loc.prefix)));
    }
    for (key, (principal, statements, granted)) in statements {
        let access_key = access_key(lake, &format!("principal/{key}"));
        let identity = Identity {
            of: key.replacen('/', " ", 1),
            secret_key: keys.secret_key(&access_key),
            policy: policy(statements),
            secret_name: principal_secret_name(lake, &principal),
            readers: vec![subject(&principal)],
            access_key,
        };
        for (name, location) in granted {
            let outcome = LocationOutcome::Enforced {
                access_key: identity.access_key.clone(),
                secret: identity.secret_name.clone(),
                location,
            };
            out.locations.insert(name, outcome);
        }
        out.list.push(identity);
    }
}

/// The Grant's principal with a ServiceAccount's namespace filled in.
pub(crate) fn principal_of(g: &Grant) -> Principal {
    let mut p = g.spec.principal.clone();
    if p.kind == PrincipalKind::ServiceAccount && p.namespace.is_none() {
        p.namespace = g.namespace();
    }
    p
}

/// `User/bob`, `Group/analysts`, `ServiceAccount/ns/name`.
pub(crate) fn principal_key(p: &Principal) -> String {
    match (p.kind, &p.namespace) {
        (PrincipalKind::User, _) => format!("User/{}", p.name),
        (PrincipalKind::Group, _) => format!("Group/{}", p.name),
        (PrincipalKind::ServiceAccount, ns) => {
            format!(
                "ServiceAccount/{}/{}",
                ns.as_deref().unwrap_or_default(),
                p.name
            )
        }
    }
}

/// The RBAC subject of a principal.
pub(crate) fn subject(p: &Principal) -> Subject {
    let (kind, api_group, namespace) = match p.kind {
        PrincipalKind::User => ("User", Some("rbac.authorization.k8s.io"), None),
        PrincipalKind::Group => ("Group", Some("rbac.authorization.k8s.io"), None),
        PrincipalKind::ServiceAccount => ("ServiceAccount", None, p.namespace.clone()),
    };
    Subject {
        kind: kind.into(),
        name: p.name.clone(),
        api_group: api_group.map(str::to_string),
        namespace,
    }
}

/// The S3 actions on objects that `permissions` give on a data location.
fn object_actions(permissions: &[Permission]) -> Vec<&'static str> {
    let has = |p: Permission| permissions.contains(&p) || permissions.contains(&Permission::All);
    let mut actions = Vec::new();
    if has(Permission::Select) || has(Permission::Describe) {
        actions.push("s3:GetObject");
    }
    if has(Permission::Insert) {
        actions.extend([
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ]);
    }
    if has(Permission::Delete) {
        actions.push("s3:DeleteObject");
    }
    actions
}

/// Statements allowing `actions` on the objects under `bucket/prefix` and listing them.
fn location_statements(bucket: &str, prefix: &str, actions: &[&str]) -> Vec<Value> {
    let mut list = json!({
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [format!("arn:aws:s3:::{bucket}")],
    });
    if !prefix.is_empty() {
        list["Condition"] = json!({"StringLike": {"s3:prefix": [format!("{prefix}*")]}});
    }
    let objects = json!({
        "Effect": "Allow",
        "Action": actions,
        "Resource": [format!("arn:aws:s3:::{bucket}/{prefix}*")],
    });
    vec![list, objects]
}

/// An IAM policy of `statements`.
fn policy(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What a Job writes where a database's tables live: data and metadata files, multipart.
const READ_WRITE: [&str; 3] = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"];

/// A Crawler's identity: read its targets; read and write its database's location (where the
/// catalog puts its tables' metadata and ingested data).
fn crawler_identity(lake: &DataLake, crawler: &Crawler, keys: &Keyring) -> Identity {
    let mut statements = Vec::new();
    for t in &crawler.spec.targets {
        if let Some(bucket) = lake.zone_bucket(&t.zone) {
            statements.extend(location_statements(&bucket, &t.prefix, &["s3:GetObject"]));
        }
    }
    if let Some(bucket) = database_bucket(lake, &crawler.spec.database) {
        let prefix = format!("{}/", crawler.spec.database);
        statements.extend(location_statements(&bucket, &prefix, &READ_WRITE));
    }
    let name = crawler.name_any();
    job_identity(
        lake,
        keys,
        "Crawler",
        &name,
        crawler_secret_name(&name),
        statements,
    )
}

/// A Workflow's identity, used by all its sql, extract, container and spark steps (its crawl
/// steps use their Crawler's): read every zone of the lake (a query may read any table, and a
/// table's files may lie in any zone: in-place Parquet stays where it landed), and write only
/// the locations of the databases its steps write (`sql.target`, `extract.targetDatabase`).
fn workflow_identity(lake: &DataLake, workflow: &Workflow, keys: &Keyring) -> Identity {
    let mut writes: Vec<&str> = Vec::new();
    for step in &workflow.spec.steps {
        if let Some(sql) = &step.sql {
            writes.push(&sql.target.database);
        }
        if let Some(x) = &step.extract {
            writes.push(&x.target_database);
        }
    }
    writes.sort_unstable();
    writes.dedup();
    let mut statements = Vec::new();
    for zone in &lake.spec.zones {
        statements.extend(location_statements(
            &lake.bucket_name(zone),
            "",
            &["s3:GetObject"],
        ));
    }
    for db in writes {
        if let Some(bucket) = database_bucket(lake, db) {
            statements.extend(location_statements(&bucket, &format!("{db}/"), &READ_WRITE));
        }
    }
    let name = workflow.name_any();
    job_identity(
        lake,
        keys,
        "Workflow",
        &name,
        workflow_secret_name(&name),
        statements,
    )
}

/// The identity of the Jobs of `kind` `name` (their own pods read the Secret: no readers).
fn job_identity(
    lake: &DataLake,
    keys: &Keyring,
    kind: &str,
    name: &str,
    secret_name: String,
    statements: Vec<Value>,
) -> Identity {
    let access_key = access_key(lake, &format!("{}/{name}", kind.to_ascii_lowercase()));
    Identity {
        of: format!("{kind} {name}"),
        secret_key: keys.secret_key(&access_key),
        policy: policy(statements),
        secret_name,
        readers: Vec::new(),
        access_key,
    }
}

/// The bucket of `database`'s location: its zone's when the lake declares it, else the managed
/// catalog's warehouse (`connection::warehouse_bucket`), where the catalog puts namespaces the
/// lake does not declare.
pub fn database_bucket(lake: &DataLake, database: &str) -> Option<String> {
    let declared = lake
        .spec
        .catalog
        .as_ref()?
        .databases
        .iter()
        .find(|d| d.name == database);
    match declared {
        Some(db) => lake.zone_bucket(&db.zone),
        None => Some(super::connection::warehouse_bucket(lake)).filter(|b| !b.is_empty()),
    }
}

/// `lf` + 18 hex digits naming `what` of `lake`.
pub fn access_key(lake: &DataLake, what: &str) -> String {
    let ns = lake.namespace().unwrap_or_default();
    format!(
        "lf{}",
        short_hash(&format!("{ns}/{}/{what}", lake.name_any()), 18)
    )
}

/// Derives identities' secret keys from the lake's root secret key (HMAC-SHA256).
#[derive(Clone)]
pub struct Keyring(Hmac<Sha256>);

impl Keyring {
    /// A keyring for `root_secret` (`None` only if HMAC refused the key, which it never does).
    pub fn new(root_secret: &str) -> Option<Self> {
        Hmac::<Sha256>::new_from_slice(root_secret.as_bytes())
            .ok()
            .map(Keyring)
    }

    /// 40 hex digits of HMAC-SHA256(root secret, `access_key`).
    pub fn secret_key(&self, access_key: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(access_key.as_bytes());
        let mut key = hex::encode(mac.finalize().into_bytes());
        key.truncate(40);
        key
    }
}

/// The Secret with a Workflow's keys: `<workflow>-workflow-s3`.
pub fn workflow_secret_name(workflow: &str) -> String {
    bounded(workflow, "-workflow-s3", 253)
}

/// The Secret with a Crawler's keys: `<crawler>-crawler-s3`.
pub fn crawler_secret_name(crawler: &str) -> String {
    bounded(crawler, "-crawler-s3", 253)
}

/// The Secret with a principal's keys: `<lake>-s3-<user|group|sa>-<name>`.
pub fn principal_secret_name(lake: &DataLake, p: &Principal) -> String {
    principal_object_name(lake, "s3", p)
}

/// `<lake>-<what>-<user|group|sa>-<name>`: a per-principal object's name; names that are not
/// DNS labels get a hash suffix to stay unique.
pub(crate) fn principal_object_name(lake: &DataLake, what: &str, p: &Principal) -> String {
    let kind = match p.kind {
        PrincipalKind::User => "user",
        PrincipalKind::Group => "group",
        PrincipalKind::ServiceAccount => "sa",
    };
    let clean: String = p
        .name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect();
    let clean = clean.trim_matches('-');
    let base = match clean == p.name && p.namespace.is_none() {
        true => format!("{}-{what}-{kind}-{clean}", lake.name_any()),
        false => format!(
            "{}-{what}-{kind}-{clean}-{}",
            lake.name_any(),
            short_hash(&principal_key(p), 6)
        ),
    };
    bounded(&base, "", 253)
}

/// The Kubernetes objects of the identities: each Secret, and for principals a Role that may
/// `get` only that Secret, bound to them. All owned by the lake and pruned with it.
pub fn objects(
    lake: &DataLake,
    identities: &Identities,
) -> (Vec<Secret>, Vec<Role>, Vec<RoleBinding>) {
    let (mut secrets, mut roles, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for id in &identities.list {
        secrets.push(secret(lake, id));
        if id.readers.is_empty() {
            continue;
        }
        let (role, binding) = reader_role(lake, &id.secret_name, COMPONENT, &id.readers);
        roles.push(role);
        bindings.push(binding);
    }
    (secrets, roles, bindings)
}

/// A Role that may `get` only the Secret `secret_name` (`<secret>-reader`), bound to `readers`;
/// both labelled with `component`.
pub(crate) fn reader_role(
    lake: &DataLake,
    secret_name: &str,
    component: &str,
    readers: &[Subject],
) -> (Role, RoleBinding) {
    let name = bounded(secret_name, "-reader", 253);
    let role = Role {
        metadata: owned_meta(lake, name.clone(), component),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![secret_name.to_string()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: owned_meta(lake, name.clone(), component),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(readers.to_vec()),
    };
    (role, binding)
}

/// The identities' objects as one set that owns every identity object of the lake: what it
/// does not hold is pruned. Applied only once MinIO holds the users, so that a Secret never
/// carries keys MinIO does not know yet.
pub fn desired_set(
    lake: &DataLake,
    identities: &Identities,
) -> Result<DesiredSet, serde_json::Error> {
    let selector = format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_PART_OF}={},app.kubernetes.io/component={COMPONENT}",
        lake.name_any()
    );
    let ownership = Ownership::new(selector)
        .kind::<Secret>()
        .kind::<Role>()
        .kind::<RoleBinding>();
    let mut set = DesiredSet::new(Some(ownership));
    let (secrets, roles, bindings) = objects(lake, identities);
    for secret in &secrets {
        set.add(secret)?;
    }
    for role in &roles {
        set.add(role)?;
    }
    for binding in &bindings {
        set.add(binding)?;
    }
    Ok(set)
}

/// The Secret of one identity, in the AWS SDKs' environment names.
fn secret(lake: &DataLake, id: &Identity) -> Secret {
    let mut meta = owned_meta(lake, id.secret_name.clone(), COMPONENT);
    meta.annotations = Some(BTreeMap::from([(
        "lakeform.dev/identity-of".to_string(),
        id.of.clone(),
    )]));
    Secret {
        metadata: meta,
        string_data: Some(BTreeMap::from([
            (IDENTITY_ACCESS_KEY_KEY.to_string(), id.access_key.clone()),
            (IDENTITY_SECRET_KEY_KEY.to_string(), id.secret_key.clone()),
            ("AWS_ENDPOINT_URL".to_string(), minio::endpoint(lake)),
            (
                "AWS_REGION".to_string(),
                lakeform_api::connection::DEFAULT_REGION.to_string(),
            ),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake(spec: &str) -> DataLake {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: DataLake\nmetadata: {{name: sales, namespace: team, uid: l-1}}\nspec:\n{spec}"
        );
        serde_yaml::from_str(&doc).expect("lake fixture parses")
    }

    fn grant(name: &str, spec: &str) -> Grant {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Grant\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  lakeRef: {{name: sales}}\n{spec}"
        );
        serde_yaml::from_str(&doc).expect("grant fixture parses")
    }

    fn crawler(name: &str, spec: &str) -> Crawler {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Crawler\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  lakeRef: {{name: sales}}\n{spec}"
        );
        serde_yaml::from_str(&doc).expect("crawler fixture parses")
    }

    const MANAGED: &str = "  storage: {managed: {}}\n  zones: [{name: raw}, {name: curated}]\n  catalog:\n    managed: {}\n    databases: [{name: sales, zone: curated}]\n";

    fn keys() -> Keyring {
        Keyring::new("root-secret").expect("keyring")
    }

    #[test]
    fn keys_are_stable_shaped_and_derived_from_the_root_secret() {
        let l = lake(MANAGED);
        let a = access_key(&l, "crawler/orders");
        assert_eq!(a, access_key(&l, "crawler/orders"));
        assert_ne!(a, access_key(&l, "crawler/other"));
        assert!(is_identity_key(&a), "{a}");
        assert!(!is_identity_key("lakeform"));
        assert!(!is_identity_key("LF0123456789ABCDEF01"));
        let s = keys().secret_key(&a);
        assert_eq!(s.len(), 40);
        assert_eq!(s, keys().secret_key(&a));
        let rotated = Keyring::new("other-root").expect("keyring");
        assert_ne!(s, rotated.secret_key(&a));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let k = Keyring::new("Jefe").expect("keyring");
        assert_eq!(
            k.secret_key("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f08"
        );
    }

    #[test]
    fn a_principal_gets_one_user_limited_to_its_locations() {
        let l = lake(MANAGED);
        let grants = [
            grant(
                "bob-orders",
                "  principal: {kind: User, name: bob}\n  resource: {dataLocation: {zone: raw, prefix: orders/}}\n  permissions: [SELECT]\n",
            ),
            grant(
                "bob-drop",
                "  principal: {kind: User, name: bob}\n  resource: {dataLocation: {zone: curated, prefix: drop/}}\n  permissions: [INSERT, DELETE]\n",
            ),
            grant(
                "alice-table",
                "  principal: {kind: User, name: alice}\n  resource: {database: sales, table: orders}\n  permissions: [SELECT]\n",
            ),
        ];
        let ids = compile(&l, &grants, &[], &[], Some(&keys()));
        assert_eq!(
            ids.list.len(),
            1,
            "table grants make no users: {:?}",
            ids.list
        );
        let bob = &ids.list[0];
        assert_eq!(bob.of, "User bob");
        assert_eq!(bob.secret_name, "sales-s3-user-bob");
        assert_eq!(
            serde_json::to_value(&bob.readers).expect("json"),
            json!([{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}])
        );
        assert_eq!(
            bob.policy["Statement"],
            json!([
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::sales-raw"], "Condition": {"StringLike": {"s3:prefix": ["orders/*"]}}},
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::sales-raw/orders/*"]},
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::sales-curated"], "Condition": {"StringLike": {"s3:prefix": ["drop/*"]}}},
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::sales-curated/drop/*"]},
            ])
        );
        for name in ["bob-orders", "bob-drop"] {
            assert_eq!(
                ids.locations[name],
                LocationOutcome::Enforced {
                    access_key: bob.access_key.clone(),
                    secret: "sales-s3-user-bob".into(),
                    location: match name {
                        "bob-orders" => "s3://sales-raw/orders/".into(),
                        _ => "s3://sales-curated/drop/".into(),
                    },
                }
            );
        }
        assert!(!ids.locations.contains_key("alice-table"));
    }

    #[test]
    fn location_grants_that_cannot_be_enforced_say_why() {
        let grants = [
            grant(
                "nozone",
                "  principal: {kind: User, name: bob}\n  resource: {dataLocation: {zone: gold}}\n  permissions: [SELECT]\n",
            ),
            grant(
                "alter",
                "  principal: {kind: Group, name: eng}\n  resource: {dataLocation: {zone: raw}}\n  permissions: [ALTER]\n",
            ),
        ];
        let ids = compile(&lake(MANAGED), &grants, &[], &[], Some(&keys()));
        assert!(ids.list.is_empty());
        assert!(matches!(
            ids.locations["nozone"],
            LocationOutcome::Refused("ZoneNotFound", _)
        ));
        assert!(matches!(
            ids.locations["alter"],
            LocationOutcome::Refused("NoObjectAccess", _)
        ));
        let external = lake(
            "  storage:\n    external:\n      endpoint: http://minio:9000\n      credentials: {secretName: s3}\n  zones: [{name: raw}]\n",
        );
        let ids = compile(&external, &grants[..1], &[], &[], Some(&keys()));
        assert!(!ids.managed && ids.list.is_empty());
        assert!(matches!(
            ids.locations["nozone"],
            LocationOutcome::Refused("NotEnforced", _)
        ));
        let waiting = compile(&lake(MANAGED), &grants[..1], &[], &[], None);
        assert!(
            matches!(&waiting.locations["nozone"], LocationOutcome::Refused("NotEnforced", m) if m.contains("root credentials"))
        );
    }

    #[test]
    fn a_crawler_reads_its_targets_and_writes_its_database() {
        let c = crawler(
            "orders",
            "  database: sales\n  targets: [{zone: raw, prefix: orders/}, {zone: raw, prefix: returns/}]\n",
        );
        let ids = compile(&lake(MANAGED), &[], &[c], &[], Some(&keys()));
        let id = &ids.list[0];
        assert_eq!(id.secret_name, "orders-crawler-s3");
        assert!(id.readers.is_empty());
        let resources: Vec<(Value, Value)> = id.policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .map(|s| (s["Action"].clone(), s["Resource"].clone()))
            .collect();
        assert_eq!(
            resources[1],
            (
                json!(["s3:GetObject"]),
                json!(["arn:aws:s3:::sales-raw/orders/*"])
            )
        );
        assert_eq!(
            resources[3],
            (
                json!(["s3:GetObject"]),
                json!(["arn:aws:s3:::sales-raw/returns/*"])
            )
        );
        assert_eq!(
            resources[5],
            (
                json!(["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]),
                json!(["arn:aws:s3:::sales-curated/sales/*"])
            )
        );
        assert_eq!(resources.len(), 6, "nothing else: {resources:?}");
    }

    #[test]
    fn an_undeclared_database_lives_in_the_catalogs_warehouse() {
        let l = lake(MANAGED);
        assert_eq!(
            database_bucket(&l, "sales").as_deref(),
            Some("sales-curated")
        );
        assert_eq!(
            database_bucket(&l, "other").as_deref(),
            Some("sales-curated")
        );
        let bare =
            lake("  storage: {managed: {}}\n  zones: [{name: raw}]\n  catalog: {managed: {}}\n");
        assert_eq!(
            database_bucket(&bare, "landing").as_deref(),
            Some("sales-raw")
        );
    }

    #[test]
    fn policy_names_change_with_the_policy_or_the_key() {
        let c = crawler("orders", "  database: sales\n  targets: [{zone: raw}]\n");
        let a = compile(
            &lake(MANAGED),
            &[],
            std::slice::from_ref(&c),
            &[],
            Some(&keys()),
        )
        .list[0]
            .clone();
        let mut b = a.clone();
        assert_eq!(a.policy_name(), b.policy_name());
        assert!(
            a.policy_name()
                .starts_with(&format!("lf-{}-", a.access_key))
        );
        b.secret_key.push('x');
        assert_ne!(a.policy_name(), b.policy_name());
        let other = crawler(
            "orders",
            "  database: sales\n  targets: [{zone: curated}]\n",
        );
        let c2 = compile(&lake(MANAGED), &[], &[other], &[], Some(&keys())).list[0].clone();
        assert_ne!(a.policy_name(), c2.policy_name());
    }

    #[test]
    fn a_workflow_reads_the_lake_and_writes_only_its_targets() {
        let doc = r#"apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {name: nightly, namespace: team}
spec:
  lakeRef: {name: sales}
  steps:
    - name: join
      sql:
        statements: ["SELECT * FROM sales.orders"]
        target: {database: mart, table: visits}
"#;
        let w: Workflow = serde_yaml::from_str(doc).expect("workflow parses");
        let l = lake(
            "  storage: {managed: {}}\n  zones: [{name: raw}, {name: curated}]\n  catalog:\n    managed: {}\n    databases: [{name: sales, zone: curated}, {name: mart, zone: curated}]\n",
        );
        let ids = compile(&l, &[], &[], &[w], Some(&keys()));
        let id = &ids.list[0];
        assert_eq!(id.of, "Workflow nightly");
        assert_eq!(id.secret_name, "nightly-workflow-s3");
        let objects: Vec<(Value, Value)> = id.policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter(|s| s["Action"] != json!(["s3:ListBucket"]))
            .map(|s| (s["Action"].clone(), s["Resource"].clone()))
            .collect();
        assert_eq!(
            objects,
            [
                (json!(["s3:GetObject"]), json!(["arn:aws:s3:::sales-raw/*"])),
                (
                    json!(["s3:GetObject"]),
                    json!(["arn:aws:s3:::sales-curated/*"])
                ),
                (
                    json!(["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]),
                    json!(["arn:aws:s3:::sales-curated/mart/*"])
                ),
            ]
        );
    }

    #[test]
    fn secrets_and_reader_roles_are_the_lakes() {
        let grants = [grant(
            "sa",
            "  principal: {kind: ServiceAccount, name: etl}\n  resource: {dataLocation: {zone: raw}}\n  permissions: [ALL]\n",
        )];
        let c = crawler("orders", "  database: sales\n  targets: [{zone: raw}]\n");
        let l = lake(MANAGED);
        let ids = compile(&l, &grants, &[c], &[], Some(&keys()));
        let (secrets, roles, bindings) = objects(&l, &ids);
        assert_eq!(secrets.len(), 2);
        assert_eq!(
            roles.len(),
            1,
            "crawlers read theirs through their own Role"
        );
        let sa_secret = &secrets[0];
        let name = sa_secret.metadata.name.clone().expect("name");
        assert!(name.starts_with("sales-s3-sa-etl-"), "{name}");
        let data = sa_secret.string_data.as_ref().expect("data");
        assert_eq!(
            data["AWS_ENDPOINT_URL"],
            "http://sales-minio.team.svc.cluster.local:9000"
        );
        assert!(is_identity_key(&data["AWS_ACCESS_KEY_ID"]));
        let labels = sa_secret.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], COMPONENT);
        assert_eq!(
            sa_secret.metadata.owner_references.as_ref().expect("owner")[0].kind,
            "DataLake"
        );
        let set = desired_set(&l, &ids).expect("serializes");
        assert_eq!(set.objects().len(), 4);
        assert_eq!(
            set.ownership().expect("ownership").selector,
            "app.kubernetes.io/managed-by=lakeform,app.kubernetes.io/part-of=sales,app.kubernetes.io/component=identity"
        );
        let rule = &roles[0].rules.as_ref().expect("rules")[0];
        assert_eq!(rule.resource_names, Some(vec![name.clone()]));
        assert_eq!(rule.verbs, ["get"]);
        assert_eq!(
            serde_json::to_value(bindings[0].subjects.as_ref().expect("subjects")).expect("json"),
            json!([{"kind": "ServiceAccount", "name": "etl", "namespace": "team"}])
        );
    }
}
