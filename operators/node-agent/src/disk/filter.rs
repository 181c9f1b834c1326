//! Does a disk match a pool's `DeviceFilter`?

use glob::Pattern;
use regex::Regex;

use crate::crd::disk::{DeviceFilter, NodeDiskStatus};

use crate::quantity::parse_bytes;

/// A filter that can never match as written.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("devices.model {pattern:?} is not a regular expression: {detail}")]
    Model { pattern: String, detail: String },
    #[error("devices.paths {pattern:?} is not a glob: {detail}")]
    Path { pattern: String, detail: String },
    #[error("devices.{field} {value:?} is not a byte quantity")]
    Size { field: &'static str, value: String },
}

/// Checks the filter's patterns and sizes (for the pool's status: an invalid filter matches
/// nothing rather than everything).
pub fn validate(filter: &DeviceFilter) -> Result<(), FilterError> {
    if let Some(m) = &filter.model {
        Regex::new(m).map_err(|e| FilterError::Model {
            pattern: m.clone(),
            detail: e.to_string(),
        })?;
    }
    for p in &filter.paths {
        Pattern::new(p).map_err(|e| FilterError::Path {
            pattern: p.clone(),
            detail: e.to_string(),
        })?;
    }
    for (field, q) in [("minSize", &filter.min_size), ("maxSize", &filter.max_size)] {
        if let Some(q) = q {
            parse_bytes(&q.0).ok_or_else(|| FilterError::Size {
                field,
                value: q.0.clone(),
            })?;
        }
    }
    Ok(())
}

/// True when the disk matches every given filter. An invalid filter matches nothing.
pub fn matches(filter: &DeviceFilter, status: &NodeDiskStatus) -> bool {
    if validate(filter).is_err() {
        return false;
    }
    if !filter.types.is_empty() && !filter.types.iter().any(|t| t.as_str() == status.type_) {
        return false;
    }
    if let Some(min) = filter.min_size.as_ref().and_then(|q| parse_bytes(&q.0))
        && status.size_bytes < min
    {
        return false;
    }
    if let Some(max) = filter.max_size.as_ref().and_then(|q| parse_bytes(&q.0))
        && status.size_bytes > max
    {
        return false;
    }
    if let Some(re) = filter.model.as_deref().and_then(|m| Regex::new(m).ok())
        && !status.model.as_deref().is_some_and(|m| re.is_match(m))
    {
        return false;
    }
    if !filter.paths.is_empty() {
        let pats: Vec<Pattern> = filter
            .paths
            .iter()
            .filter_map(|p| Pattern::new(p).ok())
            .collect();
        let mut names = std::iter::once(&status.path)
            .chain(status.by_id.iter())
            .chain(status.by_path.iter());
        if !names.any(|n| pats.iter().any(|p| p.matches(n))) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::disk::DiskType;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn ssd() -> NodeDiskStatus {
        NodeDiskStatus {
            path: "/dev/sdb".into(),
            by_id: vec!["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4".into()],
            size_bytes: 500 << 30,
            type_: "SSD".into(),
            model: Some("Samsung SSD 860".into()),
            ..Default::default()
        }
    }

    #[test]
    fn empty_filter_matches_all() {
        assert!(matches(&DeviceFilter::default(), &ssd()));
    }

    #[test]
    fn types_sizes_model_paths() {
        let f = DeviceFilter {
            types: vec![DiskType::Ssd, DiskType::Nvme],
            min_size: Some(Quantity("100Gi".into())),
            max_size: Some(Quantity("1Ti".into())),
            model: Some("^Samsung".into()),
            paths: vec!["/dev/disk/by-id/wwn-*".into()],
        };
        assert!(matches(&f, &ssd()));
        let hdd = NodeDiskStatus {
            type_: "HDD".into(),
            ..ssd()
        };
        assert!(!matches(&f, &hdd));
        let small = NodeDiskStatus {
            size_bytes: 50 << 30,
            ..ssd()
        };
        assert!(!matches(&f, &small));
        let big = NodeDiskStatus {
            size_bytes: 2 << 40,
            ..ssd()
        };
        assert!(!matches(&f, &big));
        let other = NodeDiskStatus {
            model: Some("WDC".into()),
            ..ssd()
        };
        assert!(!matches(&f, &other));
        let no_model = NodeDiskStatus {
            model: None,
            ..ssd()
        };
        assert!(!matches(&f, &no_model));
        let f2 = DeviceFilter {
            paths: vec!["/dev/sd?".into()],
            ..Default::default()
        };
        assert!(matches(&f2, &ssd()));
        let f3 = DeviceFilter {
            paths: vec!["/dev/nvme*".into()],
            ..Default::default()
        };
        assert!(!matches(&f3, &ssd()));
    }

    #[test]
    fn invalid_filters_match_nothing() {
        for f in [
            DeviceFilter {
                model: Some("(".into()),
                ..Default::default()
            },
            DeviceFilter {
                paths: vec!["[".into()],
                ..Default::default()
            },
            DeviceFilter {
                min_size: Some(Quantity("lots".into())),
                ..Default::default()
            },
        ] {
            assert!(validate(&f).is_err());
            assert!(!matches(&f, &ssd()));
        }
    }
}
