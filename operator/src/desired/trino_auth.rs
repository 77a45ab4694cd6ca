//! Who may talk to a lake's Trino: password authentication, so that a user cannot claim
//! another's name (<https://trino.io/docs/478/security/password-file.html>). Pure; the DataLake
//! reconciler reads the lake's key ([`key_secret_name`]), compiles the [`Login`]s and applies
//! [`desired_set`] before the coordinator that mounts the password file.
//!
//! - **Who gets a login**: the admin user [`ADMIN_USER`], every user a workgroup lists, and
//!   every principal of one of the lake's Grants. Each login's password is in a Secret of its
//!   own (`TRINO_USER`, `TRINO_PASSWORD`, `TRINO_URI`), readable only by that principal (a Role
//!   with `get` on it, bound to the User, Group or ServiceAccount); the admin's
//!   (`<lake>-trino-admin`) only by whoever may read Secrets in the namespace. Reading the
//!   Secret is being the principal: `lakeform query --user` does exactly that.
//! - **Login names**: HTTP basic authentication cannot carry a `:` in a user name, so a
//!   ServiceAccount logs in as `system/serviceaccount/<ns>/<name>` and Trino's user mapping
//!   (`user-mapping.json`, [`user_mapping`]) turns that back into
//!   `system:serviceaccount:<ns>:<name>`, the user Trino's rules name. A Group is one shared
//!   login, `group/<name>` (Trino cannot see Kubernetes group membership): its members read its
//!   Secret. User names with a `:` and names under the reserved `system/` and `group/` prefixes
//!   get no login ([`login_name`]); their Grants are refused (`UnsupportedPrincipal`).
//! - **Passwords** are derived, not stored: 40 hex digits of HMAC-SHA256 keyed with the lake's
//!   own random key over the login, so a reconcile rewrites nothing and a Grant deleted and
//!   applied again gets the same password back. The coordinator's password file holds only
//!   PBKDF2 hashes (Trino's `PBKDF2WithHmacSHA1`: `iterations:salt:hash` in hex, salt also
//!   derived) and re-reads the file every [`REFRESH_SECONDS`].
//! - **Over TLS only**: Trino takes passwords only on secure requests, so the coordinator also
//!   serves HTTPS on [`HTTPS_PORT`] with a certificate of the lake's own CA (made once with the
//!   key, `crate::tls`); the CA certificate is public in the ConfigMap `<lake>-trino-ca`
//!   ([`CA_FILE`]). Plain HTTP on 8080 stays for the workers, probes and `/v1/info`; a client
//!   sending a password there is refused. The key, as `internal-communication.shared-secret`,
//!   signs the coordinator's and workers' internal requests (required once authentication is
//!   on).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding, Subject};
use kube::ResourceExt;
use lakeform_api::common::{LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY};
use lakeform_api::datalake::DataLake;
use lakeform_api::grant::{Grant, Principal, PrincipalKind};
use serde_json::{Value, json};
use sha1::Sha1;

use super::identity::{Keyring, principal_key, principal_object_name, principal_of, reader_role};
use super::meta::{bounded, owned_meta};
use super::set::{DesiredSet, Ownership};
use super::trino;

/// The `app.kubernetes.io/component` of the logins' objects.
pub const COMPONENT: &str = "trino-auth";
/// The component of the lake's key Secret (made once, never pruned with the logins).
const KEY_COMPONENT: &str = "trino-key";
pub use super::trino_access::ADMIN_USER;
/// Where the coordinator mounts the password file's Secret (a whole directory: the kubelet
/// updates it in place).
pub const AUTH_DIR: &str = "/etc/trino-auth";
/// The password file (the Secret's key).
pub const PASSWORD_FILE: &str = "password.db";
/// The user-mapping file, beside the rendered configuration.
pub const USER_MAPPING_FILE: &str = "user-mapping.json";
/// How often Trino re-reads the password file.
pub const REFRESH_SECONDS: u32 = 5;
/// Key of the lake's key Secret holding the key.
pub const KEY_SECRET_KEY: &str = "key";
/// Key of the lake's key Secret (and of the CA ConfigMap) with the CA certificate.
pub const CA_FILE: &str = "ca.crt";
/// Key of the lake's key Secret with the coordinator's PEM keystore (key and certificates).
pub const KEYSTORE_FILE: &str = "keystore.pem";
/// Where the coordinator mounts its keystore.
pub const TLS_DIR: &str = "/etc/trino-tls";
/// The coordinator's HTTPS port (clients with passwords).
pub const HTTPS_PORT: i32 = 8443;
/// Environment variable with the key, for `internal-communication.shared-secret`.
pub const ENV_SHARED_SECRET: &str = "LAKE_TRINO_SHARED_SECRET";
/// Keys of a login's Secret.
pub const USER_KEY: &str = "TRINO_USER";
/// The login's password.
pub const PASSWORD_KEY: &str = "TRINO_PASSWORD";
/// The coordinator's in-cluster URI.
pub const URI_KEY: &str = "TRINO_URI";

