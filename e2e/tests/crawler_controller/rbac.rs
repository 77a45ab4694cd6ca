//! The crawler pods' ServiceAccount may read its Crawler, patch its status, read its DataLake
//! and the lake's credentials Secret — and nothing else (`kubectl auth can-i` against the
//! RBAC-enabled API server).

use anyhow::{Result, ensure};
use lakeform_e2e::TestContext;

use super::common::{Needs, crawler_yaml, ready_lake, staged, wait_ready_is};
use crate::storage::common::{apply, secret};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawler_service_account_has_least_privilege() -> Result<()> {
    staged("crawlctl-rbac", "cr", Needs::default(), scenario).await
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    secret(ctx, "other", "not", "yours").await?;
    apply(ctx, &crawler_yaml("main", lake_name, database, "")).await?;
    apply(ctx, &crawler_yaml("other", lake_name, database, "")).await?;
    wait_ready_is(ctx, "main", "True", "OnDemand").await?;
    wait_ready_is(ctx, "other", "True", "OnDemand").await?;

    let user = format!("system:serviceaccount:{}:main-crawler", ctx.ns);
    let kubeconfig = ctx.env.kubeconfig.to_string_lossy().to_string();
    let lake_ref = format!("datalakes/{lake_name}");
    let checks: Vec<(Vec<&str>, bool)> = vec![
        (vec!["get", "crawlers/main"], true),
        (vec!["get", "crawlers/main", "--subresource=status"], true),
        (vec!["patch", "crawlers/main", "--subresource=status"], true),
        (vec!["get", &lake_ref], true),
        (vec!["get", "secrets/s3"], true),
        (vec!["get", "secrets/other"], false),
        (vec!["list", "secrets"], false),
        (vec!["watch", "secrets"], false),
        (vec!["get", "crawlers/other"], false),
        (
            vec!["patch", "crawlers/other", "--subresource=status"],
            false,
        ),
        (vec!["patch", "crawlers/main"], false),
        (vec!["delete", "crawlers/main"], false),
        (vec!["list", "crawlers"], false),
        (vec!["patch", &lake_ref], false),
        (vec!["create", "jobs.batch"], false),
    ];
    let mut wrong = vec![];
    for (args, allowed) in &checks {
        let out = tokio::process::Command::new(&ctx.env.kubectl)
            .args(["auth", "can-i"])
            .args(args)
            .args(["-n", &ctx.ns, "--as", &user, "--kubeconfig", &kubeconfig])
            .output()
            .await?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let yes = answer == "yes";
        ensure!(
            yes || answer == "no",
            "kubectl auth can-i {args:?}: {answer} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if yes != *allowed {
            wrong.push(format!(
                "{args:?}: {answer}, expected {}",
                if *allowed { "yes" } else { "no" }
            ));
        }
    }
    ensure!(
        wrong.is_empty(),
        "RBAC of main-crawler:\n{}",
        wrong.join("\n")
    );
    eprintln!("{} can-i checks as {user} as expected", checks.len());
    Ok(())
}
