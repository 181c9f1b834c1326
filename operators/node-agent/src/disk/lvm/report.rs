//! `pvs`/`vgs`/`lvs --reportformat json --units b --nosuffix` output.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Columns asked of `pvs` (the parsers read these names).
pub const PV_FIELDS: &str = "pv_name,vg_name,pv_size,pv_free,pv_uuid";
pub const VG_FIELDS: &str =
    "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count";
pub const LV_FIELDS: &str =
    "lv_name,vg_name,lv_attr,lv_size,pool_lv,data_percent,metadata_percent,segtype";

/// A physical volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pv {
    pub name: String,
    /// `None` for an orphan PV (in no VG).
    pub vg_name: Option<String>,
    pub size: u64,
    pub free: u64,
    pub uuid: String,
}

/// A volume group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vg {
    pub name: String,
    pub size: u64,
    pub free: u64,
    pub extent_size: u64,
    pub extent_count: u64,
    pub free_count: u64,
    pub pv_count: u64,
}

/// A logical volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lv {
    pub name: String,
    pub vg_name: String,
    pub attr: String,
    pub size: u64,
    /// The thin pool of a thin volume.
    pub pool_lv: Option<String>,
    pub data_percent: Option<f64>,
    pub metadata_percent: Option<f64>,
    pub segtype: String,
}

impl Lv {
    pub fn is_thin_pool(&self) -> bool {
        self.segtype == "thin-pool"
    }
}

/// What LVM knows on this node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LvmReport {
    pub pvs: Vec<Pv>,
    pub vgs: Vec<Vg>,
    pub lvs: Vec<Lv>,
}

impl LvmReport {
    pub fn vg(&self, name: &str) -> Option<&Vg> {
        self.vgs.iter().find(|v| v.name == name)
    }
    pub fn pv(&self, device: &str) -> Option<&Pv> {
        self.pvs.iter().find(|p| p.name == device)
    }
    pub fn lv(&self, vg: &str, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.vg_name == vg && l.name == name)
    }
}

/// The report's output could not be read.
#[derive(Debug, thiserror::Error)]
#[error("lvm {what} report: {detail}")]
pub struct ReportError {
    pub what: &'static str,
    pub detail: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    report: Vec<BTreeMap<String, serde_json::Value>>,
}

/// The rows of one report section, each a column → text map (lvm prints every value as a string).
fn rows(
    what: &'static str,
    key: &str,
    text: &str,
) -> Result<Vec<BTreeMap<String, String>>, ReportError> {
    let err = |detail: String| ReportError { what, detail };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let env: Envelope = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for section in env.report {
        let Some(list) = section.get(key) else {
            continue;
        };
        let list = list
            .as_array()
            .ok_or_else(|| err(format!("{key} is not a list")))?;
        for row in list {
            let obj = row
                .as_object()
                .ok_or_else(|| err(format!("a {key} row is not an object")))?;
            out.push(
                obj.iter()
                    .map(|(k, v)| {
                        let s = match v {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        (k.clone(), s)
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn text(row: &BTreeMap<String, String>, k: &str) -> String {
    row.get(k).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn opt(row: &BTreeMap<String, String>, k: &str) -> Option<String> {
    Some(text(row, k)).filter(|s| !s.is_empty())
}

fn bytes(what: &'static str, row: &BTreeMap<String, String>, k: &str) -> Result<u64, ReportError> {
    let s = text(row, k);
    if s.is_empty() {
        return Ok(0);
    }
    // `--units b` sizes are integral; tolerate a decimal point and a trailing `B` all the same.
    let s = s.trim_end_matches(['B', 'b']);
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f.max(0.0) as u64))
        .ok_or_else(|| ReportError {
            what,
            detail: format!("{k}={s:?} is not a byte count"),
        })
}

fn percent(row: &BTreeMap<String, String>, k: &str) -> Option<f64> {
    opt(row, k).and_then(|s| s.parse().ok())
}

pub fn parse_pvs(json: &str) -> Result<Vec<Pv>, ReportError> {
    rows("pvs", "pv", json)?
        .iter()
        .map(|r| {
            Ok(Pv {
                name: text(r, "pv_name"),
                vg_name: opt(r, "vg_name"),
                size: bytes("pvs", r, "pv_size")?,
                free: bytes("pvs", r, "pv_free")?,
                uuid: text(r, "pv_uuid"),
            })
        })
        .collect()
}

pub fn parse_vgs(json: &str) -> Result<Vec<Vg>, ReportError> {
    rows("vgs", "vg", json)?
        .iter()
        .map(|r| {
            Ok(Vg {
                name: text(r, "vg_name"),
                size: bytes("vgs", r, "vg_size")?,
                free: bytes("vgs", r, "vg_free")?,
                extent_size: bytes("vgs", r, "vg_extent_size")?,
                extent_count: bytes("vgs", r, "vg_extent_count")?,
                free_count: bytes("vgs", r, "vg_free_count")?,
                pv_count: bytes("vgs", r, "pv_count")?,
            })
        })
        .collect()
}

pub fn parse_lvs(json: &str) -> Result<Vec<Lv>, ReportError> {
    rows("lvs", "lv", json)?
        .iter()
        .map(|r| {
            Ok(Lv {
                name: text(r, "lv_name"),
                vg_name: text(r, "vg_name"),
                attr: text(r, "lv_attr"),
                size: bytes("lvs", r, "lv_size")?,
                pool_lv: opt(r, "pool_lv"),
                data_percent: percent(r, "data_percent"),
                metadata_percent: percent(r, "metadata_percent"),
                segtype: text(r, "segtype"),
            })
        })
        .collect()
}