/// PBKDF2 rounds of the password file (Trino's minimum; the passwords are 160 random bits, so
/// rounds add nothing but start-up time).
const PBKDF2_ROUNDS: u32 = 1000;
const SA_LOGIN_PREFIX: &str = "system/serviceaccount/";
const GROUP_LOGIN_PREFIX: &str = "group/";

/// One login of the lake's Trino.
#[derive(Clone, PartialEq)]
pub struct Login {
    /// Whom it is for, as people say it: `User alice`, `admin`.
    pub of: String,
    /// The basic-authentication user name.
    pub login: String,
    /// The Trino user it becomes (what rules and workgroups name).
    pub user: String,
    /// The password.
    pub password: String,
    /// The Secret holding login and password.
    pub secret_name: String,
    /// Who may read the Secret (none for the admin: namespace Secret readers only).
    pub readers: Vec<Subject>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("of", &self.of)
            .field("login", &self.login)
            .field("secret_name", &self.secret_name)
            .finish_non_exhaustive()
    }
}

/// The Secret with the lake's random key (made once by the controller).
pub fn key_secret_name(lake: &DataLake) -> String {
    format!("{}-trino-auth", lake.name_any())
}

/// The Secret of the Trino login of `p`: `<lake>-trino-<user|group|sa>-<name>`.
pub fn login_secret_name(lake: &DataLake, p: &Principal) -> String {
    principal_object_name(lake, "trino", p)
}

/// The admin login's Secret.
pub fn admin_secret_name(lake: &DataLake) -> String {
    format!("{}-trino-admin", lake.name_any())
}

/// The public ConfigMap with the CA certificate clients verify the coordinator with.
pub fn ca_config_map_name(lake: &DataLake) -> String {
    format!("{}-trino-ca", lake.name_any())
}

/// The DNS names of the coordinator's certificate: its Service, short and qualified.
pub fn dns_names(lake: &DataLake) -> Vec<String> {
    let service = trino::service_name(lake);
    let ns = lake.namespace().unwrap_or_default();
    vec![
        service.clone(),
        format!("{service}.{ns}"),
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.cluster.local"),
    ]
}

/// The coordinator's HTTPS URI (what logins connect to).
pub fn https_uri(lake: &DataLake) -> String {
    let host = dns_names(lake).pop().unwrap_or_default();
    format!("https://{host}:{HTTPS_PORT}")
}

/// The Secret holding the coordinator's password file.
pub fn password_secret_name(lake: &DataLake) -> String {
    format!("{}-trino-passwords", lake.name_any())
}

/// The basic-authentication name of `p` (ServiceAccount namespace filled in), or `None` when
/// it cannot have one: a `:` in a User's or Group's name, or a User named like a reserved
/// login (the admin, `system/…`, `group/…`).
pub fn login_name(p: &Principal) -> Option<String> {
    match p.kind {
        PrincipalKind::User => {
            let reserved = p.name == ADMIN_USER
                || p.name.starts_with("system/")
                || p.name.starts_with(GROUP_LOGIN_PREFIX);
            (!reserved && !p.name.contains(':')).then(|| p.name.clone())
        }
        PrincipalKind::Group => {
            (!p.name.contains(':')).then(|| format!("{GROUP_LOGIN_PREFIX}{}", p.name))
        }
        PrincipalKind::ServiceAccount => Some(format!(
            "{SA_LOGIN_PREFIX}{}/{}",
            p.namespace.as_deref().unwrap_or_default(),
            p.name
        )),
    }
}

/// The Trino user a principal is (what the access rules match).
pub fn trino_user(p: &Principal) -> String {
    match p.kind {
        PrincipalKind::User => p.name.clone(),
        PrincipalKind::Group => format!("{GROUP_LOGIN_PREFIX}{}", p.name),
        PrincipalKind::ServiceAccount => format!(
            "system:serviceaccount:{}:{}",
            p.namespace.as_deref().unwrap_or_default(),
            p.name
        ),
    }
}

