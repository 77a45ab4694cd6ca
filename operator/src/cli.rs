//! Command-line interface.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// lakeform — Lake Formation for Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "lakeform", version = VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: reconcile DataLakes and Crawlers, and receive bucket notifications.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a folder.
    Crds {
        /// Write `<name>.yaml` files into this folder instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Crawl once: list, classify, infer, group and register tables; print the run report.
    Crawl(lakeform_worker::crawl::CrawlArgs),
    /// Run one `sql` or `extract` workflow step (what step Jobs run); print its report.
    Step(lakeform_worker::step::StepArgs),
    /// Work with Crawler objects.
    Crawler {
        #[command(subcommand)]
        command: CrawlerCommand,
    },
    /// Work with Workflow objects.
    Workflow {
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Built-in blueprints, and what an instance of a blueprint would create.
    Blueprint {
        #[command(subcommand)]
        command: BlueprintCommand,
    },
    /// Run SQL on a DataLake's Trino (logged in, over a port-forward) and print the rows.
    Query(crate::cli_query::QueryArgs),
    /// Print who may do what on a DataLake: one line per Grant and where it is enforced.
    Access(crate::cli_access::AccessArgs),
    /// Print the version.
    Version,
    /// Helpers for debugging Jobs and the test environment.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CrawlerCommand {
    /// Start a crawl now: annotate the Crawler `lakeform.dev/run=<token>`; the operator starts
    /// one Job per token.
    Run(RunNowArgs),
}

#[derive(Subcommand, Debug)]
enum BlueprintCommand {
    /// List the built-in blueprints (ClusterBlueprints shipped in `blueprints/`) and their
    /// parameters.
    List,
    /// Print the objects an instance would create, without a cluster (a preview for reviews):
    /// `lakeform blueprint render database-snapshot --set connectionSecret=db --set …`.
    Render(crate::cli_blueprint::RenderArgs),
}

#[derive(Subcommand, Debug)]
enum WorkflowCommand {
    /// Start a run now: annotate the Workflow `lakeform.dev/run=<token>`; the operator starts
    /// one WorkflowRun per token (subject to its concurrencyPolicy).
    Run(RunNowArgs),
    /// Show a workflow's runs, newest first, with the state of each step in DAG order.
    Runs(RunsArgs),
}

/// Arguments of `lakeform workflow runs`.
#[derive(clap::Args, Debug)]
struct RunsArgs {
    /// The Workflow, as `<namespace>/<name>`.
    #[arg(value_name = "NAMESPACE/NAME")]
    workflow: String,
    /// How many runs to show.
    #[arg(long, default_value_t = 5)]
    limit: usize,
    /// Kubeconfig file. Default: in-cluster configuration, or `KUBECONFIG`.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Arguments of `lakeform crawler run` and `lakeform workflow run`.
#[derive(clap::Args, Debug)]
struct RunNowArgs {
    /// The object, as `<namespace>/<name>`.
    #[arg(value_name = "NAMESPACE/NAME")]
    target: String,
    /// Token of the run (default: the current time). Reusing a token starts nothing.
    #[arg(long)]
    token: Option<String>,
    /// Kubeconfig file. Default: in-cluster configuration, or `KUBECONFIG`.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DebugCommand {
    /// Print `NAME=value` for each named environment variable (`NAME=` when unset).
    Env {
        /// Variable names.
        names: Vec<String>,
    },
    /// Exit with status 1 unless each `NAME=VALUE` holds in the environment (a step that fails
    /// until its parameters are right, for testing retries and resumed runs).
    RequireEnv {
        /// `NAME=VALUE` pairs.
        pairs: Vec<String>,
    },
    /// Sleep, then exit 0 (a long-running step, for testing concurrency policies).
    Sleep {
        /// Seconds to sleep.
        seconds: u64,
    },
}

/// Arguments of `lakeform run`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Kubeconfig file. Default: in-cluster configuration, or `KUBECONFIG`.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only these namespaces: repeat the flag or separate them with commas (default: all
    /// namespaces).
    #[arg(
        long = "namespace",
        value_name = "NAMESPACE",
        env = "LAKEFORM_WATCH_NAMESPACE",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_address: std::net::SocketAddr,
    /// How often healthy objects are checked again (e.g. 5m, 30s).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    resync: std::time::Duration,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "lakeform-operator")]
    lease_name: String,
    /// Disable leader election (only for a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Identity in the election and in events (default: the pod or host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Image of the Jobs that run crawls (it must hold the `lakeform` binary).
    #[arg(long, env = "LAKEFORM_WORKER_IMAGE", default_value = DEFAULT_WORKER_IMAGE)]
    worker_image: String,
    /// Address of the bucket-notification receiver (MinIO webhook target endpoint:
    /// `http://<this address>/minio/events`). Unset: Crawlers with `runOnEvents` report that
    /// they cannot run.
    #[arg(long, env = "LAKEFORM_EVENTS_ADDRESS")]
    events_address: Option<std::net::SocketAddr>,
    /// Id of the MinIO webhook target that delivers to the receiver (`notify_webhook:<id>`; the
    /// id of `MINIO_NOTIFY_WEBHOOK_ENABLE_<ID>`, case-sensitive);
    /// buckets are pointed at `arn:minio:sqs::<id>:webhook`.
    #[arg(long, env = "LAKEFORM_EVENTS_TARGET", default_value = "LAKEFORM")]
    events_target: String,
    /// Bearer token the webhook target sends (its `auth_token`); unset: not checked.
    #[arg(long, env = "LAKEFORM_EVENTS_TOKEN", hide_env_values = true)]
    events_token: Option<String>,
    /// Base URL at which pods reach the event receiver (e.g. the operator's events Service,
    /// `http://lakeform-events.lakeform-system.svc:8081`). With `--events-address`, managed
    /// MinIOs get the webhook target in their environment.
    #[arg(long, env = "LAKEFORM_EVENTS_URL", requires = "events_address")]
    events_url: Option<String>,
}

/// The version and the git revision this binary was built from (see `build.rs`), e.g.
/// `0.1.0 (revision 563b59b…)`; `lakeform version` and `--version` print it after the name,
/// and images/build reads it back for the image's labels.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("LAKEFORM_REVISION"),
    ")"
);

