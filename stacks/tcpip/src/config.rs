//! What a stack is configured with, and how to read it from the runtime arguments.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use morgana::Duration;
use morgana_args::{ArgError, ArgSpec, Args, Ipv4Cidr};

/// The arguments this stack reads ([`Config::from_args`]): a target that runs it for an app
/// declares them beside its own, so they are listed by `--help` exactly where they apply.
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("ipv4", "ADDR/PREFIX", "static IPv4 address of the unikernel"),
    ArgSpec::value("ipv4-gateway", "ADDR", "IPv4 default gateway"),
    ArgSpec::flag("dhcp", "configure IPv4 with DHCP"),
    ArgSpec::value("dns-server", "ADDR", "DNS server to query"),
    ArgSpec::value(
        "ipv6",
        "ADDR/PREFIX",
        "static IPv6 address of the unikernel (a link-local one is always set)",
    ),
    ArgSpec::value("ipv6-gateway", "ADDR", "IPv6 default gateway"),
];

/// How the interface gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv4Mode {
    /// No IPv4 (IPv6 only).
    #[default]
    None,
    /// A fixed address, and optionally a default gateway.
    Static {
        /// Address and prefix length.
        addr: Ipv4Cidr,
        /// Default gateway.
        gateway: Option<Ipv4Addr>,
    },
    /// Ask a DHCP server, and renew the lease while the stack runs. Until the first lease,
    /// IPv4 connections and name lookups wait for it (and fail with `TimedOut` if none comes
    /// within 30 s).
    Dhcp,
}

/// A static IPv6 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Cidr {
    /// The address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0 to 128.
    pub prefix: u8,
}

impl Ipv6Cidr {
    fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        let prefix = prefix.parse::<u8>().ok().filter(|p| *p <= 128)?;
        Some(Self { addr: addr.parse().ok()?, prefix })
    }
}

/// A TCP congestion controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Congestion {
    /// CUBIC (RFC 9438), as Linux, Windows and macOS: the default.
    #[default]
    Cubic,
    /// NewReno (RFC 5681, RFC 6582): integer arithmetic only, for targets where floating point
    /// is unwanted.
    Reno,
    /// None: the sender is limited only by the peer's window. For comparisons, not for a
    /// shared network.
    None,
}

impl Congestion {
    pub(crate) fn smoltcp(self) -> smoltcp::socket::tcp::CongestionControl {
        use smoltcp::socket::tcp::CongestionControl as C;
        match self {
            Self::Cubic => C::Cubic,
            Self::Reno => C::Reno,
            Self::None => C::None,
        }
    }
}

