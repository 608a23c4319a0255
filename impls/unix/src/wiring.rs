//! Devices from runtime arguments: what an app's `main.rs` calls to get its network, block
//! device and key-value store on unix.
//!
//! ```no_run
//! morgana_unix::run(&[], |platform, args| {
//!     let stack = morgana_unix::stack(&platform, args)?;
//!     let disk = morgana_unix::block(args)?;
//!     Ok(async move {
//!         let _ = (stack, disk);
//!         Ok::<(), std::convert::Infallible>(())
//!     })
//! })
//! ```

use std::io;
use std::net::Ipv4Addr;

use morgana::args::{ArgError, ArgValue, Args, ByteSize, Ipv4Cidr};

use crate::block::{FileBlock, FileBlockError};
use crate::either::{Either, NoStack};
use crate::kv::DirKv;
use crate::run::{StartError, UnixPlatform};
use crate::socket::SocketStack;
use crate::tap::TapNet;

/// The transport stack apps get on unix: host sockets (`--net socket`, the default) or, once it
/// is wired, smoltcp on a TAP device (`--net tap:IFNAME`), which will take the right side.
pub type UnixStack = Either<SocketStack, NoStack>;

/// The value of `--net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetChoice {
    /// Host kernel sockets.
    Socket,
    /// A TAP interface with this name.
    Tap(String),
}

impl ArgValue for NetChoice {
    const EXPECTED: &'static str = "socket or tap:IFNAME";
    fn parse_arg(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None if s == "socket" => Some(Self::Socket),
            Some(("tap", name)) if !name.is_empty() && name.len() < 16 && !name.contains(['/', ' ']) => {
                Some(Self::Tap(name.into()))
            }
            _ => None,
        }
    }
}

/// The transport stack chosen by `--net`, configured by `--ipv4` and friends.
///
/// Wiring smoltcp is a change here only: make the right side of [`UnixStack`] the
/// `morgana-tcpip` stack, and in the `tap` branch open [`tap`], build the stack over it from
/// `--ipv4`, `--ipv4-gateway`, `--dhcp` and `--dns-server`, spawn its runner on `platform`, and
/// return `Either::Right`. Apps do not change.
pub fn stack(platform: &UnixPlatform, args: &Args) -> Result<UnixStack, StartError> {
    let _ = platform;
    match args.get::<NetChoice>("net")? {
        NetChoice::Socket => socket_stack(args).map(Either::Left),
        NetChoice::Tap(name) => Err(StartError::Device(format!(
            "--net tap:{name}: the TAP network needs the smoltcp TCP/IP stack (morgana-tcpip), which is not \
             wired into the unix target yet; use --net socket"
        ))),
    }
}

/// The TAP interface `name`, or the one line that says why not (e.g. "TAP needs root or
/// CAP_NET_ADMIN; run as root or use --net socket").
pub fn tap(name: &str) -> Result<TapNet, StartError> {
    TapNet::open(name).map_err(|e| StartError::Device(e.to_string()))
}

/// Host sockets, listening on `--ipv4` if given (it must be an address of this host).
pub fn socket_stack(args: &Args) -> Result<SocketStack, StartError> {
    for ignored in ["dhcp", "ipv4-gateway", "dns-server"] {
        if args.flag(ignored) {
            log::warn!("--{ignored} is ignored with --net socket: the host configures its own network");
        }
    }
    let Some(cidr) = args.get_opt::<Ipv4Cidr>("ipv4")? else { return Ok(SocketStack::new()) };
    check_host_address(cidr.addr).map_err(|e| {
        StartError::Usage(format!(
            "--ipv4 {cidr}: {} is not usable on this host ({e}); with --net socket, --ipv4 picks the host \
             address to listen on (omit it to listen on all)",
            cidr.addr
        ))
    })?;
    Ok(SocketStack::with_ipv4(cidr.addr))
}

fn check_host_address(addr: Ipv4Addr) -> io::Result<()> {
    std::net::UdpSocket::bind((addr, 0)).map(drop)
}

