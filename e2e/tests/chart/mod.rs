//! The Helm chart `charts/lakeform`: `helm lint --strict`, then for three value sets — the
//! defaults, namespaced mode with two watched namespaces, and the events receiver on a fixed
//! cluster IP — `helm template --include-crds` piped into `kubectl apply --dry-run=server`, so the
//! real API server checks every rendered object (CRDs, RBAC, Deployment, Services, Secret)
//! against its schema and admission. And a real `helm install` of the operator into a fresh
//! namespace, then `helm uninstall`, which must leave nothing of the release but the CRDs.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use lakeform_e2e::{TestContext, repo_root};
use tokio::io::AsyncWriteExt;

/// Release name of the rendered objects: distinct from any real install of the operator, so the
/// dry run never compares against (or collides with) its cluster-scoped objects.
const RELEASE: &str = "chart-check";

/// One value set: a name for messages, the release namespace and `--set` arguments.
struct Case {
    name: &'static str,
    namespace: String,
    sets: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_and_schema() -> Result<()> {
    let ctx = TestContext::new("chart").await?;
    // namespaced mode needs a second namespace that exists (its Role is created there)
    let other = TestContext::new("chart-b").await?;
    let helm = helm_bin(&ctx.env.cache)?;
    let chart = repo_root().join("charts/lakeform");
    let chart = chart.to_string_lossy().to_string();
    run(&helm, &["lint", "--strict", &chart], None)
        .await
        .context("helm lint --strict charts/lakeform")?;
    let cluster_ip = free_cluster_ip(&ctx).await?;
    let cases = [
        Case {
            name: "defaults",
            namespace: ctx.ns.clone(),
            sets: vec![],
        },
        Case {
            name: "namespaced mode, two namespaces",
            namespace: ctx.ns.clone(),
            sets: vec![format!("watchNamespaces={{{},{}}}", ctx.ns, other.ns)],
        },
        Case {
            name: "events receiver on a fixed cluster IP",
            namespace: ctx.ns.clone(),
            sets: vec![
                "events.enabled=true".into(),
                format!("events.service.clusterIP={cluster_ip}"),
            ],
        },
    ];
    for case in &cases {
        check_case(&ctx, &helm, &chart, case)
            .await
            .with_context(|| format!("value set {:?}", case.name))?;
        eprintln!(
            "chart value set {:?}: accepted by the API server",
            case.name
        );
    }
    Ok(())
}

/// `helm template` with the case's values, then a server-side dry-run apply of the result.
async fn check_case(ctx: &TestContext, helm: &Path, chart: &str, case: &Case) -> Result<()> {
    let mut args = vec![
        "template".to_string(),
        RELEASE.into(),
        chart.into(),
        "--namespace".into(),
        case.namespace.clone(),
        "--include-crds".into(),
    ];
    for set in &case.sets {
        args.extend(["--set".into(), set.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifests = run(helm, &args, None).await?;
    let kinds = rendered_kinds(&manifests)?;
    for want in [
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "Service",
        "ClusterBlueprint",
    ] {
        if !kinds.contains(want) {
            bail!("helm template rendered no {want}; kinds: {kinds:?}");
        }
    }
    let kubeconfig = ctx.env.kubeconfig.to_string_lossy().to_string();
    run(
        &ctx.env.kubectl,
        &[
            "apply",
            "--kubeconfig",
            &kubeconfig,
            "--dry-run=server",
            "--server-side",
            "--force-conflicts",
            "--field-manager=lakeform-e2e-chart",
            "--validate=strict",
            "-f",
            "-",
        ],
        Some(&manifests),
    )
    .await?;
    Ok(())
}

/// `$LAKEFORM_CACHE/bin/helm`, which `e2e/setup` builds.
fn helm_bin(cache: &Path) -> Result<PathBuf> {
    let helm = cache.join("bin/helm");
    if !helm.is_file() {
        bail!(
            "helm was expected at {} but is not there; run `e2e/setup` (step helm)",
            helm.display()
        );
    }
    Ok(helm)
}

/// Run `program args`, feeding `stdin`; its stdout, or an error carrying the command line, the
/// exit status and everything it printed.
async fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let line = format!("{} {}", program.display(), args.join(" "));
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {line}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .with_context(|| format!("writing the input of {line}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("waiting for {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The `kind`s of the rendered documents.
fn rendered_kinds(manifests: &[u8]) -> Result<BTreeSet<String>> {
    let text = std::str::from_utf8(manifests).context("helm template printed non-UTF-8")?;
    let docs = lakeform_e2e::split_documents(text).context("parsing helm template's output")?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get("kind").and_then(|k| k.as_str()))
        .map(str::to_string)
        .collect())
}

/// An address in the service CIDR that no Service holds: the `kubernetes` Service has the
/// range's first address; take the highest free one in its /24 (every service CIDR is at least
/// that large), so a real install's fixed address is left alone.
async fn free_cluster_ip(ctx: &TestContext) -> Result<Ipv4Addr> {
    let services: Api<Service> = Api::all(ctx.client.clone());
    let list = services.list(&Default::default()).await?;
    let taken: BTreeSet<Ipv4Addr> = list
        .items
        .iter()
        .filter_map(|s| s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
        .collect();
    let first: Ipv4Addr = Api::<Service>::namespaced(ctx.client.clone(), "default")
        .get("kubernetes")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("Service default/kubernetes has no clusterIP")?
        .parse()
        .context("the clusterIP of default/kubernetes is not IPv4")?;
    let [a, b, c, _] = first.octets();
    (2..=250u8)
        .rev()
        .map(|d| Ipv4Addr::new(a, b, c, d))
        .find(|ip| !taken.contains(ip))
        .with_context(|| format!("no free address in {a}.{b}.{c}.0/24 of the service CIDR"))
}

/// `helm install` into a fresh namespace (the operator from the image under test, watching
/// that namespace), the operator Ready and leading, then `helm uninstall`: nothing of the
/// release is left — in the namespace or cluster-wide — but the CRDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_then_uninstall_leaves_only_the_crds() -> Result<()> {
    let ctx = TestContext::new("chart-install").await?;
    ctx.require_node().await?;
    let helm = helm_bin(&ctx.env.cache)?;
    let chart = repo_root().join("charts/lakeform");
    let chart = chart.to_string_lossy().to_string();
    let kubeconfig = ctx.env.kubeconfig.to_string_lossy().to_string();
    let (repository, tag) = ctx
        .env
        .image
        .rsplit_once(':')
        .context("the e2e image has no tag")?;
    let image_repository = format!("image.repository={repository}");
    let image_tag = format!("image.tag={tag}");
    let watch = format!("watchNamespaces[0]={}", ctx.ns);
    let base = ["--kubeconfig", &kubeconfig, "--namespace", &ctx.ns];
    let mut install = vec!["install", "lakeform", &chart, "--wait", "--timeout", "120s"];
    install.extend(base);
    for set in [
        &image_repository,
        &image_tag,
        "image.pullPolicy=Never",
        &watch,
    ] {
        install.extend(["--set-string", set]);
    }
    // the built-in ClusterBlueprints are e2e/run's (cluster-wide; this release is namespaced)
    install.extend(["--set", "builtinBlueprints.install=false"]);
    run(&helm, &install, None).await?;

    let before = release_objects(&ctx).await?;
    for want in [
        "deployment.apps/lakeform",
        "serviceaccount/lakeform",
        "lease.coordination.k8s.io/lakeform-operator",
    ] {
        if !before.iter().any(|o| o == want) {
            bail!("the release should have made {want}; found {before:?}");
        }
    }
    let holder = kubectl(
        &ctx,
        &[
            "get",
            "lease",
            "lakeform-operator",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
    .await?;
    if !holder.starts_with("lakeform-") {
        bail!("the operator pod should hold the leader-election Lease, the holder is {holder:?}");
    }

    // The operator first, alone: `helm uninstall` deletes the Role with the Deployment, and a
    // pod still terminating would renew its Lease without it — a 403 the suite's RBAC check
    // (rightly) counts; for a user it is a harmless log line.
    stop_operator(&ctx).await?;
    let mut uninstall = vec!["uninstall", "lakeform", "--wait", "--timeout", "120s"];
    uninstall.extend(base);
    run(&helm, &uninstall, None).await?;
    // the pods go after their ReplicaSet (garbage collector, then the kubelet's termination)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let after = release_objects(&ctx).await?;
        if after.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("60 s after helm uninstall, objects of the release are still there: {after:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let crds = kubectl(&ctx, &["get", "crd", "-o", "name"]).await?;
    for crd in [
        "datalakes",
        "crawlers",
        "workflows",
        "workflowruns",
        "blueprints",
        "clusterblueprints",
        "grants",
    ] {
        if !crds.contains(&format!("{crd}.lakeform.dev")) {
            bail!("the CRD {crd}.lakeform.dev should stay after uninstall; CRDs: {crds}");
        }
    }
    println!(
        "helm install + uninstall: {} objects made, none left",
        before.len()
    );
    Ok(())
}

/// Scale the release's operator to 0 and wait until its pods are gone (60 s at most).
async fn stop_operator(ctx: &TestContext) -> Result<()> {
    kubectl(ctx, &["scale", "deployment/lakeform", "--replicas=0"]).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pods = kubectl(
            ctx,
            &[
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/instance=lakeform",
                "-o",
                "name",
            ],
        )
        .await?;
        if pods.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("60 s after scaling the operator to 0, its pods are still there: {pods}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Every object of the test's release: in its namespace (all kinds the chart renders, plus the
/// pods it ran) and the cluster-scoped ones named after the namespace.
async fn release_objects(ctx: &TestContext) -> Result<Vec<String>> {
    let kinds = "deployments,replicasets,pods,services,serviceaccounts,secrets,configmaps,roles,rolebindings,leases";
    let namespaced = kubectl(
        ctx,
        &[
            "get",
            kinds,
            "-l",
            "app.kubernetes.io/instance=lakeform",
            "-o",
            "name",
        ],
    )
    .await?;
    let leases = kubectl(ctx, &["get", "leases", "-o", "name"]).await?;
    let cluster = kubectl(
        ctx,
        &["get", "clusterroles,clusterrolebindings", "-o", "name"],
    )
    .await?;
    let mut objects: BTreeSet<String> = namespaced
        .lines()
        .chain(leases.lines())
        .map(str::to_string)
        .collect();
    objects.extend(
        cluster
            .lines()
            .filter(|name| name.contains(&ctx.ns))
            .map(str::to_string),
    );
    Ok(objects.into_iter().collect())
}

/// `kubectl` in the test namespace; its stdout.
async fn kubectl(ctx: &TestContext, args: &[&str]) -> Result<String> {
    let kubeconfig = ctx.env.kubeconfig.to_string_lossy().to_string();
    let mut all = vec!["--kubeconfig", &kubeconfig, "--namespace", &ctx.ns];
    all.extend(args);
    let out = run(&ctx.env.kubectl, &all, None).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}
