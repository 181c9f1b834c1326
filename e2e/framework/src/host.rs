//! A container's processes seen from the machine the tests run on.
//!
//! Signals to a container's main process cannot come from inside the container: it is PID 1 of
//! its PID namespace, and the kernel drops SIGKILL and SIGSTOP sent to a namespace's init from
//! within that namespace (`kubectl exec pod -- kill -KILL 1` "succeeds" and does nothing). They
//! work from the host, which the local node shares with the tests (and kind on Linux, as root).

use std::path::Path;

use rustix::process::{Pid, Signal, kill_process};

/// The runtime's container ID from a `containerStatuses[].containerID` (`containerd://<id>`).
pub fn container_id(status_id: &str) -> Option<&str> {
    let id = status_id.split_once("://").map_or(status_id, |(_, id)| id);
    // Short IDs could match unrelated cgroup paths.
    (id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// Whether a `/proc/<pid>/cgroup` text places the process in the cgroup of container `id`
/// (cgroupfs driver: `.../pod<uid>/<id>`; systemd driver: `.../cri-containerd-<id>.scope`).
pub fn cgroup_mentions(cgroup_file: &str, id: &str) -> bool {
    cgroup_file.lines().any(|line| {
        line.splitn(3, ':')
            .nth(2)
            .is_some_and(|path| path.split('/').any(|part| part.contains(id)))
    })
}

/// The PID a process has in its innermost PID namespace (last field of `NSpid:` in
/// `/proc/<pid>/status`).
pub fn innermost_pid(status_file: &str) -> Option<u32> {
    status_file
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The host PID of container `id`'s main process (PID 1 in the container), if this machine runs it.
pub fn main_process(id: &str) -> std::io::Result<Option<u32>> {
    main_process_in(Path::new("/proc"), id)
}

fn main_process_in(proc_root: &Path, id: &str) -> std::io::Result<Option<u32>> {
    for entry in std::fs::read_dir(proc_root)? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go while we scan: unreadable ones are simply not candidates.
        let Ok(cgroup) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        if !cgroup_mentions(&cgroup, id) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if innermost_pid(&status) == Some(1) {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// Sends `signal` to host process `pid`.
pub fn signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("{pid} is not a process ID")))?;
    kill_process(pid, signal).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "f2fa84ab1f00d6c938a85d0711b63a066ae793ba83e0d48903f22e31c4aab63b";

    #[test]
    fn container_ids_come_from_status_ids() {
        assert_eq!(container_id(&format!("containerd://{ID}")), Some(ID));
        assert_eq!(container_id(ID), Some(ID));
        assert_eq!(container_id("containerd://"), None);
        assert_eq!(container_id("docker://abc"), None);
        assert_eq!(container_id("containerd://not-hex-at-all-xyz"), None);
    }

    #[test]
    fn cgroup_paths_of_both_drivers_match() {
        let cgroupfs = format!(
            "12:pids:/kubepods/besteffort/podc763f6fd-e243-4fe3-8510-11c7e985843c/{ID}\n0::/kubepods/besteffort/podc763f6fd/{ID}\n"
        );
        assert!(cgroup_mentions(&cgroupfs, ID));
        let systemd = format!(
            "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/cri-containerd-{ID}.scope\n"
        );
        assert!(cgroup_mentions(&systemd, ID));
        assert!(!cgroup_mentions(
            "12:pids:/kubepods/besteffort/podx/abc\n0::/\n",
            ID
        ));
        // The ID must be in the path, not in the controller list.
        assert!(!cgroup_mentions(&format!("1:{ID}:/\n"), ID));
    }

    #[test]
    fn innermost_pid_is_the_last_nspid() {
        let status = "Name:\tredis-server\nTgid:\t9204\nNSpid:\t9204\t1\nPPid:\t9154\n";
        assert_eq!(innermost_pid(status), Some(1));
        assert_eq!(innermost_pid("Name:\tbash\nNSpid:\t77\n"), Some(77));
        assert_eq!(innermost_pid("Name:\tbash\n"), None);
    }

    #[test]
    fn finds_the_main_process_in_a_proc_tree() {
        let root = std::env::temp_dir().join(format!("agility-e2e-proc-{}", std::process::id()));
        let write = |pid: &str, cgroup: &str, nspid: &str| {
            let dir = root.join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
            std::fs::write(dir.join("status"), format!("NSpid:\t{nspid}\n")).unwrap();
        };
        let in_container = format!("4:pids:/kubepods/podu/{ID}\n");
        write("100", "4:pids:/\n", "100");
        write("200", &in_container, "200\t7");
        write("300", &in_container, "300\t1");
        std::fs::create_dir_all(root.join("self")).unwrap();
        assert_eq!(main_process_in(&root, ID).unwrap(), Some(300));
        assert_eq!(main_process_in(&root, &"a".repeat(64)).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn signals_reach_a_process() {
        // SIGCONT to ourselves is harmless and proves the call path works.
        signal(std::process::id(), Signal::CONT).unwrap();
    }
}
