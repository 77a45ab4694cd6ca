//! The managed catalog's PostgreSQL: a one-replica StatefulSet, its headless Service and its
//! generated-password Secret. Shared by both managed catalog servers (Lakekeeper and Nessie
//! keep their metadata in it).
//!
//! The container follows the official `postgres` image's contract (`POSTGRES_USER`,
//! `POSTGRES_PASSWORD`, `POSTGRES_DB`, `PGDATA`, uid 999, `pg_isready` on the `PATH`), which
//! the e2e suite's Debian-built image honours too. The generated Secret carries no owner
//! reference: with `deletionPolicy: Retain` it outlives the DataLake, so that a DataLake
//! re-created under the same name reaches its retained volume again.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, PodSpec, PodTemplateSpec, Probe, Secret, Service,
    ServiceSpec, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use lakeform_api::datalake::{DataLake, ManagedCatalog, ManagedPostgres};

use super::connection::{plain_env, secret_env};
use super::meta::{
    data_claim, kept_meta, labels, owned_meta, pod_security, restricted, selector, service_port,
    volume_policy,
};

/// Component label of the catalog's PostgreSQL.
pub const COMPONENT: &str = "catalog-db";

/// PostgreSQL port.
pub const PG_PORT: i32 = 5432;

/// Database user of the managed PostgreSQL.
pub const PG_USER: &str = "catalog";

/// Database name of the managed PostgreSQL.
pub const PG_DATABASE: &str = "catalog";

/// Secret key of the generated database user name.
pub const PG_USER_KEY: &str = "username";

/// Secret key of the generated database password.
pub const PG_PASSWORD_KEY: &str = "password";

/// The `postgres` user of the official PostgreSQL image.
const POSTGRES_UID: i64 = 999;

/// Where the PostgreSQL volume is mounted; the data directory is a subfolder so that a
/// `lost+found` at the volume root does not break `initdb` (works for the 17 and 18 images).
const PG_MOUNT: &str = "/var/lib/postgresql";

const PG_DATA: &str = "/var/lib/postgresql/pgdata";

/// Name of the PostgreSQL StatefulSet and its headless Service.
pub fn name(lake: &DataLake) -> String {
    format!("{}-catalog-pg", lake.name_any())
}

/// Name of the generated-password Secret of the managed PostgreSQL.
pub fn secret_name(lake: &DataLake) -> String {
    format!("{}-catalog-pg", lake.name_any())
}

/// Host of the managed PostgreSQL (its headless Service).
pub fn host(lake: &DataLake) -> String {
    format!(
        "{}.{}.svc.cluster.local",
        name(lake),
        lake.namespace().unwrap_or_default()
    )
}

