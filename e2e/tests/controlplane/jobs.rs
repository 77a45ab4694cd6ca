//! Jobs and CronJobs through the real controllers, run as containers on the real node.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::{
    batch::v1::{CronJob, Job},
    core::v1::{ConfigMap, Pod, Secret},
};
use kube::api::PostParams;
use lakeform_e2e::{TestContext, describe, has_condition, wait_for, wait_for_any};
use serde_json::json;

use super::common::{
    first_state, job_report, lakeform_job, lakeform_pod_template, only_pod, run_job, terminated,
};

#[tokio::test]
async fn job_with_the_lakeform_image_completes() -> Result<()> {
    let ctx = TestContext::new("job-complete").await?;
    ctx.require_node().await?;

    let job = run_job(
        &ctx,
        &lakeform_job(&ctx, "version", &["lakeform", "version"], 0)?,
    )
    .await?;
    ensure!(
        has_condition(&job, "Complete"),
        "the Job did not complete:\n{}",
        job_report(&ctx, "version").await
    );
    ensure!(
        job.status.as_ref().and_then(|s| s.succeeded) == Some(1),
        "the Job controller should count one succeeded Pod:\n{}",
        describe(&job)
    );

    let pod = only_pod(&ctx, "version").await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    ensure!(
        phase.as_deref() == Some("Succeeded"),
        "the Pod should be Succeeded, is {phase:?}"
    );
    ensure!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(ctx.env.node_name.as_str()),
        "the Pod should be bound to the node {}",
        ctx.env.node_name
    );
    let state = terminated(&pod).context("the container has no terminated state")?;
    ensure!(
        state.exit_code == 0 && state.reason.as_deref() == Some("Completed"),
        "expected exit code 0 / Completed, got {} / {:?}",
        state.exit_code,
        state.reason
    );
    let log = ctx.pod_log(&pod_name, "main").await?;
    let expected = format!("lakeform {}", env!("CARGO_PKG_VERSION"));
    ensure!(
        log.contains(&expected),
        "the container log should contain {expected:?}, it is:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn failing_command_fails_the_job_with_its_exit_code() -> Result<()> {
    let ctx = TestContext::new("job-failed").await?;
    ctx.require_node().await?;

    let job = run_job(
        &ctx,
        &lakeform_job(&ctx, "bad", &["lakeform", "no-such-subcommand"], 0)?,
    )
    .await?;
    ensure!(
        has_condition(&job, "Failed"),
        "the Job should have failed:\n{}",
        job_report(&ctx, "bad").await
    );
    let pod = only_pod(&ctx, "bad").await?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    ensure!(
        phase.as_deref() == Some("Failed"),
        "the Pod should be Failed, is {phase:?}"
    );
    let state = terminated(&pod).context("the container has no terminated state")?;
    ensure!(
        state.exit_code == 2,
        "clap exits with 2 on an unknown subcommand; the Pod says {}:\n{}",
        state.exit_code,
        describe(&pod)
    );
    ensure!(
        state.reason.as_deref() == Some("Error"),
        "{:?}",
        state.reason
    );
    let message = state.message.unwrap_or_default();
    ensure!(
        message.contains("no-such-subcommand"),
        "the termination message should carry the end of the log \
         (terminationMessagePolicy FallbackToLogsOnError), it is {message:?}"
    );
    Ok(())
}

#[tokio::test]
async fn cronjob_every_minute_gets_a_job() -> Result<()> {
    let ctx = TestContext::new("cronjob").await?;
    ctx.require_node().await?;

    let cron: CronJob = serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": { "name": "every-minute" },
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": lakeform_pod_template(&ctx, &["lakeform", "version"]),
                },
            },
        },
    }))?;
    let started = std::time::Instant::now();
    ctx.api::<CronJob>()
        .create(&PostParams::default(), &cron)
        .await
        .context("creating the CronJob")?;

    // The CronJob controller creates the first Job at the next minute boundary (≤ 60 s).
    let jobs = ctx.api::<Job>();
    let job = wait_for_any(
        &jobs,
        "a Job created by the CronJob controller for CronJob every-minute",
        Duration::from_secs(130),
        |job: &Job| {
            job.metadata.owner_references.iter().flatten().any(|o| {
                o.kind == "CronJob" && o.name == "every-minute" && o.controller == Some(true)
            })
        },
    )
    .await;
    let job = match job {
        Ok(job) => job,
        Err(err) => {
            let cron = ctx.api::<CronJob>().get_opt("every-minute").await?;
            bail!(
                "{err:#}\nCronJob:\n{}",
                cron.map(|c| describe(&c)).unwrap_or_default()
            );
        }
    };
    let name = job.metadata.name.clone().unwrap_or_default();
    println!(
        "CronJob every-minute created Job {name} after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // And that Job runs to completion on the node.
    let done = wait_for(
        &jobs,
        &name,
        "the CronJob's Job to finish",
        Duration::from_secs(90),
        |job: Option<&Job>| {
            job.is_some_and(|j| has_condition(j, "Complete") || has_condition(j, "Failed"))
        },
    )
    .await;
    match done {
        Ok(job) if has_condition(&job, "Complete") => Ok(()),
        Ok(_) => bail!(
            "the CronJob's Job failed:\n{}",
            job_report(&ctx, &name).await
        ),
        Err(err) => bail!("{err:#}\n{}", job_report(&ctx, &name).await),
    }
}

