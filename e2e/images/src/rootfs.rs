//! An in-memory root filesystem and its reproducible tar layer: entries sorted by path, fixed
//! modification time, numeric owners only, so the same inputs always give the same digest.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// What a path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub content: Content,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A root filesystem keyed by relative path (no leading slash).
#[derive(Debug, Default, Clone)]
pub struct Rootfs {
    nodes: BTreeMap<PathBuf, Node>,
}

/// `/usr/bin/x` → `usr/bin/x`, refusing `..` so nothing escapes the image root.
fn relative(path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Definitions(format!(
                    "path {path:?} leaves the image root"
                )));
            }
        }
    }
    Ok(out)
}

impl Rootfs {
    /// A tree with the directories every image has.
    pub fn new() -> Self {
        let mut fs = Rootfs::default();
        for dir in ["etc", "tmp", "usr/bin", "usr/lib", "var"] {
            // The fixed list has no `..`, so this cannot fail.
            let _ = fs.dir(dir, 0o755, 0, 0);
        }
        if let Some(tmp) = fs.nodes.get_mut(Path::new("tmp")) {
            tmp.mode = 0o1777;
        }
        fs
    }

    fn parents(&mut self, rel: &Path) {
        let mut cur = PathBuf::new();
        let parents: Vec<_> = rel
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        for c in parents {
            cur.push(c);
            self.nodes.entry(cur.clone()).or_insert(Node {
                content: Content::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let rel = relative(path)?;
        self.parents(&rel);
        self.nodes.insert(
            rel,
            Node {
                content: Content::Dir,
                mode,
                uid,
                gid,
            },
        );
        Ok(())
    }

    /// A file with the given bytes.
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<()> {
        let rel = relative(path)?;
        self.parents(&rel);
        self.nodes.insert(
            rel,
            Node {
                content: Content::File(data),
                mode,
                uid: 0,
                gid: 0,
            },
        );
        Ok(())
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let rel = relative(path)?;
        self.parents(&rel);
        self.nodes.insert(
            rel,
            Node {
                content: Content::Symlink(target.into()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        Ok(())
    }

    /// Copies a host file (following symlinks, keeping the permission bits) to `path`.
    pub fn host_file(&mut self, host: &Path, path: &str) -> Result<()> {
        let read = |e| Error::Read {
            path: host.to_path_buf(),
            source: e,
        };
        let data = std::fs::read(host).map_err(read)?;
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(host).map_err(read)?.permissions(),
        );
        self.file(path, data, mode & 0o7777)
    }

    /// Copies a host file or directory tree to `path`; symlinks inside a tree stay symlinks.
    pub fn host_tree(&mut self, host: &Path, path: &str) -> Result<()> {
        let read = |e| Error::Read {
            path: host.to_path_buf(),
            source: e,
        };
        let meta = std::fs::symlink_metadata(host).map_err(read)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(host).map_err(read)?;
            return self.symlink(path, &target.to_string_lossy());
        }
        if !meta.is_dir() {
            return self.host_file(host, path);
        }
        self.dir(path, 0o755, 0, 0)?;
        let mut children: Vec<_> = std::fs::read_dir(host)
            .map_err(read)?
            .filter_map(|e| e.ok())
            .collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name();
            self.host_tree(
                &child.path(),
                &format!("{}/{}", path.trim_end_matches('/'), name.to_string_lossy()),
            )?;
        }
        Ok(())
    }

    /// Whether `path` is present.
    pub fn contains(&self, path: &str) -> bool {
        relative(path)
            .map(|rel| self.nodes.contains_key(&rel))
            .unwrap_or(false)
    }

    /// The uncompressed tar of the tree, byte-for-byte reproducible; `mtime` is every entry's time.
    pub fn to_tar(&self, mtime: u64) -> Result<Vec<u8>> {
        let io = |e| Error::Write {
            path: PathBuf::from("<layer>"),
            source: e,
        };
        let mut builder = tar::Builder::new(Vec::new());
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            header.set_uid(u64::from(node.uid));
            header.set_gid(u64::from(node.gid));
            header.set_mode(node.mode);
            match &node.content {
                Content::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder
                        .append_data(
                            &mut header,
                            format!("{}/", path.display()),
                            std::io::empty(),
                        )
                        .map_err(io)?;
                }
                Content::File(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .map_err(io)?;
                }
                Content::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).map_err(io)?;
                }
            }
        }
        builder.into_inner().map_err(io)
    }
}

/// /etc/passwd and /etc/group for root plus `users`.
pub fn accounts(users: &[(String, u32, u32, String)]) -> (String, String) {
    let mut passwd = String::from("root:x:0:0:root:/root:/sbin/nologin\n");
    let mut group = String::from("root:x:0:\n");
    for (name, uid, gid, home) in users {
        passwd.push_str(&format!(
            "{name}:x:{uid}:{gid}:{name}:{home}:/sbin/nologin\n"
        ));
        group.push_str(&format!("{name}:x:{gid}:\n"));
    }
    (passwd, group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Rootfs {
        let mut fs = Rootfs::new();
        fs.file("/usr/bin/tool", b"#!binary".to_vec(), 0o755)
            .unwrap();
        fs.symlink("/bin", "usr/bin").unwrap();
        fs.dir("/data", 0o700, 999, 999).unwrap();
        fs
    }

    #[test]
    fn tar_is_reproducible_and_sorted() {
        let a = sample().to_tar(0).unwrap();
        let b = sample().to_tar(0).unwrap();
        assert_eq!(a, b);
        let mut archive = tar::Archive::new(a.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&"usr/bin/tool".to_string()));
        assert!(names.contains(&"data".to_string()) || names.contains(&"data/".to_string()));
    }

    #[test]
    fn owners_modes_and_links_are_kept() {
        let tar = sample().to_tar(7).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.mtime().unwrap(), 7);
            let path = entry.path().unwrap().display().to_string();
            if path.trim_end_matches('/') == "data" {
                assert_eq!((h.uid().unwrap(), h.mode().unwrap()), (999, 0o700));
            }
            if path == "tmp/" || path == "tmp" {
                assert_eq!(h.mode().unwrap(), 0o1777);
            }
            if path == "bin" {
                assert_eq!(
                    entry.link_name().unwrap().unwrap().display().to_string(),
                    "usr/bin"
                );
            }
        }
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        assert!(Rootfs::new().file("/../etc/shadow", vec![], 0o600).is_err());
    }

    #[test]
    fn accounts_list_root_and_users() {
        let (passwd, group) = accounts(&[("redis".into(), 999, 999, "/data".into())]);
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("redis:x:999:999:redis:/data:/sbin/nologin"));
        assert!(group.contains("redis:x:999:"));
    }
}
