//! A Workflow's objects: the WorkflowRuns its triggers create and the Job of each step attempt.
//! Every step pod gets the run's identity (`LAKEFORM_WORKFLOW`, `LAKEFORM_RUN_ID`,
//! `LAKEFORM_STEP`, `LAKEFORM_ATTEMPT`), the run parameters (`LAKEFORM_PARAM_<NAME>`) and the
//! lake's connection (endpoints, and the credentials by `secretKeyRef`).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use lakeform_api::common::LocalRef;
use lakeform_api::connection::{ENV_CREDENTIALS_SECRET, identity_credentials};
use lakeform_api::datalake::DataLake;
use lakeform_api::validate::parse_duration;
use lakeform_api::workflow::{ExtractMode, Step, Workflow};
use lakeform_api::workflow_run::{WorkflowRun, WorkflowRunSpec};
use lakeform_worker::step as step_env;

use super::connection::{LakeEndpoints, plain_env, secret_env};
use super::crawler::{RUN_ANNOTATION, service_account_name_for};
use super::meta::{bounded, labels, short_hash};
use super::workflow_access;
use super::workflow_events;

/// Component label of workflow objects.
pub const COMPONENT: &str = "workflow";
/// Label naming the Workflow of a run or Job.
pub const LABEL_WORKFLOW: &str = "lakeform.dev/workflow";
/// Label naming the WorkflowRun of a Job.
pub const LABEL_RUN: &str = "lakeform.dev/workflow-run";
/// Label naming the step of a Job.
pub const LABEL_STEP: &str = "lakeform.dev/step";
/// Label saying which trigger created a run (`schedule-<trigger>`, `on-demand`).
pub const LABEL_TRIGGER: &str = "lakeform.dev/trigger";
/// Annotation on a run that asks it to stop (`concurrencyPolicy: Replace`).
pub const CANCEL_ANNOTATION: &str = "lakeform.dev/cancel";
/// Annotation on a scheduled run: the time it was scheduled for.
pub const SCHEDULED_ANNOTATION: &str = "lakeform.dev/scheduled-time";
/// Annotation on a run started by an `afterWorkflow` trigger: the upstream run.
pub const AFTER_ANNOTATION: &str = "lakeform.dev/after-run";
/// Prefix of the parameter variables.
pub const PARAM_PREFIX: &str = "LAKEFORM_PARAM_";

