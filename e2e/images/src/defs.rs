//! Image definitions (`e2e/images/images.toml`): what goes into each image and how it runs.
//! Adding an engine from Debian is a few lines: its packages, its binaries, its user and entrypoint.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole definitions file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    /// One entry per image, in file order.
    pub image: Vec<ImageDef>,
}

/// One image.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageDef {
    /// Short name: the CLI argument and the archive file name.
    pub name: String,
    /// Full reference, e.g. `localhost/agility/redis:7.0.15`.
    pub reference: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `uid[:gid]` the process runs as.
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    pub ports: Vec<u16>,
    pub labels: BTreeMap<String, String>,
    /// Debian packages installed on the build host (when missing) before files are copied from it.
    pub packages: Vec<String>,
    /// Upstream versions some of `packages` must have (package → version, e.g. redis-server →
    /// 7.0.15), so that the tag cannot drift from what is inside.
    pub package_versions: BTreeMap<String, String>,
    /// C programs compiled with `gcc -static -Os`.
    pub static_c: Vec<StaticC>,
    /// Binaries of this workspace, built with `cargo build --release`.
    pub workspace_bins: Vec<WorkspaceBin>,
    /// Binaries of crates from crates.io, built once with `cargo install --locked` into the cache.
    pub crates: Vec<CrateBin>,
    /// Host executables copied with their shared-library closure (symlinks resolved).
    pub binaries: Vec<Copy>,
    /// Host files or directory trees copied as they are.
    pub files: Vec<Copy>,
    pub symlinks: Vec<Symlink>,
    pub dirs: Vec<Dir>,
    /// Accounts written to /etc/passwd and /etc/group (root is always there).
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticC {
    /// Source file, relative to the repository root.
    pub source: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceBin {
    pub package: String,
    pub bin: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrateBin {
    #[serde(rename = "crate")]
    pub krate: String,
    pub version: String,
    pub bin: String,
    pub to: String,
    /// Extra arguments for `cargo install` (e.g. `--features`).
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symlink {
    pub path: String,
    pub target: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dir {
    pub path: String,
    /// Octal mode as a string, e.g. "1777".
    #[serde(default = "default_dir_mode")]
    pub mode: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

fn default_dir_mode() -> String {
    "755".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default = "default_home")]
    pub home: String,
}

fn default_home() -> String {
    "/nonexistent".into()
}

impl Definitions {
    /// Parses and checks the definitions: unique names, references with a tag, absolute targets.
    pub fn parse(text: &str) -> Result<Self> {
        let defs: Definitions =
            toml::from_str(text).map_err(|e| Error::Definitions(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for img in &defs.image {
            if img.name.is_empty() || !seen.insert(img.name.as_str()) {
                return Err(Error::Definitions(format!(
                    "image name {:?} is empty or repeated",
                    img.name
                )));
            }
            let tagged = img
                .reference
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'));
            if !tagged {
                return Err(Error::Definitions(format!(
                    "{}: reference {:?} needs a tag",
                    img.name, img.reference
                )));
            }
            let targets = img
                .static_c
                .iter()
                .map(|s| &s.to)
                .chain(img.workspace_bins.iter().map(|b| &b.to))
                .chain(img.crates.iter().map(|c| &c.to))
                .chain(img.binaries.iter().map(|c| &c.to))
                .chain(img.files.iter().map(|c| &c.to))
                .chain(img.symlinks.iter().map(|s| &s.path))
                .chain(img.dirs.iter().map(|d| &d.path));
            for target in targets {
                if !target.starts_with('/') {
                    return Err(Error::Definitions(format!(
                        "{}: path {target:?} must be absolute",
                        img.name
                    )));
                }
            }
            if let Some(p) = img
                .package_versions
                .keys()
                .find(|p| !img.packages.contains(p))
            {
                return Err(Error::Definitions(format!(
                    "{}: package_versions names {p:?}, which is not in packages",
                    img.name
                )));
            }
            for dir in &img.dirs {
                u32::from_str_radix(&dir.mode, 8).map_err(|_| {
                    Error::Definitions(format!("{}: mode {:?} is not octal", img.name, dir.mode))
                })?;
            }
        }
        Ok(defs)
    }

    /// The named images, or all of them.
    pub fn select(&self, names: &[String]) -> Result<Vec<&ImageDef>> {
        if names.is_empty() {
            return Ok(self.image.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.image.iter().find(|i| &i.name == n).ok_or_else(|| {
                    let known: Vec<_> = self.image.iter().map(|i| i.name.as_str()).collect();
                    Error::Definitions(format!("no image {n:?}; known: {}", known.join(", ")))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[image]]
name = "redis"
reference = "localhost/agility/redis:7.0.15"
entrypoint = ["redis-server"]
user = "999:999"
packages = ["redis-server"]
binaries = [{ from = "/usr/bin/redis-server", to = "/usr/bin/redis-server" }]
dirs = [{ path = "/tmp", mode = "1777" }]
users = [{ name = "redis", uid = 999, gid = 999 }]

[[image]]
name = "garage"
reference = "localhost/agility/garage:2.5.0"
crates = [{ crate = "garage", version = "2.5.0", bin = "garage", to = "/usr/bin/garage" }]
"#;

    #[test]
    fn parses_and_selects() {
        let defs = Definitions::parse(SAMPLE).unwrap();
        assert_eq!(defs.image.len(), 2);
        assert_eq!(defs.image[1].crates[0].krate, "garage");
        assert_eq!(defs.image[0].users[0].home, "/nonexistent");
        assert_eq!(defs.select(&["garage".into()]).unwrap()[0].name, "garage");
        assert_eq!(defs.select(&[]).unwrap().len(), 2);
        assert!(defs.select(&["nope".into()]).is_err());
    }

    #[test]
    fn checked_in_definitions_are_valid() {
        let defs = Definitions::parse(include_str!("../images.toml")).unwrap();
        let reference = |n: &str| defs.select(&[n.into()]).unwrap()[0].reference.clone();
        assert_eq!(reference("pause"), "localhost/agility/pause:3.10");
        assert_eq!(reference("operator"), "localhost/agility/operator:0.1.0");
        assert_eq!(reference("redis"), "localhost/agility/redis:7.0.15");
        let redis = defs.select(&["redis".into()]).unwrap()[0];
        assert_eq!(redis.package_versions["redis-server"], "7.0.15");
        assert!(redis.binaries.iter().any(|b| b.to == "/usr/bin/redis-cli"));
    }

    #[test]
    fn the_mariadb_image_carries_the_engine_and_its_tools() {
        let defs = Definitions::parse(include_str!("../images.toml")).unwrap();
        let m = defs.image.iter().find(|i| i.name == "mariadb").unwrap();
        assert_eq!(m.reference, "localhost/agility/mariadb:10.11");
        assert_eq!(m.package_versions["mariadb-server-core"], "10.11.19");
        for bin in [
            "/usr/sbin/mariadbd",
            "/usr/bin/mariadb-backup",
            "/usr/bin/mbstream",
        ] {
            assert!(m.binaries.iter().any(|b| b.to == bin), "{bin} missing");
        }
    }

    #[test]
    fn the_garage_image_is_built_from_its_crate() {
        let defs = Definitions::parse(include_str!("../images.toml")).unwrap();
        let garage = defs.image.iter().find(|i| i.name == "garage").unwrap();
        assert_eq!(garage.crates[0].krate, "garage");
        assert_eq!(garage.crates[0].version, "2.5.0");
    }

    #[test]
    fn rejects_untagged_relative_and_duplicate() {
        let untagged = "[[image]]\nname='a'\nreference='localhost/agility/a'\n";
        assert!(Definitions::parse(untagged).is_err());
        let relative =
            "[[image]]\nname='a'\nreference='x/a:1'\nfiles=[{from='/etc/hosts', to='etc/hosts'}]\n";
        assert!(Definitions::parse(relative).is_err());
        let dup =
            "[[image]]\nname='a'\nreference='x/a:1'\n[[image]]\nname='a'\nreference='x/a:2'\n";
        assert!(Definitions::parse(dup).is_err());
        let unknown = "[[image]]\nname='a'\nreference='x/a:1'\ncolour='red'\n";
        assert!(Definitions::parse(unknown).is_err());
        let unlisted_pin =
            "[[image]]\nname='a'\nreference='x/a:1'\npackage_versions={ redis-server='7.0.15' }\n";
        assert!(Definitions::parse(unlisted_pin).is_err());
        let bad_mode = "[[image]]\nname='a'\nreference='x/a:1'\ndirs=[{path='/d', mode='9'}]\n";
        assert!(Definitions::parse(bad_mode).is_err());
    }
}
