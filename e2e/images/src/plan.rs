//! What building an image's programs takes, decided before anything runs: the Debian packages to
//! install, the commands that produce binaries (gcc, `cargo build`, `cargo install`) and where each
//! binary lands in the image. Kept apart from running it so the recipe of every kind is testable
//! without spending minutes of CPU.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::defs::ImageDef;
use crate::error::{Error, Result};

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

/// One command that writes `output` on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    pub program: String,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    pub cwd: Option<PathBuf>,
    /// The file the command produces.
    pub output: PathBuf,
    /// Skip the command when `output` exists: crate installs are pinned by version and take
    /// minutes, so one build per version is kept in the cache. Other steps always run (they are
    /// quick or incremental and their sources change).
    pub cached: bool,
}

/// Everything an image needs from the host before its root filesystem is assembled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Debian packages that must be installed.
    pub packages: Vec<String>,
    pub steps: Vec<BuildStep>,
    /// Executables to copy with their shared libraries: host path → path in the image.
    pub binaries: Vec<(PathBuf, String)>,
}

impl BuildStep {
    /// Whether the command has to run.
    pub fn needed(&self) -> bool {
        !(self.cached && self.output.exists())
    }

    /// The command to run.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}

/// Runs `cmd`, turning a failure to start or a non-zero exit into [`Error::Command`].
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
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

fn os(parts: &[&str]) -> Vec<OsString> {
    parts.iter().map(OsString::from).collect()
}

/// The plan for `def` in `env`.
pub fn plan(def: &ImageDef, env: &BuildEnv) -> Plan {
    let mut plan = Plan {
        packages: def.packages.clone(),
        ..Plan::default()
    };

    for c in &def.static_c {
        let file = Path::new(&c.to)
            .file_name()
            .map_or("bin".into(), |n| n.to_string_lossy());
        let output = env
            .cache
            .join("static-c")
            .join(format!("{}-{file}", def.name));
        let mut args = os(&["-static", "-Os", "-s", "-o"]);
        args.push(output.clone().into());
        args.push(env.repo.join(&c.source).into());
        plan.steps.push(BuildStep {
            program: "gcc".into(),
            args,
            env: Vec::new(),
            cwd: None,
            output: output.clone(),
            cached: false,
        });
        plan.binaries.push((output, c.to.clone()));
    }

    for b in &def.workspace_bins {
        let output = env.target_dir.join("release").join(&b.bin);
        plan.steps.push(BuildStep {
            program: "cargo".into(),
            args: os(&[
                "build",
                "--release",
                "--locked",
                "-p",
                &b.package,
                "--bin",
                &b.bin,
            ]),
            env: vec![("CARGO_TARGET_DIR".into(), env.target_dir.clone().into())],
            cwd: Some(env.repo.clone()),
            output: output.clone(),
            cached: false,
        });
        plan.binaries.push((output, b.to.clone()));
    }

    for c in &def.crates {
        let root = env
            .cache
            .join("crates")
            .join(format!("{}-{}", c.krate, c.version));
        let output = root.join("bin").join(&c.bin);
        let mut args = os(&["install", "--locked", "--version", &c.version, "--root"]);
        args.push(root.into());
        args.extend(c.args.iter().map(OsString::from));
        args.push(c.krate.clone().into());
        plan.steps.push(BuildStep {
            program: "cargo".into(),
            args,
            env: Vec::new(),
            cwd: None,
            output: output.clone(),
            cached: true,
        });
        plan.binaries.push((output, c.to.clone()));
    }

    for b in &def.binaries {
        plan.binaries.push((PathBuf::from(&b.from), b.to.clone()));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::Definitions;

    const DEFS: &str = r#"
[[image]]
name = "garage"
reference = "localhost/agility/garage:2.5.0"
crates = [{ crate = "garage", version = "2.5.0", bin = "garage", to = "/usr/bin/garage", args = ["--no-default-features", "--features", "lmdb"] }]
entrypoint = ["/usr/bin/garage"]

[[image]]
name = "operator"
reference = "localhost/agility/operator:0.1.0"
workspace_bins = [{ package = "agility-operator", bin = "agility-operator", to = "/usr/bin/agility-operator" }]

[[image]]
name = "pause"
reference = "localhost/agility/pause:3.10"
static_c = [{ source = "e2e/images/pause/pause.c", to = "/pause" }]

[[image]]
name = "redis"
reference = "localhost/agility/redis:7.0.15"
packages = ["redis-server", "redis-tools"]
binaries = [{ from = "/usr/bin/redis-server", to = "/usr/bin/redis-server" }]
"#;

    fn env(cache: &Path) -> BuildEnv {
        BuildEnv {
            repo: "/repo".into(),
            target_dir: "/repo/target".into(),
            cache: cache.to_path_buf(),
        }
    }

    fn plan_of(name: &str, cache: &Path) -> Plan {
        let defs = Definitions::parse(DEFS).unwrap();
        plan(defs.select(&[name.into()]).unwrap()[0], &env(cache))
    }

    #[test]
    fn crate_engine_is_installed_once_per_version_into_the_cache() {
        let cache =
            std::env::temp_dir().join(format!("agility-images-plan-{}", std::process::id()));
        let p = plan_of("garage", &cache);
        let root = cache.join("crates/garage-2.5.0");
        assert_eq!(p.steps.len(), 1);
        let step = &p.steps[0];
        assert_eq!(step.program, "cargo");
        let mut want = os(&["install", "--locked", "--version", "2.5.0", "--root"]);
        want.push(root.clone().into());
        want.extend(os(&[
            "--no-default-features",
            "--features",
            "lmdb",
            "garage",
        ]));
        assert_eq!(step.args, want);
        assert_eq!(step.output, root.join("bin/garage"));
        assert_eq!(
            p.binaries,
            vec![(root.join("bin/garage"), "/usr/bin/garage".to_string())]
        );

        // The install runs only until its binary is in the cache.
        assert!(step.needed());
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/garage"), b"").unwrap();
        assert!(!step.needed());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn workspace_binary_is_built_in_release_with_the_lock_file() {
        let p = plan_of("operator", Path::new("/cache"));
        let step = &p.steps[0];
        assert_eq!(
            step.args,
            os(&[
                "build",
                "--release",
                "--locked",
                "-p",
                "agility-operator",
                "--bin",
                "agility-operator"
            ])
        );
        assert_eq!(step.cwd.as_deref(), Some(Path::new("/repo")));
        assert_eq!(
            step.env,
            vec![("CARGO_TARGET_DIR".into(), OsString::from("/repo/target"))]
        );
        assert!(!step.cached);
        assert_eq!(
            p.binaries,
            vec![(
                PathBuf::from("/repo/target/release/agility-operator"),
                "/usr/bin/agility-operator".to_string()
            )]
        );
    }

    #[test]
    fn c_program_is_compiled_static() {
        let p = plan_of("pause", Path::new("/cache"));
        let step = &p.steps[0];
        assert_eq!(step.program, "gcc");
        assert_eq!(
            step.args,
            os(&[
                "-static",
                "-Os",
                "-s",
                "-o",
                "/cache/static-c/pause-pause",
                "/repo/e2e/images/pause/pause.c"
            ])
        );
        assert_eq!(p.binaries[0].1, "/pause");
    }

    #[test]
    fn debian_engine_needs_only_packages_and_host_binaries() {
        let p = plan_of("redis", Path::new("/cache"));
        assert!(p.steps.is_empty());
        assert_eq!(p.packages, vec!["redis-server", "redis-tools"]);
        assert_eq!(
            p.binaries,
            vec![(
                PathBuf::from("/usr/bin/redis-server"),
                "/usr/bin/redis-server".to_string()
            )]
        );
    }
}