/// The worker image of this release: the tag images/build gives the image by default (the
/// workspace version).
const DEFAULT_WORKER_IMAGE: &str = concat!("ghcr.io/lakeform/lakeform:", env!("CARGO_PKG_VERSION"));

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    lakeform_api::validate::parse_duration(s)
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,aws=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let opts = crate::controller::RunOptions {
        kubeconfig: args.kubeconfig,
        namespaces: args.namespaces,
        metrics_address: args.metrics_address,
        resync: args.resync,
        lease: (!args.no_leader_election).then_some((args.lease_namespace, args.lease_name)),
        identity,
        worker_image: args.worker_image,
        events_address: args.events_address,
        events_target: args.events_target,
        events_token: args.events_token,
        events_url: args.events_url,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(crate::controller::run(opts))
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_operator(args),
        Command::Crds { out } => crds(out),
        Command::Crawl(args) => lakeform_worker::crawl::run_blocking(args)
            .map(|_| ())
            .map_err(anyhow::Error::from),
        Command::Step(args) => lakeform_worker::step::run_blocking(args)
            .map(|_| ())
            .map_err(anyhow::Error::from),
        Command::Crawler {
            command: CrawlerCommand::Run(args),
        } => block_on(crawler_run(args)),
        Command::Workflow {
            command: WorkflowCommand::Run(args),
        } => block_on(workflow_run(args)),
        Command::Workflow {
            command: WorkflowCommand::Runs(args),
        } => block_on(workflow_runs(args)),
        Command::Blueprint {
            command: BlueprintCommand::List,
        } => crate::cli_blueprint::list(&mut std::io::stdout().lock()),
        Command::Blueprint {
            command: BlueprintCommand::Render(args),
        } => crate::cli_blueprint::render(&args, &mut std::io::stdout().lock()),
        Command::Query(args) => {
            block_on(crate::cli_query::run(&args, &mut std::io::stdout().lock()))
        }
        Command::Access(args) => {
            block_on(crate::cli_access::run(&args, &mut std::io::stdout().lock()))
        }
        Command::Version => {
            println!("lakeform {VERSION}");
            Ok(())
        }
        Command::Debug {
            command: DebugCommand::Env { names },
        } => {
            let mut stdout = std::io::stdout().lock();
            for name in names {
                let value = std::env::var(&name).unwrap_or_default();
                writeln!(stdout, "{name}={value}")?;
            }
            Ok(())
        }
        Command::Debug {
            command: DebugCommand::Sleep { seconds },
        } => {
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            Ok(())
        }
        Command::Debug {
            command: DebugCommand::RequireEnv { pairs },
        } => {
            for pair in pairs {
                let (name, want) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
                let got = std::env::var(name).unwrap_or_default();
                if got != want {
                    anyhow::bail!("{name} is {got:?}, expected {want:?}");
                }
            }
            Ok(())
        }
    }
}

/// `<namespace>/<name>` of an object named on the command line.
pub(crate) fn split_ref<'a>(what: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('/')
        .filter(|(n, c)| !n.is_empty() && !c.is_empty() && !c.contains('/'))
        .with_context(|| format!("expected the {what} as <namespace>/<name>, got {text:?}"))
}