/// The principal whose login a Trino user name is (as `lakeform query --user` takes it):
/// `system:serviceaccount:<ns>:<name>`, `group/<name>`, or a user.
pub fn principal_of_user(user: &str) -> Principal {
    let (kind, name, namespace) = if let Some(rest) = user.strip_prefix("system:serviceaccount:") {
        let (ns, name) = rest.split_once(':').unwrap_or(("", rest));
        (PrincipalKind::ServiceAccount, name, Some(ns.to_string()))
    } else if let Some(group) = user.strip_prefix(GROUP_LOGIN_PREFIX) {
        (PrincipalKind::Group, group, None)
    } else {
        (PrincipalKind::User, user, None)
    };
    Principal {
        kind,
        name: name.to_string(),
        namespace,
    }
}

/// The user mapping: ServiceAccount logins back to their Kubernetes user names; every other
/// login is its own user (<https://trino.io/docs/478/security/user-mapping.html>).
pub fn user_mapping() -> Value {
    json!({"rules": [
        {
            "pattern": "system/serviceaccount/([a-z0-9][-a-z0-9]*)/([a-z0-9][-.a-z0-9]*)",
            "user": "system:serviceaccount:$1:$2",
        },
        {"pattern": "(.+)"},
    ]})
}

/// `config.properties` lines of the coordinator (and, for the shared secret, the workers).
pub fn properties(role: trino::Role) -> Vec<(&'static str, String)> {
    let shared = (
        "internal-communication.shared-secret",
        format!("${{ENV:{ENV_SHARED_SECRET}}}"),
    );
    match role {
        trino::Role::Worker => vec![shared],
        trino::Role::Coordinator => vec![
            ("http-server.authentication.type", "PASSWORD".into()),
            ("http-server.https.enabled", "true".into()),
            ("http-server.https.port", HTTPS_PORT.to_string()),
            (
                "http-server.https.keystore.path",
                format!("{TLS_DIR}/{KEYSTORE_FILE}"),
            ),
            (
                "http-server.authentication.password.user-mapping.file",
                format!("{}/{USER_MAPPING_FILE}", trino::ETC_DIR),
            ),
            shared,
        ],
    }
}

/// `password-authenticator.properties` of the coordinator.
pub fn authenticator_properties() -> Vec<(&'static str, String)> {
    vec![
        ("password-authenticator.name", "file".into()),
        ("file.password-file", format!("{AUTH_DIR}/{PASSWORD_FILE}")),
        ("file.refresh-period", format!("{REFRESH_SECONDS}s")),
    ]
}

/// The logins of `lake` (which has a Trino): the admin's, each workgroup user's and each
/// principal's of `grants`, one per login name, passwords derived with `keys`.
pub fn compile(lake: &DataLake, grants: &[Grant], keys: &Keyring) -> Vec<Login> {
    let mut by_login: BTreeMap<String, Login> = BTreeMap::new();
    let admin = Login {
        of: "admin".into(),
        login: ADMIN_USER.into(),
        user: ADMIN_USER.into(),
        password: password(keys, ADMIN_USER),
        secret_name: admin_secret_name(lake),
        readers: Vec::new(),
    };
    by_login.insert(admin.login.clone(), admin);
    let workgroup_users = lake
        .spec
        .query_engine
        .iter()
        .flat_map(|q| q.workgroups.iter())
        .flat_map(|w| w.users.iter())
        .map(|name| Principal {
            kind: PrincipalKind::User,
            name: name.clone(),
            namespace: None,
        });
    let principals = grants.iter().map(principal_of).chain(workgroup_users);
    for p in principals {
        let Some(login) = login_name(&p) else {
            continue;
        };
        by_login.entry(login.clone()).or_insert_with(|| Login {
            of: principal_key(&p).replacen('/', " ", 1),
            user: trino_user(&p),
            password: password(keys, &login),
            secret_name: login_secret_name(lake, &p),
            readers: vec![super::identity::subject(&p)],
            login,
        });
    }
    by_login.into_values().collect()
}

/// 40 hex digits of HMAC-SHA256(key, `trino-login:<login>`).
fn password(keys: &Keyring, login: &str) -> String {
    keys.secret_key(&format!("trino-login:{login}"))
}

/// The password file: `login:rounds:salt:hash` per login (PBKDF2-HMAC-SHA1, hex), sorted.
pub fn password_file(logins: &[Login], keys: &Keyring) -> String {
    let mut out = String::new();
    for l in logins {
        let salt = keys.secret_key(&format!("trino-salt:{}", l.login));
        let salt = &salt.as_bytes()[..32];
        let salt = hex::decode(salt).unwrap_or_default();
        let mut hash = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(l.password.as_bytes(), &salt, PBKDF2_ROUNDS, &mut hash);
        out.push_str(&format!(
            "{}:{PBKDF2_ROUNDS}:{}:{}\n",
            l.login,
            hex::encode(&salt),
            hex::encode(hash)
        ));
    }
    out
}

