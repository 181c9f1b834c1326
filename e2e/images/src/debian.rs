//! Debian packages on the build host: installing the ones an image needs and checking that the
//! installed version is the one the image's tag promises.

use std::collections::BTreeMap;
use std::process::Command;

use crate::error::{Error, Result};

/// The installed version of `package` (e.g. `5:7.0.15-1~deb12u10`), or `None` when not installed.
pub fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", package])
        .output()
        .ok()?;
    parse_status(&String::from_utf8_lossy(&out.stdout))
}

/// `dpkg-query -f '${Status}\t${Version}'` output → the version when the package is installed.
fn parse_status(out: &str) -> Option<String> {
    let (status, version) = out.trim().split_once('\t')?;
    (status == "install ok installed" && !version.is_empty()).then(|| version.to_string())
}

/// The upstream part of a Debian version: without the epoch (`5:`) and the Debian revision (`-1~deb12u10`).
pub fn upstream(version: &str) -> &str {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    no_epoch.rsplit_once('-').map_or(no_epoch, |(v, _)| v)
}

/// Installs the packages that are missing (`apt-get install --no-install-recommends`).
pub fn ensure_installed(packages: &[String]) -> Result<()> {
    let missing: Vec<&String> = packages
        .iter()
        .filter(|p| installed_version(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "installing Debian packages: {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    crate::plan::run(Command::new("apt-get").args(["update", "-qq"]))?;
    crate::plan::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Installed versions of `packages`, failing when one of `pinned` (package → upstream version) differs:
/// an image tagged 7.0.15 must not quietly carry another release.
pub fn check_versions(
    packages: &[String],
    pinned: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut versions = BTreeMap::new();
    for p in packages {
        let v = installed_version(p).ok_or_else(|| Error::Command {
            command: format!("dpkg-query -W {p}"),
            detail: "package is not installed".into(),
        })?;
        versions.insert(p.clone(), v);
    }
    for (p, want) in pinned {
        let have = versions.get(p).map(String::as_str).unwrap_or("");
        if upstream(have) != want {
            return Err(Error::Definitions(format!(
                "Debian package {p} is {have:?} on this host, the image needs upstream {want}"
            )));
        }
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_drops_epoch_and_revision() {
        assert_eq!(upstream("5:7.0.15-1~deb12u10"), "7.0.15");
        assert_eq!(upstream("1.6.20~ds1-1+deb12u3"), "1.6.20~ds1");
        assert_eq!(upstream("2.36"), "2.36");
        assert_eq!(upstream("1:1.2-3-4"), "1.2-3");
    }

    #[test]
    fn status_needs_an_installed_package() {
        assert_eq!(
            parse_status("install ok installed\t5:7.0.15-1~deb12u10\n").as_deref(),
            Some("5:7.0.15-1~deb12u10")
        );
        assert_eq!(parse_status("deinstall ok config-files\t5:7.0.15-1"), None);
        assert_eq!(parse_status(""), None);
    }
}
