//! CPU time and memory from `/proc` (Linux): of the controller process (`/proc/<pid>/stat`
//! utime + stime, `/proc/<pid>/status` VmHWM / VmRSS), and of this process per thread name,
//! so that the fake apiserver's and the emulator's runtimes (named threads) are told apart
//! from the benchmark driver.

use std::collections::BTreeMap;

/// Seconds per clock tick (`sysconf(_SC_CLK_TCK)`, usually 1/100).
fn tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1.0 / (if hz > 0 { hz as f64 } else { 100.0 })
}

/// utime + stime (seconds) from the text of a `stat` file.
fn cpu_of_stat(text: &str) -> Option<f64> {
    // The command name is in parentheses and may contain spaces: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ... utime(14) stime(15), i.e. indices 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * tick())
}

/// CPU seconds (user + system) of process `pid` so far, its exited threads included.
pub fn process_cpu(pid: u32) -> Option<f64> {
    cpu_of_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Peak resident set size (`VmHWM`) of `pid`, bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM")
}

/// Resident set size now (`VmRSS`) of `pid`, bytes.
pub fn rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS")
}

/// File-backed resident pages now (`RssFile`: mapped executable and libraries) of `pid`,
/// bytes.
pub fn rss_file(pid: u32) -> Option<u64> {
    status_bytes(pid, "RssFile")
}

/// CPU seconds of this process's live threads, summed by the part of the thread name before
/// the first `-` (`apiserver-3` → `apiserver`); plus `"total"` for the whole process, exited
/// threads included.
pub fn own_threads_cpu() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for task in dir.flatten() {
            let path = task.path();
            let (Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(path.join("comm")),
                std::fs::read_to_string(path.join("stat")),
            ) else {
                continue;
            };
            let group = comm.trim().split('-').next().unwrap_or_default().to_owned();
            *out.entry(group).or_insert(0.0) += cpu_of_stat(&stat).unwrap_or(0.0);
        }
    }
    if let Some(total) = process_cpu(std::process::id()) {
        out.insert("total".into(), total);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parentheses_are_read() {
        let text = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        assert_eq!(cpu_of_stat(text), Some(400.0 * tick()));
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_some());
        assert!(peak_rss(pid).unwrap() >= rss(pid).unwrap() / 2);
        let file = rss_file(pid).unwrap();
        assert!(file > 0 && file <= rss(pid).unwrap());
        assert!(own_threads_cpu().contains_key("total"));
    }
}
