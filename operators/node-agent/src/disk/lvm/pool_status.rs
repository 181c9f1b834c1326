//! The pool's status on this node, from LVM's report.

use crate::crd::disk::DiskPoolNodeStatus;

use super::report::LvmReport;

/// Ready when the thin pool exists; Pending before (no eligible disk yet, or not built yet).
/// The agent loop sets `Failed` (with the executor's error), `observedGeneration` and
/// `lastUpdated`.
pub fn node_status(
    node: &str,
    volume_group: &str,
    thin_pool: &str,
    overprovision_ratio: f64,
    report: &LvmReport,
    disks: Vec<String>,
) -> DiskPoolNodeStatus {
    let mut st = DiskPoolNodeStatus {
        node_name: node.to_string(),
        volume_group: volume_group.to_string(),
        disks,
        phase: "Pending".into(),
        ..Default::default()
    };
    let Some(vg) = report.vg(volume_group) else {
        st.message = Some("no eligible disk has joined yet".into());
        return st;
    };
    st.size_bytes = vg.size;
    let Some(pool) = report
        .lv(volume_group, thin_pool)
        .filter(|l| l.is_thin_pool())
    else {
        st.message = Some(format!("thin pool {thin_pool} not created yet"));
        return st;
    };
    st.phase = "Ready".into();
    st.thin_pool_bytes = pool.size;
    let used = pool.size as f64 * pool.data_percent.unwrap_or(0.0) / 100.0;
    st.used_bytes = used.round() as u64;
    let ratio = if overprovision_ratio.is_finite() && overprovision_ratio >= 1.0 {
        overprovision_ratio
    } else {
        1.0
    };
    st.virtual_capacity_bytes = (pool.size as f64 * ratio) as u64;
    st.allocated_bytes = report
        .lvs
        .iter()
        .filter(|l| l.vg_name == volume_group && l.pool_lv.as_deref() == Some(thin_pool))
        .map(|l| l.size)
        .sum();
    if let Some(m) = pool.metadata_percent.filter(|m| *m >= 90.0) {
        st.message = Some(format!("thin pool metadata {m:.1}% full"));
    }
    st
}
