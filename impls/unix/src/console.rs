//! The console: standard output.

use std::convert::Infallible;
use std::io::Write as _;

use morgana::embedded_io::ErrorType;
use morgana::embedded_io_async::Write;

/// Standard output as an `embedded_io_async::Write` console.
///
/// Writes go straight to the process's stdout (line-buffered by std). A closed or broken stdout
/// drops what is written rather than failing the unikernel, as a serial line with nobody
/// listening would.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutConsole;

impl ErrorType for StdoutConsole {
    type Error = Infallible;
}

impl Write for StdoutConsole {
    async fn write(&mut self, data: &[u8]) -> Result<usize, Infallible> {
        let _ = std::io::stdout().lock().write_all(data);
        Ok(data.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        let _ = std::io::stdout().lock().flush();
        Ok(())
    }
}
