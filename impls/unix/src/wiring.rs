//! Devices from runtime arguments: how [`Unix`](crate::Unix) opens the network, block device
//! and stores an app asks for, and the arguments it reads to do so.

use std::io;
use std::net::Ipv4Addr;

use morgana::Either;
use morgana::Platform;
use morgana_args::{ArgError, ArgSpec, Args, ByteSize, Ipv4Cidr};
use morgana_target::StartError;
use morgana_tcpip::Config;

use crate::block::{FileBlock, FileBlockError};
use crate::kv::DirKv;
use crate::run::UnixPlatform;
use crate::socket::SocketStack;
use crate::tap::{TapError, TapNet};

/// The network arguments of this target (for an app that takes a stack or a NIC), besides the
/// stack's own ([`morgana_tcpip::ARGS`]).
pub const NET_ARGS: &[ArgSpec] = &[
    ArgSpec::value("net", "socket|tap:IFNAME", "network: host sockets (no root) or a TAP device")
        .default("socket"),
    ArgSpec::flag(
        "tap-no-offload",
        "open the --net tap: device without offloads (plain frames: no virtio_net_hdr, checksums and segments by the stack)",
    ),
];

/// The block-device arguments of this target.
pub const BLOCK_ARGS: &[ArgSpec] = &[
    ArgSpec::value("block", "FILE", "block device (a file or disk image)"),
    ArgSpec::value(
        "block-size",
        "SIZE",
        "create the --block file, sparse, with SIZE bytes (e.g. 1M) if it is missing",
    ),
    ArgSpec::flag("block-read-only", "open the --block file read-only"),
];

/// What `--net` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetChoice {
    /// `--net socket`: the host's own TCP/IP through its sockets (no root).
    Socket,
    /// `--net tap:IFNAME`: `morgana-tcpip` on the named TAP device.
    Tap(String),
}

impl NetChoice {
    const EXPECTED: &'static str = "socket or tap:IFNAME (an interface name of 1 to 15 characters)";

    /// Parse `socket` or `tap:IFNAME`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None if s == "socket" => Some(Self::Socket),
            Some(("tap", name))
                if (1..=15).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':') =>
            {
                Some(Self::Tap(name.into()))
            }
            _ => None,
        }
    }

    /// Read `--net` (default `socket`).
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(args.get_opt_with("net", Self::EXPECTED, Self::parse)?.unwrap_or(Self::Socket))
    }
}

/// The stack `--net` asks for: `sockets()` for `--net socket`, or `morgana-tcpip` over
/// `device(IFNAME)` for `--net tap:IFNAME`, configured by [`morgana_tcpip::ARGS`], seeded from
/// the platform's RNG, its runner spawned on `platform`. Arguments are checked before the device
/// is opened.
pub fn choose<P, L, N, E>(
    platform: &P,
    args: &Args,
    sockets: impl FnOnce() -> Result<L, E>,
    device: impl FnOnce(&str) -> Result<N, E>,
) -> Result<Either<L, morgana_tcpip::Stack>, E>
where
    P: Platform,
    N: morgana::Net + 'static,
    E: From<ArgError>,
{
    match NetChoice::from_args(args)? {
        NetChoice::Socket => sockets().map(Either::Left),
        NetChoice::Tap(name) => {
            let config = Config::from_args(args)?;
            let dhcp = config.ipv4 == morgana_tcpip::Ipv4Mode::Dhcp;
            let net = device(&name)?;
            let stack = morgana_tcpip::spawn(platform, net, config);
            let m = stack.mac();
            let v4 = match stack.ipv4() {
                Some((a, p)) => format!("{a}/{p}"),
                None if dhcp => "DHCP".into(),
                None => "no IPv4 (pass --ipv4 ADDR/PREFIX or --dhcp)".into(),
            };
            let v6: Vec<String> = stack.ipv6().iter().map(|a| format!("{a}")).collect();
            log::info!(
                "{name}: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {v4}, {}",
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                v6.join(", ")
            );
            Ok(Either::Right(stack))
        }
    }
}

/// The transport stack apps get on unix: host sockets (`--net socket`, the default) or
/// `morgana-tcpip` on a TAP device (`--net tap:IFNAME`).
pub type UnixStack = Either<SocketStack, morgana_tcpip::Stack>;

/// The transport stack chosen by `--net` (Mirage's `generic_stackv4v6`): host sockets, or
/// `morgana-tcpip` on the TAP interface `IFNAME` (created if missing), configured by `--ipv4`,
/// `--ipv4-gateway`, `--dhcp`, `--dns-server`, `--ipv6` and `--ipv6-gateway`, seeded from the OS
/// RNG, its runner spawned on `platform`.
pub fn stack(platform: &UnixPlatform, args: &Args) -> Result<UnixStack, StartError> {
    let offload = !args.flag("tap-no-offload");
    choose(platform, args, || socket_stack(args), |name| open_tap(name, offload))
}

/// The network device `--net tap:IFNAME` names, for apps that run their own stack on a `Net`
/// (like `ping`); with `--net socket` (the default), the one line that says to pass a TAP.
pub fn net(args: &Args) -> Result<TapNet, StartError> {
    match NetChoice::from_args(args)? {
        NetChoice::Tap(name) => tap_open(&name, !args.flag("tap-no-offload")).map_err(|e| {
            // The usual advice, "or use --net socket", does not apply here.
            StartError::Device(match e {
                TapError::Permission => "TAP needs root or CAP_NET_ADMIN; run as root".into(),
                TapError::NoTunDevice => "TAP needs /dev/net/tun; load the tun module (modprobe tun)".into(),
                e => e.to_string(),
            })
        }),
        NetChoice::Socket => Err(StartError::Usage(
            "needs a network device: pass --net tap:IFNAME (root or CAP_NET_ADMIN); host sockets \
             (--net socket, the default) have none"
                .into(),
        )),
    }
}

