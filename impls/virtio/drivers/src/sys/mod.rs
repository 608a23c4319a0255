//! Everything that needs `unsafe`: requests on virtqueues. A buffer handed to a device is owned
//! by the queue owner here and left untouched until the device hands it back (or is reset, when
//! the owner is dropped). Above this module, the drivers are safe code.

pub mod blk;
pub mod net;

#[cfg(test)]
pub mod fake;
