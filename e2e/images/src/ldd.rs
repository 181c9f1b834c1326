//! The shared libraries a dynamically linked binary needs, from `ldd`'s output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Paths of the libraries (and the dynamic loader) in `ldd` output. The vDSO has no file and is skipped.
pub fn parse(output: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in output.lines().map(str::trim) {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs.sort();
    libs.dedup();
    libs
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
    Ok(parse(&stdout))
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
            parse(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn static_binary_output_has_no_libraries() {
        assert!(parse("\tnot a dynamic executable\n").is_empty());
    }
}
