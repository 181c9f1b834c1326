//! Turns a definition into a root filesystem and run configuration: runs its [`plan`], copies
//! binaries with their shared-library closure, then adds files, directories, links and accounts.

use std::collections::BTreeMap;
use std::path::Path;

use crate::debian;
use crate::defs::ImageDef;
use crate::error::{Error, Result};
use crate::ldd;
use crate::oci::{RunConfig, rfc3339};
use crate::plan::{self, BuildEnv};
use crate::rootfs::{Rootfs, accounts};

/// Label carrying the exact Debian package versions an image was made from.
pub const LABEL_DEBIAN_PACKAGES: &str = "dev.agility.image.debian-packages";

/// A root filesystem ready to be packed, and how it runs.
#[derive(Debug)]
pub struct Assembled {
    pub rootfs: Rootfs,
    pub run: RunConfig,
}

/// Copies an executable (its real file, named as `to`) and every library `ldd` lists, at the same
/// paths. The real file matters: redis-server is a symlink to redis-check-rdb and picks its mode
/// from the name it is started under.
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

/// The image's run configuration with the standard OCI labels filled in (the definition's own
/// labels win). `packages` are the installed Debian versions, recorded so the image says exactly
/// what it carries.
pub fn run_config(def: &ImageDef, epoch: u64, packages: &BTreeMap<String, String>) -> RunConfig {
    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.title".into(), def.name.clone());
    if let Some((_, tag)) = def.reference.rsplit_once(':') {
        labels.insert("org.opencontainers.image.version".into(), tag.to_string());
    }
    labels.insert("org.opencontainers.image.created".into(), rfc3339(epoch));
    labels.insert("org.opencontainers.image.vendor".into(), "Agility".into());
    if !packages.is_empty() {
        let list: Vec<String> = packages.iter().map(|(p, v)| format!("{p}={v}")).collect();
        labels.insert(LABEL_DEBIAN_PACKAGES.into(), list.join(" "));
    }
    labels.extend(def.labels.clone());
    RunConfig {
        entrypoint: def.entrypoint.clone(),
        cmd: def.cmd.clone(),
        user: def.user.clone(),
        workdir: def.workdir.clone(),
        env: def.env.clone(),
        ports: def.ports.clone(),
        labels,
    }
}

/// Builds the root filesystem and run configuration of `def`.
pub fn assemble(def: &ImageDef, env: &BuildEnv, epoch: u64) -> Result<Assembled> {
    let plan = plan::plan(def, env);
    debian::ensure_installed(&plan.packages)?;
    let packages = debian::check_versions(&plan.packages, &def.package_versions)?;
    for step in plan.steps.iter().filter(|s| s.needed()) {
        if let Some(dir) = step.output.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Write {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        plan::run(&mut step.command())?;
    }

    let mut fs = Rootfs::new();
    for (host, to) in &plan.binaries {
        add_binary(&mut fs, host, to)?;
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
    Ok(Assembled {
        rootfs: fs,
        run: run_config(def, epoch, &packages),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::Definitions;
    use crate::oci;

    const DEF: &str = r#"
[[image]]
name = "tool"
reference = "localhost/agility/tool:1.2.3"
entrypoint = ["/usr/bin/tool"]
user = "65532:65532"
workdir = "/work"
env = ["MODE=test"]
ports = [9000]
files = [{ from = "SOURCE", to = "/usr/share/tool" }]
dirs = [{ path = "/work", mode = "700", uid = 65532, gid = 65532 }]
symlinks = [{ path = "/usr/bin/tool-link", target = "tool" }]
users = [{ name = "tool", uid = 65532, gid = 65532 }]
labels = { "org.opencontainers.image.title" = "the tool" }
"#;

    #[test]
    fn same_inputs_give_the_same_image_digest() {
        let dir = std::env::temp_dir().join(format!("agility-images-asm-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/sub")).unwrap();
        std::fs::write(dir.join("src/b.txt"), b"b").unwrap();
        std::fs::write(dir.join("src/sub/a.txt"), b"a").unwrap();
        let text = DEF.replace("SOURCE", &dir.join("src").display().to_string());
        let defs = Definitions::parse(&text).unwrap();
        let env = BuildEnv {
            repo: dir.clone(),
            target_dir: dir.join("target"),
            cache: dir.join("cache"),
        };
        let build = || {
            let a = assemble(&defs.image[0], &env, 1_700_000_000).unwrap();
            oci::build(
                &defs.image[0].reference,
                &a.run,
                &a.rootfs.to_tar(1_700_000_000).unwrap(),
                1_700_000_000,
            )
            .unwrap()
        };
        let (first, second) = (build(), build());
        assert_eq!(first.manifest_digest, second.manifest_digest);
        assert_eq!(first.layer_digest, second.layer_digest);
        assert_eq!(first.bytes, second.bytes);

        let fs = assemble(&defs.image[0], &env, 0).unwrap().rootfs;
        for path in [
            "/usr/share/tool/b.txt",
            "/usr/share/tool/sub/a.txt",
            "/usr/bin/tool-link",
            "/work",
            "/tmp",
            "/etc/passwd",
        ] {
            assert!(fs.contains(path), "{path} missing");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn standard_labels_are_added_and_definition_labels_win() {
        let defs = Definitions::parse(&DEF.replace("SOURCE", "/nonexistent")).unwrap();
        let packages = BTreeMap::from([("redis-server".to_string(), "5:7.0.15-1".to_string())]);
        let run = run_config(&defs.image[0], 0, &packages);
        let label = |k: &str| run.labels.get(k).map(String::as_str);
        assert_eq!(label("org.opencontainers.image.title"), Some("the tool"));
        assert_eq!(label("org.opencontainers.image.version"), Some("1.2.3"));
        assert_eq!(
            label("org.opencontainers.image.created"),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            label(LABEL_DEBIAN_PACKAGES),
            Some("redis-server=5:7.0.15-1")
        );
        assert_eq!(run.user.as_deref(), Some("65532:65532"));
        assert_eq!(run.workdir.as_deref(), Some("/work"));
        assert_eq!(run.ports, vec![9000]);
    }
}
