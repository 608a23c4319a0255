//! A console that keeps what is written to it.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::convert::Infallible;

/// A console writing into a shared buffer; clones see the same buffer.
#[derive(Clone, Default)]
pub struct MemConsole {
    buf: Rc<RefCell<Vec<u8>>>,
}

impl MemConsole {
    /// An empty console.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.borrow()).into_owned()
    }

    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.buf.borrow().clone()
    }
}

impl embedded_io::ErrorType for MemConsole {
    type Error = Infallible;
}

impl embedded_io_async::Write for MemConsole {
    async fn write(&mut self, data: &[u8]) -> Result<usize, Infallible> {
        self.buf.borrow_mut().extend_from_slice(data);
        Ok(data.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl core::fmt::Write for MemConsole {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.buf.borrow_mut().extend_from_slice(s.as_bytes());
        Ok(())
    }
}