/// The generated-password Secret of the managed PostgreSQL. Created once by the controller
/// (which generates the password) and never rewritten.
pub fn secret(lake: &DataLake, password: &str) -> Secret {
    Secret {
        metadata: kept_meta(lake, secret_name(lake), COMPONENT),
        string_data: Some(BTreeMap::from([
            (PG_USER_KEY.to_string(), PG_USER.to_string()),
            (PG_PASSWORD_KEY.to_string(), password.to_string()),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The headless Service of the managed PostgreSQL (also the StatefulSet's `serviceName`).
pub fn service(lake: &DataLake) -> Service {
    Service {
        metadata: owned_meta(lake, name(lake), COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(selector(&lake.name_any(), COMPONENT)),
            ports: Some(vec![service_port("postgres", PG_PORT)]),
            cluster_ip: Some("None".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The managed PostgreSQL StatefulSet (one replica), used when `database.existing` is unset.
pub fn statefulset(lake: &DataLake, pg: &ManagedPostgres) -> StatefulSet {
    let ready = Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "pg_isready".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-U".into(),
                PG_USER.into(),
                "-d".into(),
                PG_DATABASE.into(),
            ]),
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(6),
        ..Default::default()
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(pg.image.clone()),
        env: Some(vec![
            secret_env("POSTGRES_USER", &secret_name(lake), PG_USER_KEY),
            secret_env("POSTGRES_PASSWORD", &secret_name(lake), PG_PASSWORD_KEY),
            plain_env("POSTGRES_DB", PG_DATABASE),
            plain_env("PGDATA", PG_DATA),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: PG_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: PG_MOUNT.into(),
            ..Default::default()
        }]),
        readiness_probe: Some(ready.clone()),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(30),
            ..ready
        }),
        resources: pg.resources.clone(),
        security_context: Some(restricted()),
        ..Default::default()
    };
    let claim = data_claim(pg.storage_class.clone(), pg.volume_size.clone());
    StatefulSet {
        metadata: owned_meta(lake, name(lake), COMPONENT),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name(lake)),
            selector: LabelSelector {
                match_labels: Some(selector(&lake.name_any(), COMPONENT)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&lake.name_any(), COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security(POSTGRES_UID)),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(volume_policy(
                &lake.spec.storage.deletion_policy,
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The managed PostgreSQL settings, or `None` when an existing database is referenced.
pub fn managed(spec: &ManagedCatalog) -> Option<ManagedPostgres> {
    if spec.database.existing.is_some() {
        return None;
    }
    Some(spec.database.managed.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::connection::tests::lake;

    const MANAGED: &str = "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed:\n      database:\n        managed: {volumeSize: 8Gi, storageClass: fast}\n";

    fn catalog(l: &DataLake) -> &ManagedCatalog {
        l.spec
            .catalog
            .as_ref()
            .and_then(|c| c.managed.as_ref())
            .expect("managed catalog")
    }

    fn secret_ref(env: &[k8s_openapi::api::core::v1::EnvVar], var: &str) -> (String, String) {
        let e = env.iter().find(|e| e.name == var).expect(var);
        let r = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        (r.name.clone(), r.key.clone())
    }

    #[test]
    fn postgres_statefulset_and_headless_service() {
        let l = lake(MANAGED);
        let pg = managed(catalog(&l)).expect("managed postgres");
        let sts = statefulset(&l, &pg);
        assert_eq!(sts.metadata.name.as_deref(), Some("sales-catalog-pg"));
        let spec = sts.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("sales-catalog-pg"));
        let c = &spec.template.spec.as_ref().expect("pod").containers[0];
        assert_eq!(c.image.as_deref(), Some("docker.io/library/postgres:17"));
        let env = c.env.as_ref().expect("env");
        assert_eq!(
            secret_ref(env, "POSTGRES_PASSWORD"),
            ("sales-catalog-pg".into(), "password".into())
        );
        let claim = &spec.volume_claim_templates.as_ref().expect("pvc")[0];
        let claim_spec = claim.spec.as_ref().expect("pvc spec");
        assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            claim_spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .map(|r| r["storage"].0.as_str()),
            Some("8Gi")
        );
        let svc = service(&l);
        let svc_spec = svc.spec.as_ref().expect("spec");
        assert_eq!(svc_spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(svc_spec.ports.as_ref().expect("ports")[0].port, 5432);
        let sel = svc_spec.selector.as_ref().expect("selector");
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .expect("labels");
        assert!(sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));

        // Defaults apply when `database` is omitted.
        let bare = lake(
            "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed: {}\n",
        );
        let pg = managed(catalog(&bare)).expect("defaults");
        assert_eq!(pg.volume_size.0, "5Gi");
    }

    #[test]
    fn volumes_and_password_outlive_the_lake_only_under_retain() {
        let l = lake(MANAGED);
        let s = secret(&l, "pw");
        assert!(s.metadata.owner_references.is_none(), "kept, not owned");
        let policy = |l: &DataLake| {
            let pg = managed(catalog(l)).expect("pg");
            statefulset(l, &pg)
                .spec
                .and_then(|s| s.persistent_volume_claim_retention_policy)
                .and_then(|p| p.when_deleted)
        };
        assert_eq!(policy(&l).as_deref(), Some("Retain"));
        let deleting = lake(&MANAGED.replace(
            "managed: {}\n  zones",
            "managed: {}\n    deletionPolicy: Delete\n  zones",
        ));
        assert_eq!(policy(&deleting).as_deref(), Some("Delete"));
    }
}
