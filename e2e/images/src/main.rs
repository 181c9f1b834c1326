//! `agility-images`: builds the images of `e2e/images/images.toml` as OCI archives and imports
//! them into the local node's containerd or into kind. No registry, no Docker engine.

use std::path::{Path, PathBuf};
use std::process::Command;

use agility_images::assemble;
use agility_images::defs::{Definitions, ImageDef};
use agility_images::oci;
use agility_images::plan::BuildEnv;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build OCI image archives without a registry and import them")]
struct Cli {
    /// The image definitions.
    #[arg(long, default_value = "e2e/images/images.toml")]
    defs: PathBuf,
    /// Where archives are written (`<name>.tar`).
    #[arg(long, env = "AGILITY_IMAGES_DIR")]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build archives for the named images.
    Build {
        #[arg(required_unless_present = "all")]
        names: Vec<String>,
        /// Every image of the definitions file.
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Import archives into containerd (default) or a kind cluster; missing archives are built first.
    Import {
        #[arg(required_unless_present = "all")]
        names: Vec<String>,
        /// Every image of the definitions file.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// containerd's socket.
        #[arg(
            long,
            env = "AGILITY_CONTAINERD_ADDRESS",
            default_value = "/run/agility-e2e/containerd/containerd.sock"
        )]
        containerd_address: String,
        /// Load into this kind cluster instead.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Print name, reference and archive path of every image.
    List,
}

fn home_cache() -> PathBuf {
    std::env::var_os("AGILITY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/agility")
        })
}

fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn build(def: &ImageDef, env: &BuildEnv, out: &Path) -> Result<()> {
    let start = std::time::Instant::now();
    let epoch = epoch();
    let image =
        assemble::assemble(def, env, epoch).with_context(|| format!("assembling {}", def.name))?;
    let archive = oci::build(
        &def.reference,
        &image.run,
        &image.rootfs.to_tar(epoch)?,
        epoch,
    )?;
    let path = out.join(format!("{}.tar", def.name));
    let partial = path.with_extension("tar.partial");
    std::fs::write(&partial, &archive.bytes)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path)?;
    println!(
        "{}\t{}\t{}\t{:.1} MiB\t{:.1}s",
        def.reference,
        archive.manifest_digest,
        path.display(),
        archive.bytes.len() as f64 / 1_048_576.0,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The manifest digest recorded in an archive's index.json.
fn archive_digest(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{} is not built; run `build` first", path.display()))?;
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries()? {
        let entry = entry?;
        if entry.path()?.as_os_str() == "index.json" {
            let index: serde_json::Value = serde_json::from_reader(entry)?;
            if let Some(d) = index["manifests"][0]["digest"].as_str() {
                return Ok(d.to_string());
            }
        }
    }
    bail!("{} has no index.json manifest", path.display())
}

fn import(
    def: &ImageDef,
    env: &BuildEnv,
    out: &Path,
    address: &str,
    kind: Option<&str>,
) -> Result<()> {
    let path = out.join(format!("{}.tar", def.name));
    if !path.exists() {
        build(def, env, out)?;
    }
    let digest = archive_digest(&path)?;
    let status = if let Some(cluster) = kind {
        Command::new("kind")
            .args(["load", "image-archive"])
            .arg(&path)
            .args(["--name", cluster])
            .status()
            .context("running kind (is it on PATH?)")?
    } else {
        let listed = Command::new("ctr")
            .args(["--address", address, "-n", "k8s.io", "images", "ls"])
            .output()
            .context("running ctr (Debian package containerd)")?;
        if !listed.status.success() {
            bail!("ctr images ls: {}", String::from_utf8_lossy(&listed.stderr));
        }
        let present = String::from_utf8_lossy(&listed.stdout).lines().any(|l| {
            l.split_whitespace().next() == Some(def.reference.as_str()) && l.contains(&digest)
        });
        if present {
            println!("{}\t{digest}\talready imported", def.reference);
            return Ok(());
        }
        Command::new("ctr")
            .args(["--address", address, "-n", "k8s.io", "images", "import"])
            .arg("--all-platforms")
            .arg(&path)
            .status()
            .context("running ctr images import")?
    };
    if !status.success() {
        bail!("importing {} failed ({status})", path.display());
    }
    println!("{}\t{digest}\timported", def.reference);
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let repo = std::env::current_dir()?;
    let text = std::fs::read_to_string(&cli.defs)
        .with_context(|| format!("reading {}", cli.defs.display()))?;
    let defs = Definitions::parse(&text)?;
    let cache = home_cache();
    let out = cli.out.unwrap_or_else(|| cache.join("images"));
    std::fs::create_dir_all(&out)?;
    let env = BuildEnv {
        target_dir: std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("target")),
        repo,
        cache,
    };
    match cli.command {
        // `--all` and "no names" select the same thing; clap makes sure one of them was asked for.
        Cmd::Build { names, all: _ } => {
            for def in defs.select(&names)? {
                build(def, &env, &out)?;
            }
        }
        Cmd::Import {
            names,
            all: _,
            containerd_address,
            kind,
        } => {
            for def in defs.select(&names)? {
                import(def, &env, &out, &containerd_address, kind.as_deref())?;
            }
        }
        Cmd::List => {
            for def in defs.select(&[])? {
                println!(
                    "{}\t{}\t{}",
                    def.name,
                    def.reference,
                    out.join(format!("{}.tar", def.name)).display()
                );
            }
        }
    }
    Ok(())
}