/// The TAP interface `name`, with offloads unless `--tap-no-offload`.
fn tap_open(name: &str, offload: bool) -> Result<TapNet, TapError> {
    if offload { TapNet::open(name) } else { TapNet::open_without_offloads(name) }
}

/// The TAP interface `name`, or the one line that says why not.
fn open_tap(name: &str, offload: bool) -> Result<TapNet, StartError> {
    tap_open(name, offload).map_err(|e| StartError::Device(e.to_string()))
}

/// Host sockets, listening on `--ipv4` if given (it must be an address of this host).
pub fn socket_stack(args: &Args) -> Result<SocketStack, StartError> {
    for ignored in ["dhcp", "ipv4-gateway", "dns-server", "ipv6", "ipv6-gateway"] {
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

/// The key-value store `--NAME DIR` (required): an existing directory.
pub fn kv(args: &Args, name: &str) -> Result<DirKv, StartError> {
    kv_opt(args, name)?.ok_or_else(|| {
        StartError::Usage(format!("--{name}: required: give a directory, e.g. --{name} ./data"))
    })
}

/// The key-value store `--NAME DIR`, if given.
pub fn kv_opt(args: &Args, name: &str) -> Result<Option<DirKv>, StartError> {
    let Some(dir) = args.get_opt::<String>(name)? else { return Ok(None) };
    DirKv::open(&dir).map(Some).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ENOENT) => "no such directory".to_string(),
            Some(libc::ENOTDIR) => "not a directory".to_string(),
            _ => e.to_string(),
        };
        StartError::Device(format!("--{name} {dir}: {why}"))
    })
}

/// The block device `--NAME FILE` (an archive image), read-only, if given.
pub fn archive_opt(args: &Args, name: &str) -> Result<Option<FileBlock>, StartError> {
    let Some(path) = args.get_opt::<String>(name)? else { return Ok(None) };
    let dev = FileBlock::options().read_only(true).open(&path);
    dev.map(Some).map_err(|e| StartError::Device(format!("--{name} {e}")))
}

/// The bytes of the file `--NAME FILE`, if given.
pub fn file_opt(args: &Args, name: &str) -> Result<Option<Vec<u8>>, StartError> {
    let Some(path) = args.get_opt::<String>(name)? else { return Ok(None) };
    std::fs::read(&path).map(Some).map_err(|e| StartError::Device(format!("--{name} {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_args::COMMON;

    const KV: &[ArgSpec] = &[ArgSpec::value("kv", "DIR", "a directory")];

    fn args(argv: &[&str]) -> Args {
        Args::parse(&[COMMON, NET_ARGS, BLOCK_ARGS, KV, morgana_tcpip::ARGS], argv).unwrap()
    }

    #[test]
    fn net_choice_parses_and_explains() {
        let parse = |v: &str| NetChoice::from_args(&args(&["--net", v]));
        assert_eq!(parse("socket"), Ok(NetChoice::Socket));
        assert_eq!(parse("tap:tap0"), Ok(NetChoice::Tap("tap0".into())));
        assert_eq!(NetChoice::from_args(&args(&[])), Ok(NetChoice::Socket));
        for bad in ["tap:", "tap:this-name-is-too-long", "tap:a/b", "virtio", "tap"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--net: expected socket or tap:IFNAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_stack_arguments_are_checked_before_the_tap_is_opened() {
        let rt = crate::Runtime::new().unwrap();
        let opened = std::cell::Cell::new(false);
        let bad = args(&["--net", "tap:mg0", "--ipv4", "10.0.0.1"]);
        let Err(e) = choose(
            &rt.platform(),
            &bad,
            || Ok(()),
            |name| {
                opened.set(true);
                open_tap(name, true)
            },
        ) else {
            panic!("a bad --ipv4 is refused")
        };
        assert!(e.to_string().starts_with("--ipv4: expected"), "{e}");
        assert!(!opened.get(), "the device is not opened when the arguments are wrong");
        let sockets = choose(&rt.platform(), &args(&[]), || Ok(()), |name| open_tap(name, true));
        assert!(matches!(sockets, Ok(Either::Left(()))), "--net socket is the default");
    }

    #[test]
    fn net_needs_a_tap_and_says_so_in_one_line() {
        let e = net(&args(&[])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.starts_with("needs a network device: pass --net tap:IFNAME"), "{msg}");
        assert!(!msg.contains('\n'));
        let e = Args::parse(&[COMMON, NET_ARGS], ["--net", "tun0"]).unwrap();
        assert_eq!(
            net(&e).unwrap_err().to_string(),
            "--net: expected socket or tap:IFNAME (an interface name of 1 to 15 characters), got \"tun0\""
        );
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
        assert!(kv_opt(&args(&[]), "kv").unwrap().is_none());
        let e = kv(&args(&["--kv", "/nonexistent/kv"]), "kv").unwrap_err();
        assert_eq!(e.to_string(), "--kv /nonexistent/kv: no such directory");
        let e = kv(&args(&["--kv", "/dev/null"]), "kv").unwrap_err();
        assert_eq!(e.to_string(), "--kv /dev/null: not a directory");
    }
}
