//! Grants enforced by the lake's real Trino: a DataLake on the environment's MinIO and a REST
//! catalog of the test's own, with a Trino coordinator from the image built here. The admin
//! user makes two tables through Trino; then a Grant gives `alice` three columns of `orders`
//! and only the rows of one country, and `bob` gets only a data location. Trino returns alice
//! exactly those rows and columns, refuses another column, another table, and bob (who has a
//! login but no table Grant). Trino authenticates every user: alice's name with bob's
//! password, or a user without a login, is refused (HTTP 401). Deleting alice's Grant revokes
//! it (her rules and her login) and applying it again restores it, each within the measured
//! time (the kubelet's volume refresh plus Trino's re-read). A second Grant for the same table
//! and a data-location Grant report why they are not enforced.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use lakeform_api::grant::Grant;
use lakeform_e2e::{TestContext, lake, wait_for};

use crate::crawler_controller::common::{catalog, names};
use crate::managed_lake::support::{Images, query, query_as, rows, secret_value, wait_ready};
use crate::storage::common::{apply, delete_lake, secret};
use lakeform_e2e::operator::Operator;

/// How long a Grant's change may take to reach Trino: the kubelet refreshes ConfigMap volumes
/// on its sync (up to a minute and its cache's TTL), Trino re-reads the rules every 5 s.
const PROPAGATION: Duration = Duration::from_secs(180);

const ORDERS: &str = "SELECT * FROM (VALUES (1, 'DE', 10.5e0, 's1'), (2, 'FR', 20.0e0, 's2'), \
     (3, 'DE', 30.25e0, 's3'), (4, 'US', 5.0e0, 's4')) AS t(id, country, amount, secret)";
const ALICE_READ: &str = "SELECT id, country, amount FROM lake.sales.orders ORDER BY id";

fn lake_yaml(ctx: &TestContext, name: &str, catalog: &str, trino: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {{name: {name}}}
spec:
  storage:
    deletionPolicy: Delete
    external:
      endpoint: {endpoint}
      region: {region}
      credentials: {{secretName: s3}}
  zones: [{{name: raw}}]
  catalog:
    external: {{uri: {catalog}, warehouse: {warehouse}}}
    databases: [{{name: sales, zone: raw}}]
  queryEngine:
    trino:
      image: {trino}
      workers: {{replicas: 0}}
      coordinator:
        resources: {{requests: {{cpu: 100m, memory: 1Gi}}, limits: {{memory: 2Gi}}}}
",
        endpoint = ctx.env.s3_endpoint,
        region = ctx.env.s3_region,
        warehouse = ctx.env.catalog_warehouse,
    )
}

fn grant_yaml(name: &str, lake: &str, principal: &str, resource: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Grant
metadata: {{name: {name}}}
spec:
  lakeRef: {{name: {lake}}}
  principal: {principal}
  resource: {resource}
  permissions: [SELECT]
"
    )
}

const ALICE_ORDERS: &str = "{database: sales, table: orders, columns: {include: [id, country, amount]}, \
     rowFilter: \"country = 'DE'\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_limit_columns_rows_and_tables_in_trino() -> Result<()> {
    lake::install_rustls_provider();
    let images = Images::from_env()?;
    let ctx = TestContext::new("grants").await?;
    ctx.require_node().await?;
    let server = catalog(&ctx).await?;
    let (lake_name, _) = names(&ctx, "gr");
    let op = Operator::start(&ctx, "3s")?;
    let result = scenario(&ctx, &lake_name, &server.uri, &images.trino).await;
    if let Err(e) = delete_lake(&ctx, &lake_name).await {
        eprintln!("cleanup: DataLake {lake_name}: {e:#}");
    }
    drop(op);
    result
}