#[tokio::test]
async fn secret_and_configmap_env_reach_the_process() -> Result<()> {
    let ctx = TestContext::new("job-env").await?;
    ctx.require_node().await?;

    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" },
        "stringData": { "password": "s3cr3t value with spaces" },
    }))?;
    ctx.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "data": { "endpoint": "http://minio.test:9000", "region": "eu-local-1" },
    }))?;
    ctx.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await?;

    let names = [
        "S3_PASSWORD",
        "S3_ENDPOINT",
        "BUCKET_URL",
        "CFG_region",
        "POD_NAME",
        "POD_NAMESPACE",
        "OPTIONAL_MISSING",
        "LAKEFORM_S3_SECRET_KEY",
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
    ];
    let mut command = vec!["lakeform", "debug", "env"];
    command.extend(names);
    let mut job = lakeform_job(&ctx, "env", &command, 0)?;
    let container = job
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|s| s.containers.first_mut())
        .context("the Job has no container")?;
    container.env_from = Some(serde_json::from_value(json!([
        { "prefix": "CFG_", "configMapRef": { "name": "settings" } },
    ]))?);
    container.env = Some(serde_json::from_value(json!([
        { "name": "S3_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "password" } } },
        { "name": "S3_ENDPOINT", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "endpoint" } } },
        { "name": "BUCKET_URL", "value": "$(S3_ENDPOINT)/raw" },
        { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
        { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
        { "name": "OPTIONAL_MISSING", "valueFrom": { "configMapKeyRef": { "name": "absent", "key": "x", "optional": true } } },
    ]))?);

    let job = run_job(&ctx, &job).await?;
    ensure!(
        has_condition(&job, "Complete"),
        "the Job did not complete:\n{}",
        job_report(&ctx, "env").await
    );
    let pod = only_pod(&ctx, "env").await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let log = ctx.pod_log(&pod_name, "main").await?;
    let got: BTreeMap<&str, &str> = log.lines().filter_map(|l| l.split_once('=')).collect();
    let expect = |name: &str, value: &str| -> Result<()> {
        let seen = got.get(name).copied();
        ensure!(
            seen == Some(value),
            "{name} should be {value:?} in the process, `lakeform debug env` printed {seen:?}; \
             the whole output:\n{log}"
        );
        Ok(())
    };
    expect("S3_PASSWORD", "s3cr3t value with spaces")?;
    expect("S3_ENDPOINT", "http://minio.test:9000")?;
    expect("BUCKET_URL", "http://minio.test:9000/raw")?;
    expect("CFG_region", "eu-local-1")?;
    expect("POD_NAME", &pod_name)?;
    expect("POD_NAMESPACE", &ctx.ns)?;
    expect("OPTIONAL_MISSING", "")?;
    // A clean environment: nothing of the host's environment leaks in …
    expect("LAKEFORM_S3_SECRET_KEY", "")?;
    expect("KUBECONFIG", "")?;
    // … and the API server is reached in-cluster, through the `kubernetes` Service.
    expect("KUBERNETES_SERVICE_HOST", "10.0.0.1")?;
    Ok(())
}

#[tokio::test]
async fn image_that_is_not_on_the_node_is_reported_not_pulled() -> Result<()> {
    let ctx = TestContext::new("never-pull").await?;
    ctx.require_node().await?;

    // No registry is reachable: an image that is not on the node with `Never` must surface as
    // the kubelet's ErrImageNeverPull, and nothing may start.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "absent" },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": "ghcr.io/lakeform/no-such-image:0.0.0",
                "imagePullPolicy": "Never",
            }],
        },
    }))?;
    let pods = ctx.api::<Pod>();
    pods.create(&PostParams::default(), &pod).await?;
    let waiting_reason = |p: &Pod| first_state(p)?.waiting?.reason;
    let pod = wait_for(
        &pods,
        "absent",
        "the container to wait with reason ErrImageNeverPull",
        Duration::from_secs(60),
        |p: Option<&Pod>| p.and_then(waiting_reason).as_deref() == Some("ErrImageNeverPull"),
    )
    .await?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    ensure!(
        phase.as_deref() == Some("Pending"),
        "the Pod should stay Pending, is {phase:?}:\n{}",
        describe(&pod)
    );
    Ok(())
}