/// The lake's key Secret, made once from a random `token` and the coordinator's TLS material
/// (owned by the lake: its passwords go with it).
pub fn key_secret(lake: &DataLake, token: String, tls: &crate::tls::ServerTls) -> Secret {
    let data = BTreeMap::from([
        (KEY_SECRET_KEY.to_string(), token),
        (CA_FILE.to_string(), tls.ca_certificate.clone()),
        (KEYSTORE_FILE.to_string(), tls.keystore.clone()),
    ]);
    // Not in the logins' set (which prunes what it does not hold): a component of its own.
    secret(lake, key_secret_name(lake), KEY_COMPONENT, data)
}

/// An empty set owning every `trino-auth` object of the lake: applied, it prunes them all (a
/// lake without Trino has no logins).
pub fn no_logins(lake: &DataLake) -> DesiredSet {
    let selector = format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_PART_OF}={},app.kubernetes.io/component={COMPONENT}",
        lake.name_any()
    );
    let ownership = Ownership::new(selector)
        .kind::<Secret>()
        .kind::<ConfigMap>()
        .kind::<Role>()
        .kind::<RoleBinding>();
    DesiredSet::new(Some(ownership))
}

/// The logins' objects as one set that owns every `trino-auth` object of the lake (what it
/// does not hold is pruned): the password file's Secret, the CA ConfigMap (`ca`: the CA
/// certificate), each login's Secret and reader Role.
pub fn desired_set(
    lake: &DataLake,
    logins: &[Login],
    keys: &Keyring,
    ca: &str,
) -> Result<DesiredSet, serde_json::Error> {
    let mut set = no_logins(lake);
    set.add(&ConfigMap {
        metadata: owned_meta(lake, ca_config_map_name(lake), COMPONENT),
        data: Some(BTreeMap::from([(CA_FILE.to_string(), ca.to_string())])),
        ..Default::default()
    })?;
    set.add(&secret(
        lake,
        password_secret_name(lake),
        COMPONENT,
        BTreeMap::from([(PASSWORD_FILE.into(), password_file(logins, keys))]),
    ))?;
    for l in logins {
        let data = BTreeMap::from([
            (USER_KEY.to_string(), l.login.clone()),
            (PASSWORD_KEY.to_string(), l.password.clone()),
            (URI_KEY.to_string(), https_uri(lake)),
        ]);
        let mut login = secret(lake, l.secret_name.clone(), COMPONENT, data);
        login.metadata.annotations = Some(BTreeMap::from([(
            "lakeform.dev/trino-user".to_string(),
            l.user.clone(),
        )]));
        set.add(&login)?;
        if !l.readers.is_empty() {
            let (role, binding) = reader_role(lake, &l.secret_name, COMPONENT, &l.readers);
            set.add(&role)?;
            set.add(&binding)?;
        }
    }
    Ok(set)
}

