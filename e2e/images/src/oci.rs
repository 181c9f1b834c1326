//! OCI image layout archives: one gzip layer, its config and manifest, an index naming the image
//! (`org.opencontainers.image.ref.name` and containerd's `io.containerd.image.name`), all as a
//! reproducible tar.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How the image runs.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    pub ports: Vec<u16>,
    pub labels: BTreeMap<String, String>,
}

/// A finished archive and the digests that identify it.
#[derive(Debug)]
pub struct Archive {
    pub bytes: Vec<u8>,
    /// Digest of the manifest: what containerd lists for the image.
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Gzip without a name or timestamp in the header, so equal input gives equal output.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let io = |e| Error::Write {
        path: "<gzip>".into(),
        source: e,
    };
    let mut enc = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(6));
    enc.write_all(data).map_err(io)?;
    enc.finish().map_err(io)
}

fn descriptor(media: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media, "digest": sha256(data), "size": data.len() })
}

/// The image config document for a layer whose uncompressed tar is `layer_tar`.
pub fn config_json(run: &RunConfig, layer_tar: &[u8], created: &str) -> Result<Vec<u8>> {
    let mut config = serde_json::Map::new();
    let env = if run.env.iter().any(|e| e.starts_with("PATH=")) {
        run.env.clone()
    } else {
        let mut env = vec!["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string()];
        env.extend(run.env.iter().cloned());
        env
    };
    config.insert("Env".into(), json!(env));
    if !run.entrypoint.is_empty() {
        config.insert("Entrypoint".into(), json!(run.entrypoint));
    }
    if !run.cmd.is_empty() {
        config.insert("Cmd".into(), json!(run.cmd));
    }
    if let Some(user) = &run.user {
        config.insert("User".into(), json!(user));
    }
    if let Some(dir) = &run.workdir {
        config.insert("WorkingDir".into(), json!(dir));
    }
    if !run.ports.is_empty() {
        let ports: serde_json::Map<_, _> = run
            .ports
            .iter()
            .map(|p| (format!("{p}/tcp"), json!({})))
            .collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !run.labels.is_empty() {
        config.insert("Labels".into(), json!(run.labels));
    }
    let doc = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [sha256(layer_tar)] },
        "history": [{ "created": created, "created_by": "agility-images" }],
    });
    Ok(serde_json::to_vec(&doc)?)
}

/// Packs `layer_tar` (an uncompressed rootfs tar) as an OCI layout archive named `reference`.
pub fn build(reference: &str, run: &RunConfig, layer_tar: &[u8], epoch: u64) -> Result<Archive> {
    let created = rfc3339(epoch);
    let layer = gzip(layer_tar)?;
    let config = config_json(run, layer_tar, &created)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": descriptor(MEDIA_CONFIG, &config),
        "layers": [descriptor(MEDIA_LAYER, &layer)],
    }))?;
    let mut manifest_desc = descriptor(MEDIA_MANIFEST, &manifest);
    let tag = reference
        .rsplit_once(':')
        .map(|(_, t)| t)
        .unwrap_or("latest");
    manifest_desc["annotations"] = json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": tag,
    });
    manifest_desc["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [manifest_desc],
    }))?;

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".into(), index);
    for blob in [&config, &manifest, &layer] {
        files.insert(
            format!("blobs/sha256/{}", &sha256(blob)["sha256:".len()..]),
            blob.clone(),
        );
    }
    let io = |e| Error::Write {
        path: "<archive>".into(),
        source: e,
    };
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(epoch);
        h.set_size(0);
        tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
    }
    for (name, data) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(epoch);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, name, data.as_slice()).map_err(io)?;
    }
    Ok(Archive {
        bytes: tar.into_inner().map_err(io)?,
        manifest_digest: sha256(&manifest),
        config_digest: sha256(&config),
        layer_digest: sha256(&layer),
    })
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp (days-from-civil; no calendar crate needed).
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn files(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut tar = tar::Archive::new(archive);
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(name, data);
        }
        out
    }

    #[test]
    fn archive_is_reproducible_and_self_consistent() {
        let run = RunConfig {
            entrypoint: vec!["/pause".into()],
            user: Some("65532".into()),
            ..Default::default()
        };
        let layer_tar = b"pretend this is a tar".to_vec();
        let a = build("localhost/agility/pause:3.10", &run, &layer_tar, 0).unwrap();
        let b = build("localhost/agility/pause:3.10", &run, &layer_tar, 0).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.manifest_digest, b.manifest_digest);

        let f = files(&a.bytes);
        let index: Value = serde_json::from_slice(&f["index.json"]).unwrap();
        let m = &index["manifests"][0];
        assert_eq!(m["digest"], a.manifest_digest.as_str());
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "localhost/agility/pause:3.10"
        );
        assert_eq!(
            m["annotations"]["org.opencontainers.image.ref.name"],
            "3.10"
        );
        let blob = |d: &str| f[&format!("blobs/sha256/{}", &d["sha256:".len()..])].clone();
        let manifest: Value = serde_json::from_slice(&blob(&a.manifest_digest)).unwrap();
        assert_eq!(manifest["config"]["digest"], a.config_digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], a.layer_digest.as_str());
        let config: Value = serde_json::from_slice(&blob(&a.config_digest)).unwrap();
        // diff_ids name the uncompressed layer; the gzip blob must decompress to it.
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&layer_tar).as_str());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(blob(&a.layer_digest).as_slice())
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, layer_tar);
        assert_eq!(config["config"]["Entrypoint"][0], "/pause");
        assert_eq!(config["config"]["User"], "65532");
        assert!(
            config["config"]["Env"][0]
                .as_str()
                .unwrap()
                .starts_with("PATH=")
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }

    #[test]
    fn ports_become_exposed_ports() {
        let run = RunConfig {
            ports: vec![6379],
            ..Default::default()
        };
        let config: Value =
            serde_json::from_slice(&config_json(&run, b"x", "1970-01-01T00:00:00Z").unwrap())
                .unwrap();
        assert!(config["config"]["ExposedPorts"]["6379/tcp"].is_object());
    }
}
