//! Helpers shared by the control-plane tests.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ContainerState, ContainerStateTerminated, Pod},
};
use kube::api::{ListParams, PostParams};
use lakeform_e2e::{TestContext, describe, has_condition, wait_for};
use serde_json::json;

/// How long a Job that runs a quick `lakeform` command may take through the Job controller, the
/// scheduler and the node.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// The pod template of a Job running `command` in the lakeform image built from the commit under
/// test (never pulled: `e2e/run` imported it into the node's containerd).
pub fn lakeform_pod_template(ctx: &TestContext, command: &[&str]) -> serde_json::Value {
    json!({
        "metadata": { "labels": { "app.kubernetes.io/managed-by": "lakeform" } },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": ctx.env.image,
                "imagePullPolicy": "Never",
                "command": command,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        },
    })
}

/// A Job running `command` with the lakeform image.
pub fn lakeform_job(
    ctx: &TestContext,
    name: &str,
    command: &[&str],
    backoff_limit: i32,
) -> Result<Job> {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": { "app.kubernetes.io/managed-by": "lakeform" },
        },
        "spec": {
            "backoffLimit": backoff_limit,
            "template": lakeform_pod_template(ctx, command),
        },
    }))
    .context("building the Job")
}

/// Creates the Job and waits until it is Complete or Failed (whichever comes first).
pub async fn run_job(ctx: &TestContext, job: &Job) -> Result<Job> {
    let jobs = ctx.api::<Job>();
    let name = job.metadata.name.clone().unwrap_or_default();
    jobs.create(&PostParams::default(), job)
        .await
        .with_context(|| format!("creating Job {name}"))?;
    let finished = wait_for(
        &jobs,
        &name,
        "the Job to finish (condition Complete or Failed)",
        JOB_TIMEOUT,
        |job: Option<&Job>| {
            job.is_some_and(|j| has_condition(j, "Complete") || has_condition(j, "Failed"))
        },
    )
    .await;
    match finished {
        Ok(job) => Ok(job),
        Err(err) => bail!("{err:#}\n{}", job_report(ctx, &name).await),
    }
}

/// The Pods of a Job (label `batch.kubernetes.io/job-name`).
pub async fn job_pods(ctx: &TestContext, job: &str) -> Result<Vec<Pod>> {
    let pods = ctx
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .with_context(|| format!("listing the Pods of Job {job}"))?;
    Ok(pods.items)
}

/// Everything useful to understand a Job that did not do what a test expected: the Job's status,
/// its Pods' statuses and the tails of their container logs.
pub async fn job_report(ctx: &TestContext, job: &str) -> String {
    let mut out = String::new();
    match ctx.api::<Job>().get_opt(job).await {
        Ok(Some(j)) => out.push_str(&format!("Job {job}:\n{}\n", describe(&j))),
        Ok(None) => out.push_str(&format!("Job {job} does not exist\n")),
        Err(err) => out.push_str(&format!("reading Job {job}: {err}\n")),
    }
    match job_pods(ctx, job).await {
        Ok(pods) if pods.is_empty() => out.push_str(
            "the Job has no Pods (did the Job controller run? is the kube-controller-manager up?)\n",
        ),
        Ok(pods) => {
            for pod in pods {
                out.push_str(&pod_report(ctx, &pod).await);
            }
        }
        Err(err) => out.push_str(&format!("{err:#}\n")),
    }
    out
}

/// A Pod's status and the tail of each container's log.
pub async fn pod_report(ctx: &TestContext, pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut out = format!("Pod {name}:\n{}\n", describe(pod));
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none()
    {
        out.push_str(
            "the Pod is not bound to a node: is kube-scheduler running? (log: \
             $LAKEFORM_CACHE/logs/kube-scheduler.log)\n",
        );
    }
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        match ctx.pod_log(&name, &c.name).await {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                out.push_str(&format!("log of {} (tail):\n{tail}\n", c.name));
            }
            Err(err) => out.push_str(&format!("{err:#}\n")),
        }
    }
    out
}

/// The state of the first container of a Pod.
pub fn first_state(pod: &Pod) -> Option<ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .clone()
}

/// The terminated state of the first container of a Pod.
pub fn terminated(pod: &Pod) -> Option<ContainerStateTerminated> {
    first_state(pod)?.terminated
}

/// The single Pod of a Job that ran once.
pub async fn only_pod(ctx: &TestContext, job: &str) -> Result<Pod> {
    let mut pods = job_pods(ctx, job).await?;
    if pods.len() != 1 {
        bail!(
            "expected exactly one Pod for Job {job}, found {}\n{}",
            pods.len(),
            job_report(ctx, job).await
        );
    }
    Ok(pods.remove(0))
}