/// An owned Opaque Secret of `component`.
fn secret(
    lake: &DataLake,
    name: String,
    component: &str,
    data: BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: owned_meta(lake, bounded(&name, "", 253), component),
        string_data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::connection::tests::lake;

    const LAKE: &str = "  storage:\n    external:\n      endpoint: http://minio.data:9000\n      region: eu-1\n      credentials: {secretName: s3-creds}\n  zones: [{name: raw}]\n  queryEngine:\n    trino:\n      image: trino:476\n    workgroups: [{name: capped, users: [carol, alice]}]\n";

    fn grant(name: &str, principal: &str) -> Grant {
        let yaml = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Grant\nmetadata: {{name: {name}, namespace: data}}\nspec:\n  lakeRef: {{name: lake}}\n  principal: {principal}\n  resource: {{database: sales}}\n  permissions: [SELECT]\n"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn keys() -> Keyring {
        Keyring::new("k3y").unwrap()
    }

    #[test]
    fn one_login_per_principal_workgroup_user_and_the_admin() {
        let l = lake(LAKE);
        let grants = [
            grant("a", "{kind: User, name: alice}"),
            grant("b", "{kind: ServiceAccount, name: etl}"),
            grant("c", "{kind: Group, name: analysts}"),
            grant("d", "{kind: User, name: 'oidc:eve'}"),
            grant("e", "{kind: User, name: lakeform}"),
        ];
        let logins = compile(&l, &grants, &keys());
        let names: Vec<(&str, &str, &str)> = logins
            .iter()
            .map(|l| (l.login.as_str(), l.user.as_str(), l.secret_name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("alice", "alice", "sales-trino-user-alice"),
                ("carol", "carol", "sales-trino-user-carol"),
                (
                    "group/analysts",
                    "group/analysts",
                    "sales-trino-group-analysts"
                ),
                ("lakeform", "lakeform", "sales-trino-admin"),
                (
                    "system/serviceaccount/data/etl",
                    "system:serviceaccount:data:etl",
                    logins[4].secret_name.as_str()
                ),
            ]
        );
        assert!(logins[4].secret_name.starts_with("sales-trino-sa-etl-"));
        assert!(
            logins[3].readers.is_empty(),
            "the admin's Secret has no reader Role"
        );
        assert_eq!(logins[0].readers[0].kind, "User");
        assert_eq!(logins[4].readers[0].namespace.as_deref(), Some("data"));
    }

    #[test]
    fn passwords_are_derived_per_login_and_key() {
        let l = lake(LAKE);
        let a = compile(&l, &[], &keys());
        let b = compile(&l, &[], &keys());
        let c = compile(&l, &[], &Keyring::new("other").unwrap());
        assert_eq!(a, b, "stable: a reconcile rewrites nothing");
        assert_ne!(a[0].password, c[0].password);
        assert_ne!(a[0].password, a[1].password);
        assert_eq!(a[0].password.len(), 40);
    }

    #[test]
    fn password_file_verifies_like_trino() {
        // Trino's EncryptionUtil: PBKDF2WithHmacSHA1, key length = hash bytes × 8.
        let l = lake(LAKE);
        let logins = compile(&l, &[], &keys());
        let file = password_file(&logins, &keys());
        assert_eq!(file.lines().count(), logins.len());
        for (line, login) in file.lines().zip(&logins) {
            let (user, hash) = line.split_once(':').unwrap();
            assert_eq!(user, login.login);
            let parts: Vec<&str> = hash.split(':').collect();
            assert_eq!(parts[0], "1000");
            let salt = hex::decode(parts[1]).unwrap();
            assert_eq!(salt.len(), 16);
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<Sha1>(login.password.as_bytes(), &salt, 1000, &mut out);
            assert_eq!(hex::encode(out), parts[2]);
            pbkdf2::pbkdf2_hmac::<Sha1>(b"wrong", &salt, 1000, &mut out);
            assert_ne!(hex::encode(out), parts[2]);
        }
    }

    #[test]
    fn pbkdf2_sha1_matches_rfc_6070() {
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(b"password", b"salt", 2, &mut out);
        assert_eq!(hex::encode(out), "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
    }

    #[test]
    fn logins_and_users_round_trip() {
        for user in ["alice", "group/analysts", "system:serviceaccount:data:etl"] {
            let p = principal_of_user(user);
            assert_eq!(trino_user(&p), user);
        }
        let sa = principal_of_user("system:serviceaccount:data:etl");
        assert_eq!(
            login_name(&sa).as_deref(),
            Some("system/serviceaccount/data/etl")
        );
        for name in ["oidc:eve", "lakeform", "system/x", "group/x"] {
            let user = Principal {
                kind: PrincipalKind::User,
                name: name.into(),
                namespace: None,
            };
            assert_eq!(login_name(&user), None, "{name}");
        }
        assert_eq!(login_name(&principal_of_user("group/a:b")), None);
    }

    #[test]
    fn user_mapping_turns_service_account_logins_into_their_users() {
        let mapping = user_mapping();
        let rule = &mapping["rules"][0];
        let re = regex::Regex::new(&format!("^{}$", rule["pattern"].as_str().unwrap())).unwrap();
        let caps = re.captures("system/serviceaccount/data/etl.v2").unwrap();
        assert_eq!((&caps[1], &caps[2]), ("data", "etl.v2"));
        assert!(re.captures("system/serviceaccount/data/a/b").is_none());
    }

    #[test]
    fn secrets_and_reader_roles_are_the_logins() {
        let l = lake(LAKE);
        let grants = [grant("a", "{kind: User, name: alice}")];
        let logins = compile(&l, &grants, &keys());
        let set = desired_set(&l, &logins, &keys(), "CA").unwrap();
        let debug = format!("{set:?}");
        for name in [
            "sales-trino-passwords",
            "sales-trino-admin",
            "sales-trino-user-alice",
            "sales-trino-user-alice-reader",
            "sales-trino-ca",
        ] {
            assert!(debug.contains(name), "{name} in {debug}");
        }
        assert!(!debug.contains("sales-trino-admin-reader"));
    }
}
