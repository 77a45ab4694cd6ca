//! The real node itself (DESIGN.md §10): kubelet, containerd, kube-proxy, kube-scheduler,
//! CoreDNS and the local-path provisioner. A Deployment behind a Service, a StatefulSet with a
//! provisioned volume and a Job all run as containers; the Job reaches the Service by its DNS
//! name. `e2e/run cluster` selects these.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use lakeform_e2e::{TestContext, apply_yaml_str, describe, has_condition, wait_for};

/// How long a workload may take to start on the node.
const START: Duration = Duration::from_secs(120);

async fn apply(ctx: &TestContext, yaml: &str) -> Result<()> {
    apply_yaml_str(&ctx.client, yaml, &lakeform_e2e::ApplyOptions::new(&ctx.ns))
        .await
        .map(drop)
}

/// A web server (busybox httpd) serving one page, with a readiness probe, behind Service `web`.
fn web_yaml(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: httpd
          image: {image}
          imagePullPolicy: Never
          command: [sh, -c, 'mkdir -p /tmp/www && echo served-by-$(hostname) > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
          ports: [{{containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /index.html, port: 8080}}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"
    )
}

/// A StatefulSet whose pod writes a stamp into its claimed volume once and keeps it.
fn store_yaml(image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: store}}
spec:
  clusterIP: None
  selector: {{app: store}}
  ports: [{{port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: store}}
spec:
  serviceName: store
  replicas: 1
  selector: {{matchLabels: {{app: store}}}}
  template:
    metadata: {{labels: {{app: store}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: {image}
          imagePullPolicy: Never
          command: [sh, -c, '[ -f /data/stamp ] || echo first-$(hostname) > /data/stamp; exec sleep 3600']
          volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 16Mi}}}}
"
    )
}

/// A Job that fetches the web page through the Service's DNS name (full and short) and resolves
/// the StatefulSet pod's stable name. HTTP by `nc`: Debian's static busybox `wget` crashes.
fn client_yaml(image: &str, ns: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: client}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: {image}
          imagePullPolicy: Never
          command: [sh, -c, 'get() {{ printf \"GET /index.html HTTP/1.0\\r\\n\\r\\n\" | nc -w 10 $1 80; }}; get web.{ns}.svc.cluster.local && get web && nslookup store-0.store.{ns}.svc.cluster.local']
"
    )
}

fn busybox() -> String {
    std::env::var("LAKEFORM_E2E_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "localhost/lakeform-e2e/busybox:e2e".to_string())
}

#[tokio::test]
async fn node_is_ready_and_untainted() -> Result<()> {
    let ctx = TestContext::new("cluster-node").await?;
    ctx.require_node().await?;
    let node = Api::<Node>::all(ctx.client.clone())
        .get(&ctx.env.node_name)
        .await?;
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    ensure!(
        taints.is_empty(),
        "the node should carry no taints once Ready (node-lifecycle controller):\n{}",
        describe(&node)
    );
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default();
    ensure!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == ctx.env.node_ip),
        "the node's InternalIP should be {}: {addresses:?}",
        ctx.env.node_ip
    );
    Ok(())
}