/// Why a step cannot become a Job.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step kind does not run as a Job (spark steps are SparkApplications) or has no kind.
    #[error("step {step:?}: {kind} steps do not run as Jobs")]
    Unsupported { step: String, kind: &'static str },
    /// `timeout` does not parse (the workflow validation reports it first).
    #[error("step {step:?}: timeout: {message}")]
    Timeout { step: String, message: String },
    /// The step could not be serialized for the Job.
    #[error("step {step:?}: {source}")]
    Spec {
        step: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The kind of a step, as written in the spec.
pub fn step_kind(step: &Step) -> &'static str {
    match step {
        s if s.crawl.is_some() => "crawl",
        s if s.sql.is_some() => "sql",
        s if s.extract.is_some() => "extract",
        s if s.container.is_some() => "container",
        s if s.spark.is_some() => "spark",
        _ => "unknown",
    }
}

/// Whether this version can run steps of the step's kind.
pub fn supported(step: &Step) -> bool {
    step.crawl.is_some()
        || step.container.is_some()
        || step.sql.is_some()
        || step.extract.is_some()
        || step.spark.is_some()
}

/// A label value for a name (shortened with a hash past 63 characters).
pub fn label_value(name: &str) -> String {
    bounded(name, "", 63)
}

pub(crate) fn workflow_labels(workflow: &Workflow) -> BTreeMap<String, String> {
    let mut l = labels(&workflow.spec.lake_ref.name, COMPONENT);
    l.insert(LABEL_WORKFLOW.into(), label_value(&workflow.name_any()));
    l
}

/// The run started by the on-demand token `token`: `<workflow>-<hash of token>`, so a token
/// can never start two runs.
pub fn on_demand_run_name(workflow: &Workflow, token: &str) -> String {
    bounded(
        &workflow.name_any(),
        &format!("-od-{}", short_hash(token, 10)),
        253,
    )
}

/// The run of schedule trigger `trigger` for the scheduled time `at` (unix seconds).
pub fn scheduled_run_name(workflow: &Workflow, trigger: &str, at: i64) -> String {
    bounded(
        &format!("{}-{trigger}", workflow.name_any()),
        &format!("-{}", at / 60),
        253,
    )
}

/// The run an `afterWorkflow` trigger starts for the upstream run `upstream`:
/// `<workflow>-after-<hash of the upstream run>`, so one upstream run starts one run.
pub fn after_run_name(workflow: &Workflow, upstream: &WorkflowRun) -> String {
    let id = format!(
        "{}/{}",
        upstream.name_any(),
        upstream.uid().unwrap_or_default()
    );
    bounded(
        &workflow.name_any(),
        &format!("-after-{}", short_hash(&id, 10)),
        253,
    )
}

/// A WorkflowRun of `workflow` owned by it, started by `trigger`, with `parameters`.
pub fn run(
    workflow: &Workflow,
    name: String,
    trigger: &str,
    parameters: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> WorkflowRun {
    let mut l = workflow_labels(workflow);
    l.insert(LABEL_TRIGGER.into(), trigger.into());
    WorkflowRun {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: workflow.namespace(),
            labels: Some(l),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: workflow.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: WorkflowRunSpec {
            workflow_ref: LocalRef {
                name: workflow.name_any(),
            },
            parameters,
            resume_from: None,
        },
        status: None,
    }
}

/// The Job of `attempt` of `step`: `<run>-<step>-<attempt>`.
pub fn step_job_name(run: &WorkflowRun, step: &str, attempt: i32) -> String {
    bounded(
        &format!("{}-{step}", run.name_any()),
        &format!("-{attempt}"),
        63,
    )
}

/// The parameters a run's steps see: the workflow's defaults overridden by the run's own.
pub fn parameters(workflow: &Workflow, run: &WorkflowRun) -> BTreeMap<String, String> {
    let mut p = workflow.spec.parameters.clone();
    p.extend(run.spec.parameters.clone());
    p
}

/// `LAKEFORM_PARAM_<NAME>`: the name upper-cased, characters other than letters and digits
/// turned into `_`.
pub fn param_var(name: &str) -> String {
    let mut v = String::from(PARAM_PREFIX);
    v.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    v
}

pub(crate) fn env(
    workflow: &Workflow,
    run: &WorkflowRun,
    lake: &DataLake,
    step: &str,
    attempt: i32,
) -> Vec<EnvVar> {
    let ep = LakeEndpoints::for_lake(lake);
    // A managed lake's steps sign with the Workflow's own identity, never the root keys.
    let credentials = match lake.spec.storage.external.is_none() {
        true => identity_credentials(&super::identity::workflow_secret_name(&workflow.name_any())),
        false => ep.credentials.clone(),
    };
    let mut env = vec![
        plain_env("LAKEFORM_WORKFLOW", workflow.name_any()),
        plain_env("LAKEFORM_RUN_ID", run.name_any()),
        plain_env("LAKEFORM_STEP", step),
        plain_env("LAKEFORM_ATTEMPT", attempt.to_string()),
        plain_env("LAKEFORM_S3_ENDPOINT", ep.s3_endpoint),
        plain_env("LAKEFORM_S3_REGION", ep.region),
        plain_env("LAKEFORM_S3_PATH_STYLE", ep.path_style.to_string()),
        secret_env(
            "LAKEFORM_S3_ACCESS_KEY",
            &credentials.secret_name,
            &credentials.access_key_id_key,
        ),
        secret_env(
            "LAKEFORM_S3_SECRET_KEY",
            &credentials.secret_name,
            &credentials.secret_access_key_key,
        ),
    ];
    if let Some(uri) = ep.catalog_uri {
        env.push(plain_env("LAKEFORM_CATALOG_URI", uri));
    }
    if let Some(w) = ep.warehouse {
        env.push(plain_env("LAKEFORM_CATALOG_WAREHOUSE", w));
    }
    for (k, v) in parameters(workflow, run) {
        env.push(plain_env(&param_var(&k), v));
    }
    env
}

/// The Job running `attempt` of `step` in `run`, owned by the run. Retries are the run's
/// (`backoffLimit: 0`); `timeout` becomes `activeDeadlineSeconds`.
pub fn step_job(
    workflow: &Workflow,
    run: &WorkflowRun,
    lake: &DataLake,
    step: &Step,
    attempt: i32,
    image: &str,
) -> Result<Job, StepError> {
    let timeout = match &step.timeout {
        Some(t) => Some(
            parse_duration(t)
                .map_err(|message| StepError::Timeout {
                    step: step.name.clone(),
                    message,
                })?
                .as_secs()
                .max(1),
        ),
        None => None,
    };
    let mut env = env(workflow, run, lake, &step.name, attempt);
    env.extend(workflow_events::keys_env(
        run,
        workflow_events::EVENT_KEYS_ENV,
    ));
    let ns = run.namespace().unwrap_or_default();
    let (container, service_account) = if let Some(crawl) = &step.crawl {
        // an event-triggered run crawls the batch's objects only
        env.extend(workflow_events::keys_env(run, super::crawler::KEYS_ENV));
        if lake.spec.storage.external.is_none() {
            // the crawl signs with the Crawler's identity, which its ServiceAccount may read
            let secret = super::identity::crawler_secret_name(&crawl.crawler_ref.name);
            env.push(plain_env(ENV_CREDENTIALS_SECRET, secret));
        }
        let c = Container {
            name: "step".into(),
            image: Some(image.into()),
            command: Some(vec![
                "lakeform".into(),
                "crawl".into(),
                "--crawler".into(),
                format!("{ns}/{}", crawl.crawler_ref.name),
            ]),
            env: Some(env),
            ..Default::default()
        };
        // the crawl runs with the Crawler's own least-privilege ServiceAccount
        let sa = service_account_name_for(&crawl.crawler_ref.name);
        (c, Some(sa))
    } else if step.sql.is_some() || step.extract.is_some() {
        // the step travels whole in the environment: a run keeps the definition it started with
        let spec = serde_json::to_string(step).map_err(|source| StepError::Spec {
            step: step.name.clone(),
            source,
        })?;
        env.push(plain_env(step_env::SPEC_ENV, spec));
        env.push(plain_env(step_env::NAMESPACE_ENV, ns.clone()));
        if let Some(i) = workflow.spec.steps.iter().position(|s| s.name == step.name) {
            env.push(plain_env(step_env::INDEX_ENV, i.to_string()));
        }
        let mut sa = None;
        if let Some(x) = &step.extract {
            let secret = &x.source.connection_secret_ref;
            env.push(secret_env(
                step_env::SOURCE_URL_ENV,
                &secret.name,
                &secret.key,
            ));
            if x.mode == ExtractMode::Incremental {
                env.push(plain_env(
                    step_env::BOOKMARKS_ENV,
                    workflow_access::bookmarks_name(workflow),
                ));
                sa = Some(workflow_access::service_account_name(workflow));
            }
        }
        let c = Container {
            name: "step".into(),
            image: Some(image.into()),
            command: Some(vec!["lakeform".into(), "step".into()]),
            env: Some(env),
            ..Default::default()
        };
        (c, sa)
    } else if let Some(user) = &step.container {
        env.extend(user.env.iter().cloned());
        let c = Container {
            name: "step".into(),
            image: Some(user.image.clone()),
            command: (!user.command.is_empty()).then(|| user.command.clone()),
            args: (!user.args.is_empty()).then(|| user.args.clone()),
            env: Some(env),
            resources: user.resources.clone(),
            ..Default::default()
        };
        (c, None)
    } else {
        return Err(StepError::Unsupported {
            step: step.name.clone(),
            kind: step_kind(step),
        });
    };
    let container = Container {
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..container
    };
    let mut l = workflow_labels(workflow);
    l.insert(LABEL_RUN.into(), label_value(&run.name_any()));
    l.insert(LABEL_STEP.into(), step.name.clone());
    let name = step_job_name(run, &step.name, attempt);
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: run.namespace(),
            labels: Some(l.clone()),
            owner_references: run.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: timeout.map(|t| t as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(l),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    service_account_name: service_account,
                    restart_policy: Some("Never".into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The on-demand token of `workflow` that has not started a run yet.
pub fn pending_token(workflow: &Workflow) -> Option<String> {
    let token = workflow
        .annotations()
        .get(RUN_ANNOTATION)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())?;
    let done = workflow
        .status
        .as_ref()
        .and_then(|s| s.last_run_token.as_deref());
    (done != Some(token.as_str())).then_some(token)
}

/// `lakeform workflow runs`: each run (newest first) with its steps in DAG order, their
/// phase, attempts, Job and message.
pub fn describe_runs(workflow: &Workflow, runs: &[WorkflowRun]) -> String {
    use std::fmt::Write;
    let nodes: Vec<(&str, Vec<&str>)> = workflow
        .spec
        .steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let order: Vec<&str> = lakeform_api::validate::topological_order(&nodes)
        .unwrap_or_else(|_| nodes.iter().map(|(n, _)| *n).collect());
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref()
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    if runs.is_empty() {
        let _ = writeln!(out, "Workflow {} has no runs", workflow.name_any());
        return out;
    }
    for run in runs {
        let st = run.status.clone().unwrap_or_default();
        let phase = st
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Pending".into());
        let _ = writeln!(
            out,
            "{}  {phase}  started {}  finished {}",
            run.name_any(),
            time(&st.start_time),
            time(&st.completion_time)
        );
        for name in &order {
            let deps = workflow
                .spec
                .steps
                .iter()
                .find(|s| s.name == *name)
                .map(|s| s.depends_on.join(", "))
                .unwrap_or_default();
            let step = st.steps.iter().find(|s| s.name == *name);
            let _ = writeln!(
                out,
                "  {name:<20} {:<10} {:>2} attempt(s)  {:<28} {}{}",
                step.map(|s| format!("{:?}", s.phase))
                    .unwrap_or_else(|| "Pending".into()),
                step.map(|s| s.attempts).unwrap_or(0),
                step.and_then(|s| s.job_name.clone())
                    .unwrap_or_else(|| "-".into()),
                if deps.is_empty() {
                    String::new()
                } else {
                    format!("after {deps}; ")
                },
                step.and_then(|s| s.message.clone()).unwrap_or_default(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow() -> Workflow {
        serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {name: nightly, namespace: team, uid: w-1}
spec:
  lakeRef: {name: sales}
  parameters: {day: today, region: eu}
  steps:
    - {name: crawl-orders, crawl: {crawlerRef: {name: orders}}}
    - name: report
      dependsOn: [crawl-orders]
      timeout: 10m
      container:
        image: ghcr.io/acme/report:1
        command: [report]
        args: [--fast]
        env: [{name: EXTRA, value: '1'}]
    - {name: transform, sql: {statements: ['select 1'], target: {database: d, table: t}}}
    - {name: spark, spark: {application: {type: Scala}}}
    - name: pull
      extract:
        source: {engine: Postgres, connectionSecretRef: {name: pg, key: url}}
        tables: [shop/public/%]
        mode: Incremental
        bookmarks: [{table: public.orders, column: id}]
        targetDatabase: raw
",
        )
        .expect("workflow parses")
    }

    fn lake() -> DataLake {
        serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {name: sales, namespace: team, uid: l-1}
spec:
  storage:
    external:
      endpoint: http://minio:9000
      credentials: {secretName: s3-creds}
  zones: [{name: raw}]
  catalog:
    external: {uri: 'http://rest:8181', warehouse: 's3://wh/'}
",
        )
        .expect("lake parses")
    }

    fn a_run(w: &Workflow) -> WorkflowRun {
        let mut r = run(
            w,
            "nightly-od-abc".into(),
            "on-demand",
            BTreeMap::from([("day".to_string(), "2026-11-30".to_string())]),
            BTreeMap::new(),
        );
        r.metadata.uid = Some("r-1".into());
        r
    }

    fn env_of(job: &Job) -> BTreeMap<String, Option<String>> {
        env_of_pod(
            job.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .expect("pod"),
        )
    }

    fn env_of_pod(pod: &PodSpec) -> BTreeMap<String, Option<String>> {
        pod.containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }

    #[test]
    fn runs_are_owned_by_their_workflow_and_named_deterministically() {
        let w = workflow();
        let r = a_run(&w);
        let owner = &r.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Workflow", "nightly")
        );
        assert_eq!(r.spec.workflow_ref.name, "nightly");
        assert_eq!(on_demand_run_name(&w, "t1"), on_demand_run_name(&w, "t1"));
        assert_ne!(on_demand_run_name(&w, "t1"), on_demand_run_name(&w, "t2"));
        assert_eq!(
            scheduled_run_name(&w, "hourly", 1_800_000_000),
            "nightly-hourly-30000000"
        );
        assert_eq!(param_var("day"), "LAKEFORM_PARAM_DAY");
        assert_eq!(param_var("max-rows.v2"), "LAKEFORM_PARAM_MAX_ROWS_V2");
    }

    #[test]
    fn a_managed_lakes_steps_sign_with_identities_never_the_root_keys() {
        let mut l = lake();
        l.spec.storage = serde_yaml::from_str("managed: {}").expect("storage");
        let w = workflow();
        let r = a_run(&w);
        let secrets = |step: usize| -> (Vec<String>, Option<String>) {
            let job = step_job(&w, &r, &l, &w.spec.steps[step], 1, "img:1").expect("builds");
            let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
            let env = pod.containers[0].env.clone().unwrap_or_default();
            let refs = env
                .iter()
                .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
                .map(|s| s.name.clone())
                .collect();
            let named = env
                .iter()
                .find(|e| e.name == ENV_CREDENTIALS_SECRET)
                .and_then(|e| e.value.clone());
            (refs, named)
        };
        let (crawl_refs, crawl_named) = secrets(0);
        assert_eq!(crawl_named.as_deref(), Some("orders-crawler-s3"));
        assert!(
            crawl_refs.iter().all(|s| s == "nightly-workflow-s3"),
            "{crawl_refs:?}"
        );
        // report (container), transform (sql), pull (extract); spark is not a Job
        for step in [1, 2, 4] {
            let (refs, _) = secrets(step);
            assert!(
                refs.iter().all(|s| s != "sales-minio-root"),
                "step {step} reads the root keys: {refs:?}"
            );
            assert!(
                refs.contains(&"nightly-workflow-s3".to_string()),
                "{refs:?}"
            );
        }
    }

    #[test]
    fn crawl_steps_run_the_crawl_as_the_crawler() {
        let w = workflow();
        let r = a_run(&w);
        let job = step_job(&w, &r, &lake(), &w.spec.steps[0], 1, "img:1").expect("builds");
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("nightly-od-abc-crawl-orders-1")
        );
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("WorkflowRun", "r-1")
        );
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("orders-crawler"));
        assert_eq!(
            pod.containers[0].command.as_deref(),
            Some(
                &[
                    "lakeform".to_string(),
                    "crawl".into(),
                    "--crawler".into(),
                    "team/orders".into()
                ][..]
            )
        );
        let env = env_of(&job);
        assert_eq!(env["LAKEFORM_WORKFLOW"].as_deref(), Some("nightly"));
        assert_eq!(env["LAKEFORM_RUN_ID"].as_deref(), Some("nightly-od-abc"));
        assert_eq!(
            env["LAKEFORM_PARAM_DAY"].as_deref(),
            Some("2026-11-30"),
            "run overrides"
        );
        assert_eq!(
            env["LAKEFORM_PARAM_REGION"].as_deref(),
            Some("eu"),
            "workflow default"
        );
        assert_eq!(
            env["LAKEFORM_CATALOG_URI"].as_deref(),
            Some("http://rest:8181")
        );
        assert_eq!(
            env["LAKEFORM_S3_ACCESS_KEY"], None,
            "credentials by secretKeyRef only"
        );
    }

    #[test]
    fn container_steps_keep_the_users_image_command_and_env() {
        let w = workflow();
        let r = a_run(&w);
        let job = step_job(&w, &r, &lake(), &w.spec.steps[1], 2, "img:1").expect("builds");
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let c = &spec.template.spec.as_ref().expect("pod").containers[0];
        assert_eq!(c.image.as_deref(), Some("ghcr.io/acme/report:1"));
        assert_eq!(c.command.as_deref(), Some(&["report".to_string()][..]));
        assert_eq!(c.args.as_deref(), Some(&["--fast".to_string()][..]));
        let env = env_of(&job);
        assert_eq!(env["EXTRA"].as_deref(), Some("1"));
        assert_eq!(env["LAKEFORM_ATTEMPT"].as_deref(), Some("2"));
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[LABEL_STEP], "report");
        assert_eq!(labels[LABEL_RUN], "nightly-od-abc");
    }

    #[test]
    fn spark_steps_are_not_jobs() {
        let w = workflow();
        let err = step_job(&w, &a_run(&w), &lake(), &w.spec.steps[3], 1, "img:1")
            .expect_err("spark steps are SparkApplications");
        assert!(
            matches!(&err, StepError::Unsupported { step, kind: "spark" } if step == "spark"),
            "{err:?}"
        );
        assert!(w.spec.steps.iter().all(supported));
        assert!(!supported(&Step::default()), "a step without a kind");
    }

    #[test]
    fn sql_and_extract_steps_carry_their_definition_and_secrets_by_reference() {
        let w = workflow();
        let sql = step_job(&w, &a_run(&w), &lake(), &w.spec.steps[2], 1, "img:1").expect("sql job");
        let pod = sql.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(
            pod.containers[0].command,
            Some(vec!["lakeform".to_string(), "step".to_string()])
        );
        assert_eq!(
            pod.service_account_name, None,
            "sql steps need no API access"
        );
        let env = env_of_pod(&pod);
        let spec: Step = serde_json::from_str(env["LAKEFORM_STEP_SPEC"].as_deref().expect("spec"))
            .expect("step json");
        assert_eq!(spec, w.spec.steps[2]);
        assert_eq!(
            env["LAKEFORM_STEP_INDEX"].as_deref(),
            Some("2"),
            "errors name spec.steps[2]"
        );

        let x =
            step_job(&w, &a_run(&w), &lake(), &w.spec.steps[4], 1, "img:1").expect("extract job");
        let pod = x.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("lakeform-wf-nightly")
        );
        let url = pod.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "LAKEFORM_SOURCE_URL")
            .expect("source url");
        assert_eq!(url.value, None, "the URL is never inlined");
        let key = url
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secret ref");
        assert_eq!((key.name.as_str(), key.key.as_str()), ("pg", "url"));
        let env = env_of_pod(&pod);
        assert_eq!(
            env["LAKEFORM_BOOKMARKS"].as_deref(),
            Some("nightly-bookmarks")
        );
        assert_eq!(env["LAKEFORM_NAMESPACE"].as_deref(), Some("team"));
    }

    #[test]
    fn runs_are_described_in_dag_order() {
        let w = workflow();
        let mut r = a_run(&w);
        r.status = Some(serde_yaml::from_str(
            "phase: Failed
steps:
  - {name: report, phase: Skipped, message: 'skipped: it runs when crawl-orders succeeded'}
  - {name: crawl-orders, phase: Failed, attempts: 2, jobName: nightly-od-abc-crawl-orders-2, message: boom}
",
        ).expect("status parses"));
        let text = describe_runs(&w, &[r]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("nightly-od-abc  Failed"), "{text}");
        let at = |step: &str| {
            lines
                .iter()
                .position(|l| l.trim_start().starts_with(step))
                .unwrap_or(usize::MAX)
        };
        assert!(
            at("crawl-orders") < at("report"),
            "dependencies first: {text}"
        );
        let crawl = lines[at("crawl-orders")];
        assert!(crawl.contains("nightly-od-abc-crawl-orders-2") && crawl.contains("boom"));
        let report = lines[at("report")];
        assert!(report.contains("Skipped") && report.contains("after crawl-orders"));
        assert!(lines[at("transform")].contains("Pending"), "{text}");
        assert_eq!(describe_runs(&w, &[]), "Workflow nightly has no runs\n");
    }
}
