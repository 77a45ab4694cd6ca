//! A Crawler's Kubernetes objects: its ServiceAccount with a least-privilege Role, the CronJob of
//! its schedule, and the Job of an on-demand run. Every pod runs `lakeform crawl --crawler
//! <ns>/<name>` with the worker image and reads what it needs with its own ServiceAccount.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapKeySelector, Container, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use lakeform_api::common::GROUP;
use lakeform_api::connection::ENV_CREDENTIALS_SECRET;
use lakeform_api::crawler::{CrawlSchedule, Crawler};
use lakeform_api::datalake::DataLake;

use super::meta::{bounded, labels, restricted, short_hash};

/// Component label of a crawler's objects.
pub const COMPONENT: &str = "crawler";
/// Label naming the Crawler an object (Job, pod, …) belongs to.
pub const LABEL_CRAWLER: &str = "lakeform.dev/crawler";
/// Label saying what started a Job: `schedule` (the CronJob), `on-demand` or `events`.
pub const LABEL_TRIGGER: &str = "lakeform.dev/trigger";
/// Trigger label value of the Jobs that crawl a batch of bucket notifications.
pub const TRIGGER_EVENTS: &str = "events";
/// Environment variable with the keys (`bucket/key` lines) an event-batch crawl examines.
pub const KEYS_ENV: &str = lakeform_worker::crawl::KEYS_ENV;
/// Key of the keys file in an event batch's ConfigMap.
pub const KEYS_FILE: &str = "keys";
/// Annotation on a Crawler that asks for a run now; on a run Job, the token that started it.
pub const RUN_ANNOTATION: &str = "lakeform.dev/run";
/// Label the Job controller puts on a Job's pods; the pod reads its Job name from it.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Environment variable the worker reads the Job name from.
pub const JOB_NAME_ENV: &str = "LAKEFORM_JOB_NAME";
/// Finished Jobs of each kind (schedule: successful/failed; on demand: any) kept for inspection.
pub const HISTORY_LIMIT: i32 = 3;
/// A scheduled run that could not start within this many seconds is skipped.
pub const STARTING_DEADLINE_SECONDS: i64 = 300;
/// Kubernetes limit of a CronJob name (the Job controller appends 11 characters).
const CRONJOB_NAME_MAX: usize = 52;
/// Kubernetes limit of a Job name (it becomes a label value).
const JOB_NAME_MAX: usize = 63;

/// The ServiceAccount (and Role, RoleBinding) of the crawler's pods: `<crawler>-crawler`.
pub fn service_account_name(crawler: &Crawler) -> String {
    service_account_name_for(&crawler.name_any())
}

/// [`service_account_name`] of the Crawler named `name`.
pub fn service_account_name_for(name: &str) -> String {
    bounded(name, "-crawler", 253)
}

/// The CronJob of the schedule: `<crawler>-crawl`.
pub fn cronjob_name(crawler: &Crawler) -> String {
    bounded(&crawler.name_any(), "-crawl", CRONJOB_NAME_MAX)
}

/// True when `job` is a run of `crawler`: owned by it (on demand) or by its CronJob.
pub fn belongs_to(job: &Job, crawler: &Crawler) -> bool {
    let uid = crawler.uid();
    job.owner_references().iter().any(|o| {
        (o.kind == "Crawler" && Some(&o.uid) == uid.as_ref())
            || (o.kind == "CronJob" && o.name == cronjob_name(crawler))
    })
}

/// The Job of the on-demand run started by `token`: `<crawler>-run-<hash of token>`. The same
/// token always names the same Job, so a token can never start two.
pub fn run_job_name(crawler: &Crawler, token: &str) -> String {
    let suffix = format!("-run-{}", short_hash(token, 10));
    bounded(&crawler.name_any(), &suffix, JOB_NAME_MAX)
}

/// The Secret with the S3 credentials the crawl uses: the external storage's `secretRef`, or
/// in managed MinIO the Crawler's own identity (`identity::crawler_secret_name`: a user that
/// may read its targets and write its database, never the root keys).
pub fn credentials_secret_name(crawler: &Crawler, lake: &DataLake) -> String {
    match &lake.spec.storage.external {
        Some(ext) => ext.credentials.secret_name.clone(),
        None => super::identity::crawler_secret_name(&crawler.name_any()),
    }
}