#[tokio::test]
async fn workloads_run_as_containers_and_reach_each_other() -> Result<()> {
    let ctx = TestContext::new("cluster-work").await?;
    ctx.require_node().await?;
    let image = busybox();
    apply(&ctx, &web_yaml(&image)).await?;
    apply(&ctx, &store_yaml(&image)).await?;

    let web = wait_for(
        &ctx.api::<Deployment>(),
        "web",
        "Deployment web to have an available replica",
        START,
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.available_replicas)
                == Some(1)
        },
    )
    .await;
    if let Err(err) = web {
        bail!("{err:#}\n{}", pods_report(&ctx).await);
    }
    let store = wait_for(
        &ctx.api::<StatefulSet>(),
        "store",
        "StatefulSet store to have a ready replica",
        START,
        |s: Option<&StatefulSet>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| s.ready_replicas)
                == Some(1)
        },
    )
    .await;
    if let Err(err) = store {
        bail!("{err:#}\n{}", pods_report(&ctx).await);
    }

    // the client Job finds both by DNS and gets the page through kube-proxy
    apply(&ctx, &client_yaml(&image, &ctx.ns)).await?;
    let job = wait_for(
        &ctx.api::<Job>(),
        "client",
        "Job client to finish",
        START,
        |j: Option<&Job>| {
            j.is_some_and(|j| has_condition(j, "Complete") || has_condition(j, "Failed"))
        },
    )
    .await?;
    let pod = job_pod(&ctx, "client").await?;
    let log = ctx.pod_log(&pod, "main").await?;
    ensure!(
        has_condition(&job, "Complete"),
        "the client Job failed; its log:\n{log}\n{}",
        pods_report(&ctx).await
    );
    ensure!(
        log.matches("served-by-web-").count() == 2,
        "the page should have been fetched twice (full and short Service name):\n{log}"
    );
    ensure!(
        log.contains(&format!("store-0.store.{}.svc.cluster.local", ctx.ns)),
        "nslookup should resolve the StatefulSet pod's stable name:\n{log}"
    );

    for pod in ctx.api::<Pod>().list(&ListParams::default()).await?.items {
        let ids: Vec<String> = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .filter_map(|c| c.container_id.clone())
            .collect();
        ensure!(
            !ids.is_empty() && ids.iter().all(|id| id.starts_with("containerd://")),
            "every pod should have run as containerd containers: {ids:?}\n{}",
            describe(&pod)
        );
    }
    volume_survives_a_new_pod(&ctx).await
}

/// The StatefulSet's claim is bound to a volume the local-path provisioner made in its folder
/// on the node; a new pod of the set mounts the same data.
async fn volume_survives_a_new_pod(ctx: &TestContext) -> Result<()> {
    let claim = ctx
        .api::<PersistentVolumeClaim>()
        .get("data-store-0")
        .await
        .context("the StatefulSet's claim data-store-0")?;
    let phase = claim.status.as_ref().and_then(|s| s.phase.clone());
    ensure!(
        phase.as_deref() == Some("Bound"),
        "claim not bound: {}",
        describe(&claim)
    );
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .context("the claim names no volume")?;
    let volume = Api::<PersistentVolume>::all(ctx.client.clone())
        .get(&volume_name)
        .await?;
    let provisioner = volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("pv.kubernetes.io/provisioned-by").cloned());
    ensure!(
        provisioner.as_deref() == Some("rancher.io/local-path"),
        "the volume should come from the local-path provisioner: {}",
        describe(&volume)
    );
    let path = volume
        .spec
        .as_ref()
        .and_then(|s| {
            s.host_path
                .as_ref()
                .map(|h| h.path.clone())
                .or_else(|| s.local.as_ref().map(|l| l.path.clone()))
        })
        .context("the volume has no host path")?;
    let stamp = std::fs::read_to_string(format!("{path}/stamp"))
        .with_context(|| format!("reading the stamp the pod wrote into {path}"))?;
    ensure!(
        stamp.trim() == "first-store-0",
        "unexpected stamp {stamp:?}"
    );

    // a new pod of the set mounts the same volume: the stamp is not written again
    let pods = ctx.api::<Pod>();
    let old = pods.get("store-0").await?;
    let old_uid = old.metadata.uid.clone().unwrap_or_default();
    pods.delete("store-0", &DeleteParams::default()).await?;
    wait_for(
        &pods,
        "store-0",
        "a new store-0 pod to be ready",
        START,
        move |p: Option<&Pod>| {
            p.is_some_and(|p| {
                p.metadata.uid.as_deref() != Some(old_uid.as_str())
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        },
    )
    .await?;
    let again = std::fs::read_to_string(format!("{path}/stamp"))?;
    ensure!(
        again == stamp,
        "the volume's data changed with a new pod: {again:?}"
    );
    Ok(())
}

/// The name of the single Pod of a Job.
async fn job_pod(ctx: &TestContext, job: &str) -> Result<String> {
    let pods = ctx
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await?;
    pods.items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .with_context(|| format!("Job {job} has no Pod"))
}

/// Every pod of the test namespace, described (for failures).
async fn pods_report(ctx: &TestContext) -> String {
    match ctx.api::<Pod>().list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => format!("listing pods: {err}"),
    }
}