/// Configuration of a [`crate::Stack`]. Start from [`Config::default`] (or
/// [`Config::from_args`]) and change what you need.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// IPv4 addressing.
    pub ipv4: Ipv4Mode,
    /// A static IPv6 address besides the link-local one derived from the MAC.
    pub ipv6: Option<Ipv6Cidr>,
    /// IPv6 default gateway.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// DNS servers to query (DHCP adds the ones it learns).
    pub dns_servers: Vec<IpAddr>,
    /// Receive buffer of each new TCP connection, in bytes (the advertised window): 16 KiB, as
    /// it grows with the transfer (see [`Config::tcp_buffer_max`]), so an idle connection costs
    /// about 44 KiB in all (`echo` on TAP: 500 idle connections, 21 MB).
    pub tcp_rx_buffer: usize,
    /// Send buffer of each new TCP connection, in bytes (16 KiB, growing likewise).
    pub tcp_tx_buffer: usize,
    /// How large a connection's buffers may grow (default 4 MiB, Linux's largest send buffer;
    /// at most 1 GiB). A receive buffer doubles each time half a buffer's worth arrives and the
    /// app read at least half of that meanwhile (a bulk transfer the app keeps up with); a send
    /// buffer doubles when the app found it full and the congestion window could send half of
    /// it. So a bulk connection over a long path is not held to 64 KiB per round trip (4 MiB is
    /// 40 MiB/s at 100 ms), while an idle or slow one keeps its initial buffers. smoltcp does
    /// not pace: past slow start the ACKs clock a window out, as Linux's CUBIC does without a
    /// pacing qdisc. Every growth keeps [`Config::memory_reserve`] free, like a new connection;
    /// both shrink back to their initial sizes once the connection has moved no data for a
    /// second (the receive window shrinks with its buffer; the peer, quiet, has nothing in
    /// flight), so a connection left idle after a transfer costs what a new one does.
    pub tcp_buffer_max: usize,
    /// Bytes the heap must still have free beside a new connection's buffers: short of that,
    /// `connect` fails with `NoResources` and a listener resets the connections it cannot take,
    /// so that a flood of connections cannot exhaust the heap under the rest of the app.
    pub memory_reserve: usize,
    /// A handshake unanswered this long fails with `TimedOut` (six SYN retransmissions).
    pub tcp_connect_timeout: Duration,
    /// A connection (or a close) with data or a FIN unacknowledged that makes no progress for
    /// this long fails with `TimedOut` and is reset; with keep-alive on, so does an idle one
    /// whose probes go unanswered this long. The default, 15 minutes, is about when Linux gives
    /// up (`tcp_retries2`): with smoltcp's retransmission back-off at its 60 s cap, heavy loss
    /// can stall a connection that recovers for several minutes. An idle connection without
    /// keep-alive never times out, as on Linux.
    pub tcp_timeout: Option<Duration>,
    /// Send keep-alive probes after this long without traffic.
    pub tcp_keep_alive: Option<Duration>,
    /// Nagle's algorithm (coalesce small writes).
    pub tcp_nagle: bool,
    /// Lower bound of the retransmission timeout. 200 ms, as Linux (`TCP_RTO_MIN`), rather than
    /// RFC 6298's 1 s: a loss that the ACKs cannot repair (a lost tail segment, a lost
    /// retransmission, a window too small for three duplicate ACKs) costs a stall of the RTO,
    /// and at 1 s a 1 % loss rate cuts throughput a hundredfold. 200 ms stays above the
    /// delayed-ACK timers of common peers (Linux at most 200 ms, after quick-ACKs at start).
    pub tcp_min_rto: Duration,
    /// Congestion control of each TCP connection.
    pub tcp_congestion: Congestion,
    /// Upper bound on a listener's pool of LISTEN sockets, whatever backlog is asked for (each
    /// has its buffers allocated up front).
    pub max_backlog: usize,
    /// How long a dropped connection may wait in FIN-WAIT-2 for the peer's FIN before it is
    /// reset (Linux's `tcp_fin_timeout`).
    pub close_linger: Duration,
    /// Datagrams queued per UDP socket and direction.
    pub udp_packets: usize,
    /// Payload bytes queued per UDP socket and direction.
    pub udp_buffer: usize,
    /// Concurrent DNS queries.
    pub dns_queries: usize,
    /// Seed for initial sequence numbers and ephemeral ports: give each boot a fresh one.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ipv4: Ipv4Mode::None,
            ipv6: None,
            ipv6_gateway: None,
            dns_servers: Vec::new(),
            tcp_rx_buffer: 16 * 1024,
            tcp_tx_buffer: 16 * 1024,
            tcp_buffer_max: 4 << 20,
            memory_reserve: 256 * 1024,
            tcp_connect_timeout: Duration::from_secs(75),
            tcp_timeout: Some(Duration::from_secs(900)),
            tcp_keep_alive: None,
            tcp_nagle: true,
            tcp_min_rto: Duration::from_millis(200),
            tcp_congestion: Congestion::Cubic,
            max_backlog: 16,
            close_linger: Duration::from_secs(60),
            udp_packets: 64,
            udp_buffer: 64 * 1024,
            dns_queries: 8,
            seed: 0,
        }
    }
}

