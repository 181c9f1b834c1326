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
        Command::KmsPlugin(args) => {
            agility_core::telemetry::init(args.log_format)
                .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the Tokio runtime")?;
            runtime.block_on(kms_plugin(args))
        }
        Command::Run(args) => {
            agility_core::telemetry::init(args.log_format)
                .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
            let products = products::select(products::all(), args.controllers.as_deref())
                .map_err(anyhow::Error::msg)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the Tokio runtime")?;
            let result = runtime.block_on(run::run(args, products));
            if let Err(e) = &result {
                tracing::error!(error = %format!("{e:#}"), "agility-operator stopped");
            }
            result
        }
    }
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