/// `<namespace>/<name>` of the crawler, as `lakeform crawl --crawler` takes it.
pub fn crawler_ref(crawler: &Crawler) -> String {
    format!(
        "{}/{}",
        crawler.namespace().unwrap_or_default(),
        crawler.name_any()
    )
}

/// Labels of every object of the crawler: lakeform's, part of the lake, and the crawler's name.
pub fn crawler_labels(crawler: &Crawler, lake: &DataLake) -> BTreeMap<String, String> {
    let mut l = labels(&lake.name_any(), COMPONENT);
    l.insert(LABEL_CRAWLER.into(), label_value(&crawler.name_any()));
    l
}

/// A label value for a name (names longer than 63 characters are shortened with a hash).
pub fn label_value(name: &str) -> String {
    bounded(name, "", 63)
}

fn meta(crawler: &Crawler, lake: &DataLake, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: crawler.namespace(),
        labels: Some(crawler_labels(crawler, lake)),
        owner_references: crawler.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The ServiceAccount the crawl pods run as.
pub fn service_account(crawler: &Crawler, lake: &DataLake) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(crawler, lake, service_account_name(crawler)),
        ..Default::default()
    }
}

pub(crate) fn rule(group: &str, resource: &str, name: String, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        resource_names: Some(vec![name]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// Exactly what a crawl needs: read its Crawler, read and patch its status, read its DataLake
/// and the lake's S3 credentials Secret — each by name, nothing else.
pub fn role(crawler: &Crawler, lake: &DataLake) -> Role {
    let name = crawler.name_any();
    Role {
        metadata: meta(crawler, lake, service_account_name(crawler)),
        rules: Some(vec![
            rule(GROUP, "crawlers", name.clone(), &["get"]),
            rule(GROUP, "crawlers/status", name, &["get", "patch"]),
            rule(GROUP, "datalakes", lake.name_any(), &["get"]),
            rule(
                "",
                "secrets",
                credentials_secret_name(crawler, lake),
                &["get"],
            ),
        ]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(crawler: &Crawler, lake: &DataLake) -> RoleBinding {
    let name = service_account_name(crawler);
    bind_own_role(meta(crawler, lake, name))
}

/// Binds the Role named like `metadata` to the ServiceAccount of that name in its namespace.
pub(crate) fn bind_own_role(metadata: ObjectMeta) -> RoleBinding {
    let name = metadata.name.clone().unwrap_or_default();
    RoleBinding {
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: metadata.namespace.clone(),
            ..Default::default()
        }]),
        metadata,
    }
}

fn pod_template(
    crawler: &Crawler,
    lake: &DataLake,
    image: &str,
    trigger: &str,
    extra_env: Vec<EnvVar>,
) -> PodTemplateSpec {
    let mut env = vec![EnvVar {
        name: JOB_NAME_ENV.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.labels['{JOB_NAME_LABEL}']"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if lake.spec.storage.external.is_none() {
        env.push(EnvVar {
            name: ENV_CREDENTIALS_SECRET.into(),
            value: Some(credentials_secret_name(crawler, lake)),
            ..Default::default()
        });
    }
    env.extend(extra_env);
    let mut pod_labels = crawler_labels(crawler, lake);
    pod_labels.insert(LABEL_TRIGGER.into(), trigger.into());
    let container = Container {
        name: "crawl".into(),
        image: Some(image.into()),
        command: Some(vec![
            "lakeform".into(),
            "crawl".into(),
            "--crawler".into(),
            crawler_ref(crawler),
        ]),
        env: Some(env),
        // The crawler bounds what it holds (samples, 16 MiB whole reads, 512 MiB per ingested
        // object); the limit makes the node enforce it.
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("100m".into())),
                ("memory".to_string(), Quantity("256Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity(CRAWL_MEMORY_LIMIT.into()),
            )])),
            ..Default::default()
        }),
        security_context: Some(restricted()),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            service_account_name: Some(service_account_name(crawler)),
            restart_policy: Some("Never".into()),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(65532),
                run_as_group: Some(65532),
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// A crawl run's deadline when `spec.timeoutSeconds` is unset.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 3600;
/// Memory limit of a crawl pod: room for one 512 MiB object (`MAX_OBJECT_BYTES` of the worker),
/// its Arrow batches and the Parquet writer.
pub const CRAWL_MEMORY_LIMIT: &str = "2Gi";

