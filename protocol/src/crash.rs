//! Crash points: named places where a test can make the process die, to prove that whatever
//! dies there, every invocation still finishes once.
//!
//! Compiled into debug builds (what the local and test deployments run) and into release builds
//! with the `crash-points` feature; a release build for AWS has none: [`point`] is then an
//! empty inline function. With it, a process whose environment names a
//! directory in `DURABLE_CRASH_POINTS` looks at that directory at every point it passes:
//!
//! * it appends the point's name to `<dir>/trace` (one line per pass), so a test learns which
//!   points a scenario passes through;
//! * if `<dir>/armed/<name>` exists, the first process to rename it to `<dir>/fired/<name>`
//!   aborts on the spot (`SIGABRT`, no unwinding, no flushing): a real crash, exactly once per
//!   arming however many processes race for it.

/// The environment variable naming the crash-point directory.
pub const CRASH_POINTS_ENV: &str = "DURABLE_CRASH_POINTS";

/// Passes crash point `name`: may abort the process if a test armed it (see the module docs).
#[inline]
pub fn point(name: &'static str) {
    #[cfg(any(debug_assertions, feature = "crash-points"))]
    armed::pass(name);
    #[cfg(not(any(debug_assertions, feature = "crash-points")))]
    let _ = name;
}

#[cfg(any(debug_assertions, feature = "crash-points"))]
mod armed {
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    fn dir() -> Option<&'static PathBuf> {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        DIR.get_or_init(|| {
            std::env::var_os(super::CRASH_POINTS_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .as_ref()
    }

    pub(super) fn pass(name: &'static str) {
        let Some(dir) = dir() else { return };
        if let Ok(mut trace) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("trace"))
        {
            // One write per line: appends of a few bytes do not interleave.
            let _ = trace.write_all(format!("{name}\n").as_bytes());
        }
        let armed = dir.join("armed").join(name);
        let fired = dir.join("fired").join(name);
        if armed.exists() && std::fs::rename(&armed, &fired).is_ok() {
            eprintln!("crash point {name}: aborting (armed by a test)");
            std::process::abort();
        }
    }
}

/// Names a crash point and passes it: `crash_point!("driver.push.before")`.
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        $crate::crash::point($name)
    };
}
