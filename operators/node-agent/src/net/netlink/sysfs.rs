//! Link facts netlink does not carry: speed and PCI address, read from `/sys/class/net`.

use std::path::{Path, PathBuf};

/// A sysfs tree (`/sys` in production, a fake tree in tests).
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    fn net(&self, iface: &str) -> PathBuf {
        self.root.join("class/net").join(iface)
    }

    /// Link speed in Mbit/s; `None` when unknown (the kernel reports -1, or fails the read
    /// for a link that is down, or the interface is not in this sysfs).
    pub fn speed_mbps(&self, iface: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.net(iface).join("speed")).ok()?;
        let speed: i64 = text.trim().parse().ok()?;
        u32::try_from(speed).ok().filter(|s| *s > 0)
    }

    /// The PCI address of the device behind `iface`: the innermost PCI function on the path
    /// the `device` link points to (virtio NICs hang one level below theirs).
    pub fn pci_address(&self, iface: &str) -> Option<String> {
        let target = std::fs::canonicalize(self.net(iface).join("device")).ok()?;
        target
            .components()
            .rev()
            .filter_map(|c| c.as_os_str().to_str())
            .find(|c| is_pci_address(c))
            .map(str::to_string)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `dddd:bb:dd.f` in lower-case hex.
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b[r].iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn speed_and_pci_from_a_fake_tree() {
        let dir = std::env::temp_dir().join(format!("agility-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pci = dir.join("devices/pci0000:00/0000:00:03.0");
        std::fs::create_dir_all(pci.join("virtio0")).unwrap();
        std::fs::create_dir_all(dir.join("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1")).unwrap();
        for (name, speed, dev) in [
            (
                "eth0",
                "10000\n",
                Some("../../../devices/pci0000:00/0000:00:03.0/virtio0"),
            ),
            (
                "eth1",
                "-1\n",
                Some("../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1"),
            ),
            ("veth0", "garbage", None),
        ] {
            let d = dir.join("class/net").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("speed"), speed).unwrap();
            if let Some(dev) = dev {
                symlink(dev, d.join("device")).unwrap();
            }
        }
        let s = Sysfs::new(&dir);
        assert_eq!(s.speed_mbps("eth0"), Some(10000));
        assert_eq!(s.speed_mbps("eth1"), None);
        assert_eq!(s.speed_mbps("veth0"), None);
        assert_eq!(s.speed_mbps("nope"), None);
        assert_eq!(s.pci_address("eth0").as_deref(), Some("0000:00:03.0"));
        assert_eq!(s.pci_address("eth1").as_deref(), Some("0000:3b:00.1"));
        assert_eq!(s.pci_address("veth0"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pci_address_format() {
        assert!(is_pci_address("0000:3b:00.0"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("0000:3B:00.0"));
        assert!(!is_pci_address("virtio0"));
    }
}