fn job_spec(
    crawler: &Crawler,
    lake: &DataLake,
    image: &str,
    trigger: &str,
    extra_env: Vec<EnvVar>,
) -> JobSpec {
    JobSpec {
        // A failed crawl is reported, not retried at once: the next run (schedule or token)
        // starts afresh.
        backoff_limit: Some(0),
        active_deadline_seconds: Some(
            crawler
                .spec
                .timeout_seconds
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        ),
        template: pod_template(crawler, lake, image, trigger, extra_env),
        ..Default::default()
    }
}

/// The CronJob that runs the crawl on `schedule`. Runs never overlap (`Forbid`); three
/// successful and three failed Jobs are kept.
pub fn cronjob(
    crawler: &Crawler,
    lake: &DataLake,
    schedule: &CrawlSchedule,
    image: &str,
) -> CronJob {
    let mut job_labels = crawler_labels(crawler, lake);
    job_labels.insert(LABEL_TRIGGER.into(), "schedule".into());
    CronJob {
        metadata: meta(crawler, lake, cronjob_name(crawler)),
        spec: Some(CronJobSpec {
            schedule: schedule.cron.clone(),
            time_zone: schedule.time_zone.clone(),
            suspend: Some(schedule.suspend),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(HISTORY_LIMIT),
            failed_jobs_history_limit: Some(HISTORY_LIMIT),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..Default::default()
                }),
                spec: Some(job_spec(crawler, lake, image, "schedule", Vec::new())),
            },
        }),
        ..Default::default()
    }
}

/// The Job of an on-demand run, named from its token ([`run_job_name`]) and annotated with it.
pub fn run_job(crawler: &Crawler, lake: &DataLake, token: &str, image: &str) -> Job {
    token_job(crawler, lake, token, image, "on-demand", Vec::new())
}

/// A Job named and annotated from `token`, started by `trigger`.
fn token_job(
    crawler: &Crawler,
    lake: &DataLake,
    token: &str,
    image: &str,
    trigger: &str,
    extra_env: Vec<EnvVar>,
) -> Job {
    let mut metadata = meta(crawler, lake, run_job_name(crawler, token));
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_TRIGGER.into(), trigger.into());
    metadata.annotations = Some(BTreeMap::from([(
        RUN_ANNOTATION.to_string(),
        token.to_string(),
    )]));
    Job {
        metadata,
        spec: Some(job_spec(crawler, lake, image, trigger, extra_env)),
        ..Default::default()
    }
}

/// The token of an event batch: `events-` and a hash of its keys, so one batch names one Job
/// however often its start is attempted.
pub fn events_token(keys: &[String]) -> String {
    format!("events-{}", short_hash(&keys.join("\n"), 16))
}

/// The ConfigMap holding the keys of an event batch (`<job>-keys`, key [`KEYS_FILE`], one
/// `bucket/key` per line). Created owned by the Crawler, then handed to its Job.
pub fn events_keys(crawler: &Crawler, lake: &DataLake, token: &str, keys: &[String]) -> ConfigMap {
    let mut metadata = meta(crawler, lake, events_keys_name(crawler, token));
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_TRIGGER.into(), TRIGGER_EVENTS.into());
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(KEYS_FILE.to_string(), keys.join("\n"))])),
        ..Default::default()
    }
}

/// Name of the keys ConfigMap of the batch `token`.
pub fn events_keys_name(crawler: &Crawler, token: &str) -> String {
    format!("{}-keys", run_job_name(crawler, token))
}