/// The block device `--block FILE` (required), created sparse with `--block-size` if missing,
/// read-only with `--block-read-only`.
pub fn block(args: &Args) -> Result<FileBlock, StartError> {
    let path = args.get_opt::<String>("block")?.ok_or_else(|| {
        StartError::Usage(
            "--block: required: give a disk image, e.g. --block disk.img --block-size 1M".into(),
        )
    })?;
    let size = args.get_opt::<ByteSize>("block-size")?;
    if let Some(ByteSize(bytes)) = size
        && (bytes == 0 || !bytes.is_multiple_of(512))
    {
        return Err(StartError::Args(ArgError::Invalid {
            name: "block-size",
            value: args.raw("block-size").unwrap_or_default().into(),
            expected: "a whole number of 512-byte sectors, like 1M",
        }));
    }
    let read_only = args.flag("block-read-only");
    let mut options = FileBlock::options().read_only(read_only);
    if let Some(ByteSize(bytes)) = size {
        options = options.create(bytes);
    }
    options.open(&path).map_err(|e| {
        let hint = match &e {
            FileBlockError::NotFound(_) => "; add --block-size SIZE (e.g. 1M) to create it",
            FileBlockError::BadSize { size: 0, .. } => "; it needs at least one 512-byte sector",
            FileBlockError::BadSize { .. } => "; resize it to whole sectors (e.g. truncate -s 1M FILE)",
            FileBlockError::SizeMismatch { .. } => "; drop --block-size to use the file as it is",
            FileBlockError::Io(_, e) if e.kind() == io::ErrorKind::PermissionDenied && !read_only => {
                "; add --block-read-only to open it read-only"
            }
            _ => "",
        };
        StartError::Device(format!("--block {e}{hint}"))
    })
}

/// The key-value store `--kv DIR` (required): an existing directory.
pub fn kv(args: &Args) -> Result<DirKv, StartError> {
    kv_opt(args)?
        .ok_or_else(|| StartError::Usage("--kv: required: give a directory, e.g. --kv ./data".into()))
}

/// The key-value store `--kv DIR`, if given.
pub fn kv_opt(args: &Args) -> Result<Option<DirKv>, StartError> {
    let Some(dir) = args.get_opt::<String>("kv")? else { return Ok(None) };
    DirKv::open(&dir).map(Some).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ENOENT) => "no such directory".to_string(),
            Some(libc::ENOTDIR) => "not a directory".to_string(),
            _ => e.to_string(),
        };
        StartError::Device(format!("--kv {dir}: {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana::args::COMMON;

    fn args(argv: &[&str]) -> Args {
        Args::parse(&[COMMON, crate::UNIX_ARGS], argv).unwrap()
    }

    #[test]
    fn net_values() {
        assert_eq!(NetChoice::parse_arg("socket"), Some(NetChoice::Socket));
        assert_eq!(NetChoice::parse_arg("tap:tap0"), Some(NetChoice::Tap("tap0".into())));
        for bad in ["tap:", "tap", "sockets", "tap:a/b", "tap:0123456789abcdef", "vde:x"] {
            assert_eq!(NetChoice::parse_arg(bad), None, "{bad}");
        }
        let e = args(&["--net", "tun0"]).get::<NetChoice>("net").unwrap_err();
        assert_eq!(e.to_string(), "--net: expected socket or tap:IFNAME, got \"tun0\"");
    }

    #[test]
    fn tap_says_the_stack_is_not_wired_yet() {
        let rt = crate::Runtime::new().unwrap();
        let e = stack(&rt.platform(), &args(&["--net", "tap:tap0"])).err().unwrap();
        assert_eq!(e.exit_code(), 1);
        let msg = e.to_string();
        assert!(
            msg.starts_with("--net tap:tap0: ") && msg.contains("smoltcp") && msg.contains("--net socket"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn ipv4_must_be_a_host_address() {
        assert!(socket_stack(&args(&["--ipv4", "127.0.0.1/8"])).is_ok());
        // 192.0.2.0/24 is TEST-NET-1: never assigned to a host, and nothing is sent to it.
        let e = socket_stack(&args(&["--ipv4", "192.0.2.7/24"])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().starts_with("--ipv4 192.0.2.7/24: 192.0.2.7 is not usable on this host"),
            "{e}"
        );
    }

    #[test]
    fn block_arguments_are_checked() {
        let e = block(&args(&[])).unwrap_err();
        assert_eq!((e.exit_code(), e.to_string().starts_with("--block: required")), (2, true), "{e}");
        let e = block(&args(&["--block", "/nonexistent/x.img", "--block-size", "1000"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--block-size: expected a whole number of 512-byte sectors, like 1M, got \"1000\""
        );
        let e = block(&args(&["--block", "/nonexistent/x.img"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--block /nonexistent/x.img: no such file; add --block-size SIZE (e.g. 1M) to create it"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn kv_directory_must_exist() {
        assert!(kv_opt(&args(&[])).unwrap().is_none());
        let e = kv(&args(&["--kv", "/nonexistent/kv"])).unwrap_err();
        assert_eq!(e.to_string(), "--kv /nonexistent/kv: no such directory");
        let e = kv(&args(&["--kv", "/dev/null"])).unwrap_err();
        assert_eq!(e.to_string(), "--kv /dev/null: not a directory");
    }
}