impl Config {
    /// Read `--ipv4`, `--ipv4-gateway`, `--dhcp`, `--dns-server`, `--ipv6` and `--ipv6-gateway`
    /// (see [`ARGS`]). The seed stays 0: set [`Config::seed`] from the
    /// platform's RNG.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        let mut config = Self::default();
        let addr = args.get_opt::<Ipv4Cidr>("ipv4")?;
        let gateway = args.get_opt::<Ipv4Addr>("ipv4-gateway")?;
        config.ipv4 = match (addr, args.flag("dhcp")) {
            (Some(addr), true) => {
                return Err(conflict(
                    "dhcp",
                    &alloc::format!("--ipv4 {addr}"),
                    "either --dhcp or --ipv4, not both",
                ));
            }
            (Some(addr), false) => Ipv4Mode::Static { addr, gateway },
            (None, true) if gateway.is_some() => {
                return Err(conflict(
                    "ipv4-gateway",
                    raw(args, "ipv4-gateway"),
                    "no gateway with --dhcp (the server gives one)",
                ));
            }
            (None, true) => Ipv4Mode::Dhcp,
            (None, false) if gateway.is_some() => {
                return Err(conflict(
                    "ipv4-gateway",
                    raw(args, "ipv4-gateway"),
                    "--ipv4 ADDR/PREFIX beside it",
                ));
            }
            (None, false) => Ipv4Mode::None,
        };
        config.ipv6 =
            args.get_opt_with("ipv6", "an IPv6 address with prefix like fd00::2/64", Ipv6Cidr::parse)?;
        config.ipv6_gateway = args.get_opt::<IpAddr>("ipv6-gateway")?.and_then(|a| match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        });
        if args.raw("ipv6-gateway").is_some() && config.ipv6_gateway.is_none() {
            return Err(conflict("ipv6-gateway", raw(args, "ipv6-gateway"), "an IPv6 address like fd00::1"));
        }
        config.dns_servers.extend(args.get_opt::<IpAddr>("dns-server")?);
        Ok(config)
    }

    /// The same configuration with a static IPv4 address and gateway.
    pub fn ipv4_static(mut self, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> Self {
        self.ipv4 = Ipv4Mode::Static { addr: Ipv4Cidr { addr, prefix }, gateway };
        self
    }

    /// The same configuration with DHCP.
    pub fn dhcp(mut self) -> Self {
        self.ipv4 = Ipv4Mode::Dhcp;
        self
    }

    /// The same configuration with a static IPv6 address.
    pub fn ipv6_static(mut self, addr: Ipv6Addr, prefix: u8) -> Self {
        self.ipv6 = Some(Ipv6Cidr { addr, prefix });
        self
    }

    /// The same configuration with TCP buffers of `rx` and `tx` bytes.
    pub fn tcp_buffers(mut self, rx: usize, tx: usize) -> Self {
        self.tcp_rx_buffer = rx;
        self.tcp_tx_buffer = tx;
        self
    }

    /// The same configuration with `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

fn conflict(name: &'static str, value: &str, expected: &'static str) -> ArgError {
    ArgError::Invalid { name, value: value.into(), expected }
}

fn raw<'a>(args: &'a Args, name: &str) -> &'a str {
    args.raw(name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use morgana_args::COMMON;

    fn parse(argv: &[&str]) -> Result<Config, ArgError> {
        Config::from_args(&Args::parse(&[COMMON, ARGS], argv).unwrap())
    }

    #[test]
    fn static_dhcp_and_dns() {
        let c = parse(&["--ipv4", "10.0.0.2/24", "--ipv4-gateway", "10.0.0.1", "--dns-server", "10.0.0.53"])
            .unwrap();
        assert_eq!(
            c.ipv4,
            Ipv4Mode::Static {
                addr: Ipv4Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 24 },
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1))
            }
        );
        assert_eq!(c.dns_servers, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53))]);
        assert_eq!(parse(&["--dhcp"]).unwrap().ipv4, Ipv4Mode::Dhcp);
        assert_eq!(parse(&[]).unwrap().ipv4, Ipv4Mode::None);
        let c = parse(&["--ipv6", "fd00::2/64", "--ipv6-gateway", "fd00::1"]).unwrap();
        assert_eq!(c.ipv6, Some(Ipv6Cidr { addr: "fd00::2".parse().unwrap(), prefix: 64 }));
        assert_eq!(c.ipv6_gateway, Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn contradictions_are_refused_with_the_argument_named() {
        let e = parse(&["--dhcp", "--ipv4", "10.0.0.2/24"]).unwrap_err().to_string();
        assert!(e.starts_with("--dhcp: expected either --dhcp or --ipv4"), "{e}");
        let e = parse(&["--ipv4-gateway", "10.0.0.1"]).unwrap_err().to_string();
        assert!(e.starts_with("--ipv4-gateway:"), "{e}");
        let e = parse(&["--ipv6", "fd00::2"]).unwrap_err().to_string();
        assert!(e.starts_with("--ipv6: expected an IPv6 address with prefix"), "{e}");
        let e = parse(&["--ipv6-gateway", "10.0.0.1"]).unwrap_err().to_string();
        assert!(e.starts_with("--ipv6-gateway:"), "{e}");
        assert!(parse(&["--ipv4", "10.0.0.2"]).is_err());
    }
}