/// The Job crawling one event batch: the crawl reads the batch's keys from
/// [`KEYS_ENV`] (resolved from the keys ConfigMap) and examines only those objects.
pub fn events_job(crawler: &Crawler, lake: &DataLake, token: &str, image: &str) -> Job {
    let keys = EnvVar {
        name: KEYS_ENV.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: events_keys_name(crawler, token),
                key: KEYS_FILE.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    token_job(crawler, lake, token, image, TRIGGER_EVENTS, vec![keys])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IMAGE: &str = "ghcr.io/lakeform/lakeform:0.1.0";

    fn crawler(yaml_spec: &str) -> Crawler {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Crawler\nmetadata: {{name: orders, namespace: team, uid: c-1}}\nspec:\n{yaml_spec}"
        );
        serde_yaml::from_str(&doc).expect("crawler fixture parses")
    }

    fn lake(yaml_spec: &str) -> DataLake {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: DataLake\nmetadata: {{name: sales, namespace: team, uid: l-1}}\nspec:\n{yaml_spec}"
        );
        serde_yaml::from_str(&doc).expect("lake fixture parses")
    }

    const CRAWLER: &str = "  lakeRef: {name: sales}\n  database: landing\n  targets: [{zone: raw, prefix: orders/}]\n  schedule: {cron: '*/15 * * * *', timeZone: Europe/Paris}\n";
    const EXTERNAL: &str = "  storage:\n    external:\n      endpoint: http://minio:9000\n      credentials: {secretName: s3-creds}\n  zones: [{name: raw}]\n";
    const MANAGED: &str = "  storage:\n    managed: {}\n  zones: [{name: raw}]\n";

    fn owned_by_crawler(meta: &ObjectMeta) {
        let owners = meta.owner_references.as_ref().expect("owner references");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "Crawler");
        assert_eq!(owners[0].name, "orders");
        assert_eq!(owners[0].uid, "c-1");
        assert_eq!(owners[0].controller, Some(true));
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "lakeform");
        assert_eq!(labels["app.kubernetes.io/part-of"], "sales");
        assert_eq!(labels[LABEL_CRAWLER], "orders");
        assert_eq!(meta.namespace.as_deref(), Some("team"));
    }

    #[test]
    fn role_allows_exactly_the_crawlers_own_objects() {
        let c = crawler(CRAWLER);
        let l = lake(EXTERNAL);
        let role = role(&c, &l);
        assert_eq!(role.metadata.name.as_deref(), Some("orders-crawler"));
        owned_by_crawler(&role.metadata);
        let rules = serde_json::to_value(role.rules.expect("rules")).expect("json");
        assert_eq!(
            rules,
            json!([
                {"apiGroups": ["lakeform.dev"], "resources": ["crawlers"], "resourceNames": ["orders"], "verbs": ["get"]},
                {"apiGroups": ["lakeform.dev"], "resources": ["crawlers/status"], "resourceNames": ["orders"], "verbs": ["get", "patch"]},
                {"apiGroups": ["lakeform.dev"], "resources": ["datalakes"], "resourceNames": ["sales"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s3-creds"], "verbs": ["get"]},
            ])
        );
        let managed = super::role(&c, &lake(MANAGED));
        assert_eq!(
            managed.rules.expect("rules")[3].resource_names,
            Some(vec!["orders-crawler-s3".to_string()])
        );
    }

    #[test]
    fn crawl_jobs_have_a_deadline_and_a_memory_limit() {
        let l = lake(EXTERNAL);
        let deadline = |c: &Crawler| {
            let job = token_job(c, &l, "t1", IMAGE, TRIGGER_EVENTS, Vec::new());
            let spec = job.spec.expect("spec");
            let pod = spec.template.spec.expect("pod");
            let limits = pod.containers[0]
                .resources
                .as_ref()
                .and_then(|r| r.limits.clone())
                .expect("limits");
            assert_eq!(limits["memory"], Quantity("2Gi".into()));
            spec.active_deadline_seconds
        };
        assert_eq!(deadline(&crawler(CRAWLER)), Some(3600));
        let short = crawler(&format!("{CRAWLER}  timeoutSeconds: 120\n"));
        assert_eq!(deadline(&short), Some(120));
    }

    #[test]
    fn service_account_and_binding() {
        let c = crawler(CRAWLER);
        let l = lake(EXTERNAL);
        let sa = service_account(&c, &l);
        assert_eq!(sa.metadata.name.as_deref(), Some("orders-crawler"));
        owned_by_crawler(&sa.metadata);
        let rb = role_binding(&c, &l);
        owned_by_crawler(&rb.metadata);
        assert_eq!(
            serde_json::to_value(&rb.role_ref).expect("json"),
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "orders-crawler"})
        );
        assert_eq!(
            serde_json::to_value(rb.subjects.expect("subjects")).expect("json"),
            json!([{"kind": "ServiceAccount", "name": "orders-crawler", "namespace": "team"}])
        );
    }

    #[test]
    fn cronjob_runs_the_worker_on_the_schedule() {
        let c = crawler(CRAWLER);
        let l = lake(EXTERNAL);
        let schedule = c.spec.schedule.clone().expect("schedule");
        let cj = cronjob(&c, &l, &schedule, IMAGE);
        assert_eq!(cj.metadata.name.as_deref(), Some("orders-crawl"));
        owned_by_crawler(&cj.metadata);
        let spec = serde_json::to_value(cj.spec.expect("spec")).expect("json");
        assert_eq!(spec["schedule"], "*/15 * * * *");
        assert_eq!(spec["timeZone"], "Europe/Paris");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["concurrencyPolicy"], "Forbid");
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 3);
        assert_eq!(spec["startingDeadlineSeconds"], 300);
        let jt = &spec["jobTemplate"];
        assert_eq!(jt["metadata"]["labels"][LABEL_CRAWLER], "orders");
        assert_eq!(jt["metadata"]["labels"][LABEL_TRIGGER], "schedule");
        assert_eq!(jt["spec"]["backoffLimit"], 0);
        let pod = &jt["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"],
            json!({
                "app.kubernetes.io/managed-by": "lakeform",
                "app.kubernetes.io/part-of": "sales",
                "app.kubernetes.io/instance": "sales",
                "app.kubernetes.io/component": "crawler",
                "lakeform.dev/crawler": "orders",
                "lakeform.dev/trigger": "schedule",
            })
        );
        assert_eq!(pod["spec"]["serviceAccountName"], "orders-crawler");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["image"], IMAGE);
        assert_eq!(
            container["command"],
            json!(["lakeform", "crawl", "--crawler", "team/orders"])
        );
        assert_eq!(
            container["env"],
            json!([{"name": "LAKEFORM_JOB_NAME", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}}])
        );
        assert!(
            container.get("args").is_none(),
            "no secret or argument inlined"
        );
    }

    #[test]
    fn suspended_schedule_without_time_zone() {
        let c = crawler(
            "  lakeRef: {name: sales}\n  database: landing\n  targets: [{zone: raw}]\n  schedule: {cron: '@hourly', suspend: true}\n",
        );
        let schedule = c.spec.schedule.clone().expect("schedule");
        let cj = cronjob(&c, &lake(EXTERNAL), &schedule, IMAGE);
        let spec = cj.spec.expect("spec");
        assert_eq!(spec.schedule, "@hourly");
        assert_eq!(spec.time_zone, None);
        assert_eq!(spec.suspend, Some(true));
    }

    #[test]
    fn on_demand_job_is_named_from_its_token() {
        let c = crawler(CRAWLER);
        let l = lake(EXTERNAL);
        let job = run_job(&c, &l, "2026-11-25T08:00", IMAGE);
        let name = job.metadata.name.clone().expect("name");
        assert!(name.starts_with("orders-run-"), "{name}");
        assert_eq!(name.len(), "orders-run-".len() + 10);
        assert_eq!(name, run_job_name(&c, "2026-11-25T08:00"));
        assert_ne!(name, run_job_name(&c, "2026-11-25T09:00"));
        owned_by_crawler(&job.metadata);
        assert_eq!(
            job.metadata.annotations.as_ref().expect("annotations")[RUN_ANNOTATION],
            "2026-11-25T08:00"
        );
        assert_eq!(
            job.metadata.labels.as_ref().expect("labels")[LABEL_TRIGGER],
            "on-demand"
        );
        let pod = job.spec.expect("spec").template;
        assert_eq!(
            pod.metadata.expect("meta").labels.expect("labels")[LABEL_TRIGGER],
            "on-demand"
        );
        let ps = pod.spec.expect("pod spec");
        assert_eq!(ps.service_account_name.as_deref(), Some("orders-crawler"));
        assert_eq!(ps.restart_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn long_names_stay_within_kubernetes_limits() {
        let long = "a".repeat(120);
        let c = crawler(CRAWLER);
        let mut c2 = c.clone();
        c2.metadata.name = Some(long.clone());
        let cj = cronjob_name(&c2);
        assert!(cj.len() <= 52 && cj.ends_with("-crawl"), "{cj}");
        let job = run_job_name(&c2, "t");
        assert!(job.len() <= 63 && job.contains("-run-"), "{job}");
        assert!(label_value(&long).len() <= 63);
        let mut c3 = c.clone();
        c3.metadata.name = Some(format!("{long}b"));
        assert_ne!(
            cronjob_name(&c2),
            cronjob_name(&c3),
            "hash keeps names apart"
        );
    }
}
