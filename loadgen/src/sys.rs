//! Small OS helpers: file-descriptor limit, CPU time, resident memory, TTY.

use std::time::Duration;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        r.rlim_cur
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// User + system CPU time of the calling thread (getrusage(RUSAGE_THREAD)).
pub fn thread_cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; getrusage fills it.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut u) != 0 {
            return Duration::ZERO;
        }
        timeval(u.ru_utime) + timeval(u.ru_stime)
    }
}

/// Kernel id of the calling thread.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// CPU time of thread `tid` of process `pid` (from `/proc/<pid>/task/<tid>/schedstat`, ns).
pub fn task_cpu_time(pid: u32, tid: i32) -> Duration {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Summed CPU time of the threads of process `pid` whose name (`comm`)
/// starts with `prefix` (e.g. the `amring-shard-N` executors).
pub fn named_threads_cpu_time(pid: u32, prefix: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.starts_with(prefix).then(|| task_cpu_time(pid, tid))
        })
        .sum()
}

/// CPU time (user + system) of process `pid` from `/proc/<pid>/stat`.
pub fn process_cpu_time(pid: u32) -> Duration {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// Resident set size of process `pid` in bytes (`/proc/<pid>/statm`).
pub fn rss_bytes(pid: u32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page)
        .unwrap_or(0)
}

/// True when stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(1) == 1 }
}

/// The CPUs this thread may run on (its affinity mask, as `taskset` set
/// it), in ascending order; all of `0..available_parallelism` when the mask
/// cannot be read. Cores are picked from this list, never by index into
/// `0..count`: under `taskset -c 1` the only allowed CPU is 1, not 0.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    let cpus: Vec<usize> = if ok {
        // SAFETY: `set` was filled by the kernel; CPU_ISSET reads it.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect()
    } else {
        cpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures_are_plausible() {
        let pid = std::process::id();
        assert!(rss_bytes(pid) > 0);
        // Burn CPU (bounded) until the thread's accounted time moves.
        let wall = std::time::Instant::now();
        let mut x = 0u64;
        while thread_cpu_time() < Duration::from_millis(5) && wall.elapsed() < Duration::from_secs(5) {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(thread_cpu_time() >= Duration::from_millis(5));
        assert!(task_cpu_time(pid, gettid()) > Duration::ZERO);
        assert!(raise_nofile_limit() >= 256);
    }
}
