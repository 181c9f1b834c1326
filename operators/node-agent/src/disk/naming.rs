//! Stable NodeDisk object names: from the WWN, else the serial (with the model), else a loop
//! device's backing file — never from the kernel name, which can change across boots.

use super::discover::DiscoveredDisk;

/// Kubernetes object names (DNS-1123 subdomains) are at most 253 characters.
const MAX_NAME: usize = 253;

/// The stable identity of a disk, before sanitizing.
pub fn stable_id(d: &DiscoveredDisk) -> Option<String> {
    if let Some(w) = d.wwn.as_deref().filter(|w| !w.trim().is_empty()) {
        return Some(format!("wwn-{w}"));
    }
    if let Some(s) = d.serial.as_deref().filter(|s| !s.trim().is_empty()) {
        return Some(match d.model.as_deref().filter(|m| !m.trim().is_empty()) {
            Some(m) => format!("{m}-{s}"),
            None => format!("serial-{s}"),
        });
    }
    if let Some(f) = d.backing_file.as_deref().filter(|f| !f.trim().is_empty()) {
        return Some(format!("loop-{f}"));
    }
    // udev's by-path names the slot: stable as long as the disk stays in it.
    d.by_path.first().map(|p| {
        let p = p.strip_prefix("/dev/disk/by-path/").unwrap_or(p);
        format!("path-{p}")
    })
}

/// The NodeDisk name: `<node>-<stable id>`, sanitized to a DNS-1123 subdomain. A disk with no
/// stable identity at all (no WWN, serial, backing file or by-path link, e.g. a virtio disk
/// without a serial) is named `<node>-unstable-<kernel name>`, which says what it is.
pub fn object_name(node: &str, d: &DiscoveredDisk) -> String {
    let id = stable_id(d).unwrap_or_else(|| format!("unstable-{}", d.kernel_name));
    sanitize(&format!("{node}-{id}"))
}

/// Lowercases; anything outside `[a-z0-9.-]` becomes `-` (runs collapse); trims non-alphanumeric
/// ends. When characters were replaced or the name had to be cut, a hash of the raw string is
/// appended so that distinct ids stay distinct.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut lossy = false;
    for c in raw.chars().flat_map(char::to_lowercase) {
        let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
        let c = if ok {
            c
        } else {
            lossy = true;
            '-'
        };
        // Dot-separated labels must start and end alphanumeric: no `.-`, `-.`, `..`.
        let prev_alnum = out
            .chars()
            .last()
            .is_some_and(|p| p.is_ascii_alphanumeric());
        match c {
            '-' if out.ends_with('-') => {}
            '-' if out.ends_with('.') => {
                out.pop();
                out.push('-');
            }
            '.' if !prev_alnum => {
                lossy = true;
                if out.ends_with('.') {
                    out.pop();
                }
                if !out.ends_with('-') {
                    out.push('-');
                }
            }
            c => out.push(c),
        }
    }
    let trimmed = out
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if !lossy && trimmed.len() <= MAX_NAME && !trimmed.is_empty() {
        return trimmed;
    }
    let hash = format!("{:08x}", fnv1a(raw.as_bytes()) as u32);
    let keep = MAX_NAME - hash.len() - 1;
    let head: String = trimmed.chars().take(keep).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// FNV-1a: stable across Rust versions and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> DiscoveredDisk {
        DiscoveredDisk {
            kernel_name: "sdb".into(),
            path: "/dev/sdb".into(),
            ..Default::default()
        }
    }

    #[test]
    fn wwn_first() {
        let d = DiscoveredDisk {
            wwn: Some("0x5000C500A1B2C3D4".into()),
            serial: Some("ZA1".into()),
            ..disk()
        };
        assert_eq!(object_name("node-1", &d), "node-1-wwn-0x5000c500a1b2c3d4");
    }

    #[test]
    fn serial_with_model_is_sanitized_and_hashed() {
        let d = DiscoveredDisk {
            serial: Some("S3Z9NB0K123456".into()),
            model: Some("Samsung SSD 860".into()),
            ..disk()
        };
        let n = object_name("w1", &d);
        assert!(n.starts_with("w1-samsung-ssd-860-s3z9nb0k123456-"), "{n}");
        assert!(!n.contains("sdb"));
        // Two serials that sanitize alike stay apart.
        let other = DiscoveredDisk {
            serial: Some("S3Z9NB0K123456".into()),
            model: Some("Samsung_SSD_860".into()),
            ..disk()
        };
        assert_ne!(n, object_name("w1", &other));
    }

    #[test]
    fn loop_from_backing_file() {
        let d = DiscoveredDisk {
            kernel_name: "loop3".into(),
            backing_file: Some("/var/lib/disks/a.img".into()),
            ..disk()
        };
        let n = object_name("n", &d);
        assert!(n.starts_with("n-loop-var-lib-disks-a.img-"), "{n}");
        assert!(!n.contains("loop3"));
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let d = DiscoveredDisk {
            serial: Some("x".repeat(400)),
            ..disk()
        };
        let a = object_name("n", &d);
        assert!(a.len() <= 253, "{}", a.len());
        let d2 = DiscoveredDisk {
            serial: Some(format!("{}y", "x".repeat(399))),
            ..disk()
        };
        assert_ne!(a, object_name("n", &d2));
        assert!(a.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn dots_only_between_alphanumerics() {
        assert!(sanitize("a.-b").starts_with("a-b"));
        assert!(sanitize("a..b").starts_with("a-b"));
        assert_eq!(sanitize("node.example.com-x"), "node.example.com-x");
    }

    #[test]
    fn no_identity_is_marked_unstable() {
        assert_eq!(object_name("n", &disk()), "n-unstable-sdb");
    }

    #[test]
    fn by_path_when_nothing_else() {
        let d = DiscoveredDisk {
            by_path: vec!["/dev/disk/by-path/pci-0000:00:1f.2-ata-1".into()],
            ..disk()
        };
        let n = object_name("n", &d);
        assert!(n.starts_with("n-path-pci-0000-00-1f.2-ata-1-"), "{n}");
    }
}