pub(crate) async fn kube_client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Set the on-demand annotation `lakeform.dev/run=<token>` on a `K` and return it.
async fn annotate_run<K>(args: &RunNowArgs, what: &str) -> anyhow::Result<(K, String)>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let (ns, name) = split_ref(what, &args.target)?;
    let token = args.token.clone().unwrap_or_else(|| {
        jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%S%.3fZ")
            .to_string()
    });
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let api: kube::Api<K> = kube::Api::namespaced(client, ns);
    let patch = serde_json::json!({
        "metadata": {"annotations": {crate::desired::crawler::RUN_ANNOTATION: token}}
    });
    let obj = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .with_context(|| format!("annotating {what} {ns}/{name}"))?;
    Ok((obj, token))
}

/// What `crawler run` / `workflow run` say: nothing new when the object already recorded the
/// token as started, else what the token starts (`started`, e.g. `Job <name>`).
fn print_request(args: &RunNowArgs, kind: &str, token: &str, last: Option<&str>, started: String) {
    if last == Some(token) {
        println!(
            "token {token:?} already started a run of {}: nothing new starts",
            args.target
        );
    } else {
        println!(
            "requested run {token:?} of {kind} {}: {started}",
            args.target
        );
    }
}

/// `lakeform crawler run`: set the on-demand annotation.
async fn crawler_run(args: RunNowArgs) -> anyhow::Result<()> {
    let (crawler, token) = annotate_run::<lakeform_api::crawler::Crawler>(&args, "Crawler").await?;
    let last = crawler
        .status
        .as_ref()
        .and_then(|s| s.last_run_token.as_deref());
    let job = crate::desired::crawler::run_job_name(&crawler, &token);
    print_request(&args, "Crawler", &token, last, format!("Job {job}"));
    Ok(())
}

/// `lakeform workflow run`: set the on-demand annotation.
async fn workflow_run(args: RunNowArgs) -> anyhow::Result<()> {
    let (wf, token) = annotate_run::<lakeform_api::workflow::Workflow>(&args, "Workflow").await?;
    let last = wf.status.as_ref().and_then(|s| s.last_run_token.as_deref());
    let run = crate::desired::workflow::on_demand_run_name(&wf, &token);
    print_request(
        &args,
        "Workflow",
        &token,
        last,
        format!("WorkflowRun {run}"),
    );
    Ok(())
}

/// `lakeform workflow runs`: the newest runs with their steps.
async fn workflow_runs(args: RunsArgs) -> anyhow::Result<()> {
    use lakeform_api::workflow::Workflow;
    use lakeform_api::workflow_run::WorkflowRun;
    let (ns, name) = split_ref("Workflow", &args.workflow)?;
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let wf: Workflow = kube::Api::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("reading Workflow {ns}/{name}"))?;
    let selector = format!(
        "{}={}",
        crate::desired::workflow::LABEL_WORKFLOW,
        crate::desired::workflow::label_value(name)
    );
    let mut runs: Vec<WorkflowRun> = kube::Api::namespaced(client, ns)
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items;
    runs.sort_by_key(|r| std::cmp::Reverse(r.metadata.creation_timestamp.clone().map(|t| t.0)));
    runs.truncate(args.limit);
    print!("{}", crate::desired::workflow::describe_runs(&wf, &runs));
    Ok(())
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn crds(out: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = lakeform_api::crd::all();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(lakeform_api::crd::file_name(crd));
                std::fs::write(&path, lakeform_api::crd::to_yaml(crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            let docs = crds
                .iter()
                .map(lakeform_api::crd::to_yaml)
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    fn watched(args: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.command {
            Command::Run(run) => run.namespaces,
            other => panic!("expected `run`, got {other:?}"),
        }
    }

    #[test]
    fn namespaces_are_comma_separated_or_repeated() {
        assert!(watched(&["lakeform", "run"]).is_empty());
        assert_eq!(
            watched(&["lakeform", "run", "--namespace", "a,b"]),
            ["a", "b"]
        );
        assert_eq!(
            watched(&["lakeform", "run", "--namespace", "a", "--namespace", "b"]),
            ["a", "b"]
        );
    }

    #[test]
    fn version_names_the_release_and_the_revision() {
        let version = super::VERSION;
        let revision = version
            .strip_prefix(concat!(env!("CARGO_PKG_VERSION"), " (revision "))
            .and_then(|rest| rest.strip_suffix(')'))
            .expect("`<version> (revision <rev>)`");
        assert!(
            !revision.is_empty() && !revision.contains(' '),
            "{revision:?}"
        );
        // `--version` prints the same line as `lakeform version`.
        let err = Cli::try_parse_from(["lakeform", "--version"]).expect_err("prints the version");
        assert_eq!(err.to_string().trim_end(), format!("lakeform {version}"));
    }

    #[test]
    fn default_worker_image_is_the_tag_images_build_uses() {
        // images/build tags `ghcr.io/lakeform/lakeform:<workspace version>` by default.
        assert_eq!(
            super::DEFAULT_WORKER_IMAGE,
            format!("ghcr.io/lakeform/lakeform:{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
