//! Builds fake host trees (sysfs `block/`, `dev/`, mountinfo) under a directory, for tests and
//! benches of discovery without real disks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::host::HostPaths;

/// A disk to lay out under `<root>/sys/block/<name>`.
#[derive(Clone, Debug, Default)]
pub struct FakeDisk {
    pub name: String,
    pub dev: (u32, u32),
    pub sectors: u64,
    pub ro: bool,
    pub removable: bool,
    pub rotational: bool,
    pub model: Option<String>,
    pub vendor: Option<String>,
    /// Written to `device/serial`.
    pub serial: Option<String>,
    /// Written to `device/wwid`.
    pub wwid: Option<String>,
    pub backing_file: Option<String>,
    pub partitions: Vec<FakePartition>,
    pub holders: Vec<String>,
}

/// A partition: (name, dev, sectors, holders).
pub type FakePartition = (String, (u32, u32), u64, Vec<String>);

/// A fake host rooted at a directory.
pub struct FakeHost {
    pub root: PathBuf,
    mountinfo: Vec<String>,
}

impl FakeHost {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("sys/block"))?;
        fs::create_dir_all(root.join("dev"))?;
        fs::create_dir_all(root.join("proc/1"))?;
        let host = FakeHost {
            root,
            mountinfo: Vec::new(),
        };
        host.flush()?;
        Ok(host)
    }

    pub fn paths(&self) -> HostPaths {
        HostPaths::under(&self.root)
    }

    fn block(&self) -> PathBuf {
        self.root.join("sys/block")
    }

    pub fn add_disk(&self, d: &FakeDisk) -> io::Result<()> {
        let dir = self.block().join(&d.name);
        fs::create_dir_all(dir.join("queue"))?;
        fs::create_dir_all(dir.join("holders"))?;
        write(&dir.join("dev"), &format!("{}:{}\n", d.dev.0, d.dev.1))?;
        write(&dir.join("size"), &format!("{}\n", d.sectors))?;
        write(&dir.join("ro"), if d.ro { "1\n" } else { "0\n" })?;
        write(
            &dir.join("removable"),
            if d.removable { "1\n" } else { "0\n" },
        )?;
        write(
            &dir.join("queue/rotational"),
            if d.rotational { "1\n" } else { "0\n" },
        )?;
        let dev = dir.join("device");
        for (file, v) in [
            ("model", &d.model),
            ("vendor", &d.vendor),
            ("serial", &d.serial),
            ("wwid", &d.wwid),
        ] {
            if let Some(v) = v {
                fs::create_dir_all(&dev)?;
                write(&dev.join(file), &format!("{v}\n"))?;
            }
        }
        if let Some(b) = &d.backing_file {
            fs::create_dir_all(dir.join("loop"))?;
            write(&dir.join("loop/backing_file"), &format!("{b}\n"))?;
        }
        for h in &d.holders {
            write(&dir.join("holders").join(h), "")?;
        }
        for (name, (ma, mi), sectors, holders) in &d.partitions {
            let p = dir.join(name);
            fs::create_dir_all(p.join("holders"))?;
            write(&p.join("partition"), "1\n")?;
            write(&p.join("dev"), &format!("{ma}:{mi}\n"))?;
            write(&p.join("size"), &format!("{sectors}\n"))?;
            for h in holders {
                write(&p.join("holders").join(h), "")?;
            }
        }
        Ok(())
    }

    /// A device-mapper/md device (`dm-0`) that disks can name as a holder.
    pub fn add_stacked(&self, name: &str, dev: (u32, u32), holders: &[&str]) -> io::Result<()> {
        let dir = self.block().join(name);
        fs::create_dir_all(dir.join("holders"))?;
        write(&dir.join("dev"), &format!("{}:{}\n", dev.0, dev.1))?;
        write(&dir.join("size"), "0\n")?;
        for h in holders {
            write(&dir.join("holders").join(h), "")?;
        }
        Ok(())
    }

    /// A mountinfo line for `dev` mounted at `mount_point`.
    pub fn mount(&mut self, dev: (u32, u32), source: &str, mount_point: &str) -> io::Result<()> {
        let id = 100 + self.mountinfo.len();
        self.mountinfo.push(format!(
            "{id} 1 {}:{} / {mount_point} rw,relatime shared:1 - ext4 {source} rw",
            dev.0, dev.1
        ));
        self.flush()
    }

    /// A `/dev/disk/<kind>/<link>` symlink to `../../<name>`.
    pub fn link(&self, kind: &str, link: &str, name: &str) -> io::Result<()> {
        let dir = self.root.join("dev/disk").join(kind);
        fs::create_dir_all(&dir)?;
        std::os::unix::fs::symlink(Path::new("../..").join(name), dir.join(link))
    }

    fn flush(&self) -> io::Result<()> {
        let mut text = String::from("22 27 0:21 / /proc rw,relatime - proc proc rw\n");
        for l in &self.mountinfo {
            text.push_str(l);
            text.push('\n');
        }
        write(&self.root.join("proc/1/mountinfo"), &text)
    }
}

fn write(p: &Path, s: &str) -> io::Result<()> {
    fs::write(p, s)
}
