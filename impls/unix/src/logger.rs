//! `log` records to stdout, stamped with time since start.

use std::io::Write;

use morgana_rt::{LogLine, TimeSource};

use crate::time::SystemTime;

struct StdoutLogger {
    time: SystemTime,
}

impl log::Log for StdoutLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = LogLine { at: self.time.now(), record };
            // A closed stdout must not kill the unikernel.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Route `log` to stdout at `level`.
pub fn init(time: SystemTime, level: log::LevelFilter) {
    let logger = Box::leak(Box::new(StdoutLogger { time }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
