//! `agility-operator`: runs every enabled Agility product controller in one process.
//! See `docs/core.md` for how products plug in.

mod cli;
mod crdgen;
mod products;
mod run;

use anyhow::{Context, Result, bail};
use clap::Parser;

use cli::{Cli, Command};

fn main() -> Result<()> {
    match Cli::parse().into_command() {
        Command::Crdgen(args) => {
            let crds: Vec<_> = products::all().iter().flat_map(|p| p.crds()).collect();
            let files = crdgen::render(&crds)?;
            if args.check {
                let problems = crdgen::diff(&args.out, &files)?;
                if !problems.is_empty() {
                    for p in &problems {
                        eprintln!("{}: {p}", args.out.display());
                    }
                    bail!(
                        "{} CRD file(s) out of date; run `agility-operator crdgen --out {}`",
                        problems.len(),
                        args.out.display()
                    );
                }
                println!(
                    "{}: {} CRD file(s) up to date",
                    args.out.display(),
                    files.len()
                );
            } else {
                crdgen::write(&args.out, &files)?;
                println!("{}: wrote {} CRD file(s)", args.out.display(), files.len());
            }
            Ok(())
        }
        Command::KmsPlugin(args) => serve(args.log_format, "kms-plugin", kms_plugin(args)),
        Command::OssGateway(args) => serve(args.log_format, "oss-gateway", oss_gateway(args)),
        Command::Run(args) => {
            let format = args.log_format;
            let products = products::select(products::all(), args.controllers.as_deref())
                .map_err(anyhow::Error::msg)?;
            serve(format, "agility-operator", run::run(args, products))
        }
    }
}

/// Starts logging and a multi-threaded runtime, runs `work` to its end and logs how it ended.
fn serve(
    format: agility_core::telemetry::LogFormat,
    what: &str,
    work: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    agility_core::telemetry::init(format).map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let result = runtime.block_on(work);
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "{what} stopped");
    }
    result
}

/// Serves the KMS v2 provider until SIGTERM/SIGINT.
async fn kms_plugin(args: cli::KmsPluginArgs) -> Result<()> {
    use agility_kms::kmsv2::{KmsClient, Provider, Upstream};
    let ca = std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("reading {}", args.ca_file.display()))?;
    let client = KmsClient::new(
        Upstream {
            addr: args.endpoint,
            server_name: args.server_name,
            key: args.key,
            region: args.region,
            credentials: (args.access_key_id, args.secret_access_key),
        },
        &ca,
    )
    .map_err(anyhow::Error::msg)?;
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let stop = agility_core::shutdown::on_signal().context("installing signal handlers")?;
    tracing::info!(socket = %args.socket.display(), "KMS v2 provider serving");
    agility_kms::kmsv2::serve(
        &args.socket,
        std::sync::Arc::new(Provider::new(client)),
        stop,
    )
    .await
    .map_err(anyhow::Error::msg)
}

/// Serves the S3 gateway until SIGTERM/SIGINT.
async fn oss_gateway(args: cli::OssGatewayArgs) -> Result<()> {
    use agility_oss::gateway::{
        Domains, Gateway, GatewayMetrics, GatewayOptions, Listeners, Rules, SigningKey, tls,
    };
    use std::sync::Arc;
    let stop = agility_core::shutdown::on_signal().context("installing signal handlers")?;
    let metrics = GatewayMetrics::new().context("registering metrics")?;
    let rules = Arc::new(Rules::default());
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let gateway = Arc::new(Gateway::new(
        GatewayOptions {
            s3_upstream: args.s3_upstream.clone(),
            web_upstream: args.web_upstream.clone(),
            domains: Domains {
                s3: args.s3_domain.clone(),
                web: args.web_domain.clone(),
            },
            key: SigningKey {
                access_key_id: args.access_key_id.clone(),
                secret_access_key: args.secret_access_key.clone(),
                region: args.region.clone(),
            },
        },
        rules.clone(),
        metrics.clone(),
    )?);
    let watch = match (&args.rules_file, &args.rules_configmap) {
        (Some(file), _) => {
            rules.load_file(file)?;
            None
        }
        (None, Some(name)) => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?;
            let namespace = args
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            tracing::info!(configmap = %name, %namespace, "watching the gateway rules");
            let (name, stop) = (name.clone(), stop.clone());
            let (rules, metrics) = (rules.clone(), metrics.clone());
            Some(tokio::spawn(async move {
                agility_oss::gateway::watch_configmap(
                    client, &namespace, &name, rules, metrics, stop,
                )
                .await;
            }))
        }
        (None, None) => bail!("--rules-configmap or --rules-file is required"),
    };
    let listeners = Listeners::bind(args.listen_s3, args.listen_web, args.listen_admin).await?;
    tracing::info!(
        s3 = %args.listen_s3, web = %args.listen_web, admin = %args.listen_admin,
        tls = tls.is_some(), upstream = %args.s3_upstream, "S3 gateway serving"
    );
    agility_oss::gateway::serve(gateway, listeners, tls, stop).await;
    if let Some(w) = watch {
        w.abort();
    }
    Ok(())
}