async fn scenario(ctx: &TestContext, lake: &str, catalog: &str, trino: &str) -> Result<()> {
    secret(ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    apply(ctx, &lake_yaml(ctx, lake, catalog, trino)).await?;
    wait_ready(ctx, lake).await?;
    // No Grants yet: everything is allowed; the admin user makes the tables.
    rows(
        ctx,
        lake,
        &format!("CREATE TABLE lake.sales.orders AS {ORDERS}"),
    )
    .await?;
    rows(
        ctx,
        lake,
        "CREATE TABLE lake.sales.returns AS SELECT 1 AS id",
    )
    .await?;
    let alice = grant_yaml(
        "alice-orders",
        lake,
        "{kind: User, name: alice}",
        ALICE_ORDERS,
    );
    apply(ctx, &alice).await?;
    apply(ctx, &bob_location(lake)).await?;
    wait_grant(ctx, "alice-orders", "True", "Enforced").await?;
    // Her login (password file) and her rules reach Trino by the kubelet's volume sync.
    let granted = until(ctx, lake, "alice", ALICE_READ, Expect::Allowed).await?;
    println!("grants: the first Grant reached Trino {granted:.1} s after it was Ready");
    let (ok, out, err) = query(ctx, lake, ALICE_READ, Some("alice")).await?;
    ensure!(ok, "alice's granted read failed: {out}{err}");
    let seen: Vec<&str> = out.lines().skip(1).collect();
    ensure!(
        seen == ["1\tDE\t10.5", "3\tDE\t30.25"],
        "alice sees exactly the DE rows and three columns: {seen:?}"
    );
    access_lists_alice(ctx, lake).await?;
    refused(ctx, lake, "alice", "SELECT secret FROM lake.sales.orders").await?;
    refused(ctx, lake, "alice", "SELECT id FROM lake.sales.returns").await?;
    until(
        ctx,
        lake,
        "bob",
        "SELECT id FROM lake.sales.orders",
        Expect::Denied,
    )
    .await?;
    refused(ctx, lake, "bob", "SELECT id FROM lake.sales.orders").await?;
    names_cannot_be_claimed(ctx, lake).await?;
    not_enforced(ctx, lake).await?;
    revoke_and_restore(ctx, lake, &alice).await
}

/// bob's data-location Grant: no table access, but a principal of the lake (a Trino login).
fn bob_location(lake: &str) -> String {
    grant_yaml(
        "bob-raw",
        lake,
        "{kind: User, name: bob}",
        "{dataLocation: {zone: raw, prefix: orders/}}",
    )
}

/// Trino authenticates: alice's name with bob's password, a user without a login, and that
/// user with a made-up password are all refused before any rule is read.
async fn names_cannot_be_claimed(ctx: &TestContext, lake: &str) -> Result<()> {
    let bob = secret_value(ctx, &format!("{lake}-trino-user-bob"), "TRINO_PASSWORD").await?;
    let (ok, out, err) = query_as(ctx, lake, ALICE_READ, Some("alice"), Some(&bob)).await?;
    ensure!(
        !ok && err.contains("HTTP 401"),
        "alice's name with bob's password must be refused by Trino: {out}{err}"
    );
    let (ok, out, err) = query(ctx, lake, ALICE_READ, Some("mallory")).await?;
    ensure!(
        !ok && err.contains("has no Trino login"),
        "a user without a login has no password to send: {out}{err}"
    );
    let (ok, out, err) = query_as(ctx, lake, ALICE_READ, Some("mallory"), Some("guess")).await?;
    ensure!(
        !ok && err.contains("HTTP 401"),
        "a made-up login must be refused by Trino: {out}{err}"
    );
    println!("grants: alice's name with bob's password and mallory's guess: Trino answered 401");
    Ok(())
}

/// `lakeform access` prints alice's Grant as enforced by Trino, after the admin line.
async fn access_lists_alice(ctx: &TestContext, lake: &str) -> Result<()> {
    let out = tokio::process::Command::new(lakeform_e2e::lakeform_bin()?)
        .arg("access")
        .arg(format!("{}/{lake}", ctx.ns))
        .arg("--kubeconfig")
        .arg(&ctx.env.kubeconfig)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want =
        "User:alice\tsales.orders\tSELECT\tid,country,amount\tcountry = 'DE'\tTrino\talice-orders";
    ensure!(
        out.status.success() && text.lines().any(|l| l == want) && text.contains("User:lakeform"),
        "lakeform access:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A second Grant of the same principal and table conflicts; a data-location Grant is not
/// Trino's to enforce: both say so in their status.
async fn not_enforced(ctx: &TestContext, lake: &str) -> Result<()> {
    let again = grant_yaml(
        "alice-again",
        lake,
        "{kind: User, name: alice}",
        ALICE_ORDERS,
    );
    apply(ctx, &again).await?;
    wait_grant(ctx, "alice-again", "False", "Conflict").await?;
    wait_grant(ctx, "bob-raw", "False", "NotEnforced").await?;
    ctx.api::<Grant>()
        .delete("alice-again", &Default::default())
        .await?;
    Ok(())
}

/// Delete alice's Grant: Trino refuses her (rules or login, whichever reaches it first: she is
/// asked with the password she had) within [`PROPAGATION`]; apply it again: allowed again (her
/// password is derived, so it is the same). Prints both times.
async fn revoke_and_restore(ctx: &TestContext, lake: &str, alice: &str) -> Result<()> {
    let secret = format!("{lake}-trino-user-alice");
    let password = secret_value(ctx, &secret, "TRINO_PASSWORD").await?;
    ctx.api::<Grant>()
        .delete("alice-orders", &Default::default())
        .await?;
    let start = Instant::now();
    loop {
        let (ok, out, err) =
            query_as(ctx, lake, ALICE_READ, Some("alice"), Some(&password)).await?;
        if !ok && (err.contains("PERMISSION_DENIED") || err.contains("HTTP 401")) {
            println!(
                "grants: alice revoked: {}",
                err.lines().last().unwrap_or_default()
            );
            break;
        }
        ensure!(ok, "alice's read failed otherwise: {out}{err}");
        if start.elapsed() > PROPAGATION {
            bail!("alice still reads {PROPAGATION:?} after her Grant was deleted");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let revoked = start.elapsed().as_secs_f64();
    ensure!(
        ctx.api::<k8s_openapi::api::core::v1::Secret>()
            .get_opt(&secret)
            .await?
            .is_none(),
        "alice's login Secret is pruned with her last Grant"
    );
    apply(ctx, alice).await?;
    let restored = until(ctx, lake, "alice", ALICE_READ, Expect::Allowed).await?;
    let again = secret_value(ctx, &secret, "TRINO_PASSWORD").await?;
    ensure!(again == password, "a restored login has the same password");
    println!(
        "grants: revoked in {revoked:.1} s, restored in {restored:.1} s (kubelet sync + 5 s re-read)"
    );
    Ok(())
}

/// What [`until`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The query succeeds.
    Allowed,
    /// Trino's access control refuses it (the user is authenticated).
    Denied,
}

/// Poll `sql` as `user` until it is as `expect`ed; the seconds it took. Anything else (a login
/// not yet in Trino's password file, rules not yet re-read) is polled past.
pub(crate) async fn until(
    ctx: &TestContext,
    lake: &str,
    user: &str,
    sql: &str,
    expect: Expect,
) -> Result<f64> {
    let start = Instant::now();
    loop {
        let (ok, out, err) = query(ctx, lake, sql, Some(user)).await?;
        let done = match expect {
            Expect::Allowed => ok,
            Expect::Denied => !ok && err.contains("PERMISSION_DENIED"),
        };
        if done {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > PROPAGATION {
            bail!("{user}'s {sql:?} still not {expect:?} after {PROPAGATION:?}: {out}{err}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `sql` as `user` is refused by Trino's access control.
async fn refused(ctx: &TestContext, lake: &str, user: &str, sql: &str) -> Result<()> {
    let (ok, out, err) = query(ctx, lake, sql, Some(user)).await?;
    ensure!(
        !ok && err.contains("PERMISSION_DENIED") && err.contains("Access Denied"),
        "{user}'s {sql:?} must be refused by Trino: ok={ok} {out}{err}"
    );
    println!("grants: {user}: {}", err.lines().last().unwrap_or_default());
    Ok(())
}

/// Wait until the Grant's `Ready` has `status` and `reason` for its generation.
pub(crate) async fn wait_grant(
    ctx: &TestContext,
    name: &str,
    status: &str,
    reason: &str,
) -> Result<Grant> {
    let (status, reason) = (status.to_string(), reason.to_string());
    wait_for(
        &ctx.api::<Grant>(),
        name,
        &format!("Ready={status} ({reason})"),
        Duration::from_secs(90),
        move |g: Option<&Grant>| {
            g.and_then(|g| {
                let s = g.status.as_ref()?;
                (s.observed_generation == g.metadata.generation).then_some(())?;
                s.conditions.iter().find(|c| c.type_ == "Ready")
            })
            .is_some_and(|c| c.status == status && c.reason == reason)
        },
    )
    .await
}
