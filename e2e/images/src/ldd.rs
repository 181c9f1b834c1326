//! The shared libraries a dynamically linked binary needs, from `ldd`'s output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Paths of the libraries (and the dynamic loader) in `ldd` output. The vDSO has no file and is
/// skipped; a library ldd cannot find is an error, since the image would not start without it.
pub fn parse(output: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in output.lines().map(str::trim) {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((lib, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(Error::Command {
                        command: "ldd".into(),
                        detail: format!("library {} not found", lib.trim()),
                    });
                }
                rest
            }
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// Runs `ldd` on `binary`. A static binary has no dependencies ("not a dynamic executable").
pub fn dependencies(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::Command {
            command: format!("ldd {}", binary.display()),
            detail: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(Error::Command {
            command: format!("ldd {}", binary.display()),
            detail: stderr.into_owned(),
        });
    }
    parse(&stdout).map_err(|e| match e {
        Error::Command { detail, .. } => Error::Command {
            command: format!("ldd {}", binary.display()),
            detail,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libraries_and_loader_and_skips_vdso() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd4b5f2000)\n\
                   \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f0e1c000000)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1be00000)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c2a0000)\n";
        assert_eq!(
            parse(out).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn static_binary_output_has_no_libraries() {
        assert!(parse("\tnot a dynamic executable\n").unwrap().is_empty());
        assert!(parse("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn missing_library_is_an_error() {
        let out =
            "\tlibgone.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n";
        let err = parse(out).unwrap_err().to_string();
        assert!(err.contains("libgone.so.1"), "{err}");
    }

    #[test]
    fn finds_the_real_closure_of_a_host_binary() {
        // /bin/sh is dynamically linked on every Debian host: libc and the loader must show up.
        let libs = dependencies(Path::new("/bin/sh")).unwrap();
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libs:?}"
        );
    }
}
