//! The host's mount table (mountinfo format, see proc(5)).

/// One mount of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Device number of the mounted filesystem's device (0 for virtual/anonymous ones).
    pub major: u32,
    pub minor: u32,
    pub mount_point: String,
    pub fs_type: String,
    /// The mount source (e.g. `/dev/vda`), as the kernel reports it.
    pub source: String,
}

/// Parses mountinfo text; malformed lines are skipped (the kernel writes this file, a broken line
/// would mean a format we do not know, and one such mount must not hide all the others).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let mount_point = unescape(fields.get(4)?);
    // Optional fields end at the lone "-" separator; fstype and source follow it.
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point,
        fs_type: (*fields.get(sep + 1)?).to_string(),
        source: unescape(fields.get(sep + 2)?),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
40 27 8:17 / /mnt/with\\040space rw,relatime shared:5 master:1 - xfs /dev/sdb1 rw
garbage line
";

    #[test]
    fn parses_mounts_with_optional_fields_and_escapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!((m[1].major, m[1].minor), (254, 0));
        assert_eq!(m[1].mount_point, "/");
        assert_eq!(m[1].source, "/dev/vda");
        assert_eq!(m[2].mount_point, "/mnt/with space");
        assert_eq!(m[2].fs_type, "xfs");
        assert_eq!(m[2].source, "/dev/sdb1");
    }

    #[test]
    fn unescape_keeps_lone_backslashes() {
        assert_eq!(unescape("a\\b"), "a\\b");
        assert_eq!(unescape("x\\134y"), "x\\y");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}
