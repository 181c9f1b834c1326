//! Turns a definition into a root filesystem: installs the Debian packages it names on the build
//! host, compiles and builds its programs, and copies binaries with their shared-library closure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::defs::ImageDef;
use crate::error::{Error, Result};
use crate::ldd;
use crate::rootfs::{Rootfs, accounts};

/// Where builds happen and what they may reuse.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// The repository root (sources of `static_c`, the cargo workspace).
    pub repo: PathBuf,
    /// Cargo's target directory for workspace binaries.
    pub target_dir: PathBuf,
    /// Cache root (`~/.cache/agility`): crate installs and C builds land here.
    pub cache: PathBuf,
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| Error::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: shown,
            detail: format!("exited with {status}"),
        })
    }
}

/// Debian packages of `packages` that are not installed.
fn missing_packages(packages: &[String]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .cloned()
        .collect()
}

fn ensure_packages(packages: &[String]) -> Result<()> {
    let missing = missing_packages(packages);
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Copies an executable (its real file, named as `to`) and every library `ldd` lists, at the same paths.
fn add_binary(fs: &mut Rootfs, host: &Path, to: &str) -> Result<()> {
    let real = std::fs::canonicalize(host).map_err(|e| Error::Read {
        path: host.to_path_buf(),
        source: e,
    })?;
    fs.host_file(&real, to)?;
    for lib in ldd::dependencies(&real)? {
        let path = lib.to_string_lossy().into_owned();
        if !fs.contains(&path) {
            fs.host_file(&lib, &path)?;
        }
    }
    Ok(())
}

/// Builds the root filesystem of `def`.
pub fn rootfs(def: &ImageDef, env: &BuildEnv) -> Result<Rootfs> {
    ensure_packages(&def.packages)?;
    let mut fs = Rootfs::new();

    for c in &def.static_c {
        let out_dir = env.cache.join("static-c");
        std::fs::create_dir_all(&out_dir).map_err(|e| Error::Write {
            path: out_dir.clone(),
            source: e,
        })?;
        let out = out_dir.join(format!(
            "{}-{}",
            def.name,
            Path::new(&c.to)
                .file_name()
                .map_or("bin".into(), |n| n.to_string_lossy())
        ));
        run(Command::new("gcc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(&out)
            .arg(env.repo.join(&c.source)))?;
        fs.host_file(&out, &c.to)?;
    }

    for b in &def.workspace_bins {
        run(Command::new("cargo")
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                &b.package,
                "--bin",
                &b.bin,
            ])
            .env("CARGO_TARGET_DIR", &env.target_dir)
            .current_dir(&env.repo))?;
        add_binary(&mut fs, &env.target_dir.join("release").join(&b.bin), &b.to)?;
    }

    for c in &def.crates {
        let root = env
            .cache
            .join("crates")
            .join(format!("{}-{}", c.krate, c.version));
        let bin = root.join("bin").join(&c.bin);
        if !bin.exists() {
            run(Command::new("cargo")
                .args(["install", "--locked", "--version", &c.version, "--root"])
                .arg(&root)
                .args(&c.args)
                .arg(&c.krate))?;
        }
        add_binary(&mut fs, &bin, &c.to)?;
    }

    for b in &def.binaries {
        add_binary(&mut fs, Path::new(&b.from), &b.to)?;
    }
    for f in &def.files {
        fs.host_tree(Path::new(&f.from), &f.to)?;
    }
    for d in &def.dirs {
        // Modes were checked when the definitions were parsed.
        let mode = u32::from_str_radix(&d.mode, 8).unwrap_or(0o755);
        fs.dir(&d.path, mode, d.uid, d.gid)?;
    }
    for l in &def.symlinks {
        fs.symlink(&l.path, &l.target)?;
    }
    let users: Vec<_> = def
        .users
        .iter()
        .map(|u| (u.name.clone(), u.uid, u.gid, u.home.clone()))
        .collect();
    let (passwd, group) = accounts(&users);
    fs.file("/etc/passwd", passwd.into_bytes(), 0o644)?;
    fs.file("/etc/group", group.into_bytes(), 0o644)?;
    Ok(fs)
}
