//! Loop devices for privileged tests and benches: attached on sparse files, detached on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why privileged loop tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        });
    if uid.as_deref() != Some("0") {
        return Some("needs root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control".into());
    }
    if Command::new("losetup").arg("--version").output().is_err() {
        return Some("no losetup".into());
    }
    None
}

/// An attached loop device; detached (and its file removed) on drop.
pub struct Loop {
    pub device: String,
    pub file: PathBuf,
}

impl Loop {
    /// Attaches a new sparse file of `size` bytes.
    pub fn attach(file: PathBuf, size: u64) -> Loop {
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(size).unwrap();
        drop(f);
        let out = Command::new("losetup")
            .args(["-f", "-P", "--show"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Loop { device, file }
    }

    pub fn kernel_name(&self) -> String {
        self.device.trim_start_matches("/dev/").to_string()
    }

    pub fn mkfs_ext4(&self) {
        run("mkfs.ext4", &["-q", "-F", &self.device]);
    }

    /// A DOS partition table with one partition, and the kernel told about it (kernels without
    /// the msdos parser ignore `losetup -P`; partx adds the partition directly).
    pub fn partition(&self) {
        use std::io::{Seek, SeekFrom, Write};
        let mut mbr = [0u8; 512];
        let sectors = (std::fs::metadata(&self.file).unwrap().len() / 512) as u32;
        let entry = &mut mbr[446..462];
        entry[4] = 0x83;
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&(sectors - 2048).to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.device)
            .unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&mbr).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let _ = Command::new("blockdev")
            .args(["--rereadpt", &self.device])
            .output();
        let part = format!("/sys/block/{0}/{0}p1", self.kernel_name());
        if !Path::new(&part).exists() {
            run("partx", &["-a", &self.device]);
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("partx").args(["-d", &self.device]).output();
        let _ = Command::new("losetup").args(["-d", &self.device]).output();
        let _ = std::fs::remove_file(&self.file);
    }
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
