//! # morgana-args: runtime arguments, one syntax on every target
//!
//! `--ipv4 10.0.0.2/24 --port 443` reads the same from a Linux command line and from a kernel
//! command line. Each layer declares the arguments it reads, next to the code that reads them:
//! [`COMMON`] (`--log`, `--help`) here, the network stack's in `morgana-tcpip`, a target's
//! device arguments (`--net`, `--block`, `--kv`) in that target, an app's in its `lib.rs`; the
//! run skeleton (`morgana-target`) hands [`Args::parse`] the lists that apply to this app on
//! this target, so `--help` shows exactly those. A bad value becomes one line naming the
//! argument and what it expects (the target exits with status 2).
//!
//! Not part of the device signatures (`morgana`): a parser, not a contract.
//!
//! ```
//! use morgana_args::{ArgSpec, Args, COMMON};
//!
//! const APP: &[ArgSpec] = &[ArgSpec::value("port", "PORT", "TCP port to listen on").default("7")];
//!
//! let args = Args::parse(&[COMMON, APP], ["--port", "8080"]).unwrap();
//! assert_eq!(args.get::<u16>("port").unwrap(), 8080);
//! let err = Args::parse(&[COMMON, APP], ["--port=http"]).unwrap().get::<u16>("port").unwrap_err();
//! assert_eq!(err.to_string(), "--port: expected a number from 0 to 65535, got \"http\"");
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::net::{IpAddr, Ipv4Addr};
use core::str::FromStr;

/// One accepted argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Long name, without the leading `--`.
    pub name: &'static str,
    /// Optional one-letter alias (`-l`).
    pub short: Option<char>,
    /// Name of the value in help (`PORT`); `None` for a flag that takes no value.
    pub metavar: Option<&'static str>,
    /// Value used when the argument is absent.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

impl ArgSpec {
    /// A flag (`--dhcp`): present or not.
    pub const fn flag(name: &'static str, help: &'static str) -> Self {
        Self { name, short: None, metavar: None, default: None, help }
    }

    /// An argument that takes a value (`--port 7` or `--port=7`).
    pub const fn value(name: &'static str, metavar: &'static str, help: &'static str) -> Self {
        Self { name, short: None, metavar: Some(metavar), default: None, help }
    }

    /// The same argument with a default value.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    /// The same argument with a one-letter alias.
    pub const fn short(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }
}

/// The arguments every target reads, whatever the app: `--log`, `--stats-interval` and `--help`.
pub const COMMON: &[ArgSpec] = &[
    ArgSpec::value("log", "LEVEL", "log level: error, warn, info, debug or trace").short('l').default("info"),
    ArgSpec::value(
        "stats-interval",
        "SECONDS",
        "log the counters (frames, drops, connections, heap, TLS, HTTP) every SECONDS; they are logged at exit too",
    ),
    ArgSpec::flag("help", "print this help and exit").short('h'),
];

/// Why the arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// An argument nobody declared.
    Unknown(String),
    /// An argument that needs a value came last.
    MissingValue(&'static str),
    /// A flag was given a value.
    UnexpectedValue(&'static str),
    /// A value that does not parse.
    Invalid {
        /// The argument's long name.
        name: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A required argument is absent.
    Required(&'static str),
    /// Arguments that do not go together: the line names them and says what to do.
    Conflict(&'static str),
    /// `--help` was given: not a failure, the target prints the usage and exits 0.
    Help,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(a) => write!(f, "{a}: unknown argument (--help lists them)"),
            Self::MissingValue(n) => write!(f, "--{n}: a value is required"),
            Self::UnexpectedValue(n) => write!(f, "--{n}: takes no value"),
            Self::Invalid { name, value, expected } => {
                write!(f, "--{name}: expected {expected}, got {}", Quoted(value))
            }
            Self::Required(n) => write!(f, "--{n}: required"),
            Self::Conflict(m) => f.write_str(m),
            Self::Help => f.write_str("help requested"),
        }
    }
}

impl core::error::Error for ArgError {}

/// A value as the user typed it, in double quotes, with quotes, backslashes and control
/// characters escaped (`\n`, `\u{1b}`) so that it cannot garble the terminal. As `{:?}` of a
/// `str` for what a command line holds, without the Unicode tables `{:?}` links in (2 KiB of a
/// bare-metal image).
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// A value type that arguments can be parsed into.
pub trait ArgValue: Sized {
    /// What a valid value looks like, for the error message.
    const EXPECTED: &'static str;
    /// Parse, or `None` if `s` is not valid.
    fn parse_arg(s: &str) -> Option<Self>;
}

macro_rules! from_str_arg {
    ($($t:ty => $e:expr),* $(,)?) => {$(
        impl ArgValue for $t {
            const EXPECTED: &'static str = $e;
            fn parse_arg(s: &str) -> Option<Self> {
                <$t>::from_str(s).ok()
            }
        }
    )*};
}

from_str_arg! {
    u8 => "a number from 0 to 255",
    u16 => "a number from 0 to 65535",
    u32 => "a number from 0 to 4294967295",
    u64 => "a non-negative number",
    usize => "a non-negative number",
    Ipv4Addr => "an IPv4 address like 10.0.0.2",
    IpAddr => "an IP address like 10.0.0.2 or fd00::2",
}

impl ArgValue for String {
    const EXPECTED: &'static str = "a string";
    fn parse_arg(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
}

impl ArgValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn parse_arg(s: &str) -> Option<Self> {
        match s {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

/// An IPv4 address with its prefix length (`10.0.0.2/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl ArgValue for Ipv4Cidr {
    const EXPECTED: &'static str = "an IPv4 address with prefix like 10.0.0.2/24";
    fn parse_arg(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        let prefix = u8::from_str(prefix).ok().filter(|p| *p <= 32)?;
        Some(Self { addr: Ipv4Addr::from_str(addr).ok()?, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A byte size: a number with an optional `K`, `M` or `G` (powers of 1024) suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ArgValue for ByteSize {
    const EXPECTED: &'static str = "a size like 1048576, 512K, 64M or 1G";
    fn parse_arg(s: &str) -> Option<Self> {
        let (digits, shift) = match s.as_bytes().last()? {
            b'k' | b'K' => (&s[..s.len() - 1], 10),
            b'm' | b'M' => (&s[..s.len() - 1], 20),
            b'g' | b'G' => (&s[..s.len() - 1], 30),
            _ => (s, 0),
        };
        let n = u64::from_str(digits).ok()?;
        n.checked_mul(1u64 << shift).map(ByteSize)
    }
}

/// Parsed arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    specs: Vec<ArgSpec>,
    given: Vec<(&'static str, Option<String>)>,
}

impl Args {
    /// Check `argv` (without the program name) against the declared `specs`.
    pub fn parse<I, S>(specs: &[&[ArgSpec]], argv: I) -> Result<Self, ArgError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = Vec::with_capacity(specs.iter().map(|s| s.len()).sum());
        specs.iter().for_each(|s| all.extend_from_slice(s));
        let specs = all;
        let mut given = Vec::new();
        let mut argv = argv.into_iter();
        while let Some(arg) = argv.next() {
            let arg = arg.as_ref();
            let (spec, inline) = if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                (specs.iter().find(|s| same(s.name, name)), inline)
            } else if let Some(short) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
                let c = short.chars().next();
                (specs.iter().find(|s| s.short.is_some() && s.short == c), None)
            } else {
                (None, None)
            };
            let Some(spec) = spec else {
                return Err(ArgError::Unknown(arg.to_string()));
            };
            if spec.name == "help" {
                return Err(ArgError::Help);
            }
            let value = match (spec.metavar, inline) {
                (None, None) => None,
                (None, Some(_)) => return Err(ArgError::UnexpectedValue(spec.name)),
                (Some(_), Some(v)) => Some(v.to_string()),
                (Some(_), None) => match argv.next() {
                    Some(v) => Some(v.as_ref().to_string()),
                    None => return Err(ArgError::MissingValue(spec.name)),
                },
            };
            given.retain(|(n, _)| *n != spec.name);
            given.push((spec.name, value));
        }
        Ok(Self { specs, given })
    }

    /// Split a kernel command line on whitespace (double quotes group words) and parse it.
    pub fn parse_cmdline(specs: &[&[ArgSpec]], cmdline: &str) -> Result<Self, ArgError> {
        Self::parse(specs, split_cmdline(cmdline))
    }

    fn spec(&self, name: &str) -> Option<&ArgSpec> {
        self.specs.iter().find(|s| same(s.name, name))
    }

    /// Whether the flag (or argument) `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.given.iter().any(|(n, _)| same(n, name))
    }

    /// The raw value of `name`: given, else its default.
    pub fn raw(&self, name: &str) -> Option<&str> {
        match self.given.iter().find(|(n, _)| same(n, name)) {
            Some((_, v)) => v.as_deref(),
            None => self.spec(name).and_then(|s| s.default),
        }
    }

    /// The value of `name` parsed as `T`, or `None` when absent without a default.
    pub fn get_opt<T: ArgValue>(&self, name: &str) -> Result<Option<T>, ArgError> {
        self.get_opt_with(name, T::EXPECTED, T::parse_arg)
    }

    /// The value of `name` parsed as `T`; absent without a default is an error.
    pub fn get<T: ArgValue>(&self, name: &str) -> Result<T, ArgError> {
        self.get_opt(name)?.ok_or_else(|| ArgError::Required(self.static_name(name)))
    }

    /// `name` as declared (`'static`, for an error), `?` if it is not.
    fn static_name(&self, name: &str) -> &'static str {
        self.spec(name).map_or("?", |s| s.name)
    }

    /// The value of `name` parsed by `parse`, which accepts what `expected` describes.
    pub fn get_opt_with<T>(
        &self,
        name: &str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ArgError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        parse(raw).map(Some).ok_or_else(|| ArgError::Invalid {
            name: self.static_name(name),
            value: raw.to_string(),
            expected,
        })
    }

    /// Usage text listing every declared argument.
    pub fn usage(program: &str, specs: &[&[ArgSpec]]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "usage: {program} [ARGS]\n\narguments:");
        for s in specs.iter().flat_map(|s| s.iter()) {
            let mut left = String::new();
            if let Some(c) = s.short {
                let _ = write!(left, "-{c}, ");
            }
            let _ = write!(left, "--{}", s.name);
            if let Some(m) = s.metavar {
                let _ = write!(left, " {m}");
            }
            let _ = write!(out, "  {left:<34} {}", s.help);
            if let Some(d) = s.default {
                let _ = write!(out, " [default: {d}]");
            }
            out.push('\n');
        }
        out
    }
}

/// Whether two argument names are the same. Names are a few bytes: compared byte by byte
/// inline rather than by a `memcmp` call, which is some fifty instructions that a bare-metal
/// boot under an emulating hypervisor executes one by one, a dozen lookups in all.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Split a command line on whitespace; double quotes group words.
pub fn split_cmdline(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(core::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_quoted_as_debug_quotes_a_str() {
        for v in ["http", "a \"b\" \\c", "tab\there\n\r", "esc\u{1b}[2J", "nul\0", "del\u{7f}", "ünïcödé ✓"]
        {
            assert_eq!(Quoted(v).to_string(), alloc::format!("{v:?}"), "{v:?}");
        }
    }

    const APP: &[ArgSpec] = &[
        ArgSpec::value("port", "PORT", "port").default("7"),
        ArgSpec::value("hello", "TEXT", "greeting"),
        ArgSpec::flag("dhcp", "a flag"),
        ArgSpec::value("ipv4", "ADDR/PREFIX", "an address"),
    ];

    fn parse(argv: &[&str]) -> Result<Args, ArgError> {
        Args::parse(&[COMMON, APP], argv)
    }

    #[test]
    fn values_flags_and_defaults() {
        let a = parse(&["--port=80", "--dhcp", "-l", "debug", "--hello", "hi there"]).unwrap();
        assert_eq!(a.get::<u16>("port").unwrap(), 80);
        assert!(a.flag("dhcp") && !a.flag("ipv4"));
        assert_eq!(a.raw("log"), Some("debug"));
        assert_eq!(a.raw("hello"), Some("hi there"));
        let d = parse(&[]).unwrap();
        assert_eq!(d.get::<u16>("port").unwrap(), 7);
        assert_eq!(d.raw("log"), Some("info"));
        assert_eq!(d.get_opt::<String>("hello").unwrap(), None);
        assert_eq!(d.get::<String>("hello"), Err(ArgError::Required("hello")));
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            parse(&["--nope"]).unwrap_err().to_string(),
            "--nope: unknown argument (--help lists them)"
        );
        assert_eq!(parse(&["--port"]).unwrap_err(), ArgError::MissingValue("port"));
        assert_eq!(parse(&["--dhcp=1"]).unwrap_err(), ArgError::UnexpectedValue("dhcp"));
        assert_eq!(parse(&["stray"]).unwrap_err(), ArgError::Unknown("stray".into()));
        assert_eq!(parse(&["-h"]).unwrap_err(), ArgError::Help);
        let e = parse(&["--ipv4", "10.0.0.2"]).unwrap().get::<Ipv4Cidr>("ipv4").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--ipv4: expected an IPv4 address with prefix like 10.0.0.2/24, got \"10.0.0.2\""
        );
        let e = parse(&["--port", "70000"]).unwrap().get::<u16>("port").unwrap_err();
        assert!(e.to_string().starts_with("--port: expected a number from 0 to 65535"));
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            Ipv4Cidr::parse_arg("10.0.0.2/24"),
            Some(Ipv4Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 24 })
        );
        assert_eq!(Ipv4Cidr::parse_arg("10.0.0.2/33"), None);
        assert_eq!(ByteSize::parse_arg("64M"), Some(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse_arg("512"), Some(ByteSize(512)));
        assert_eq!(ByteSize::parse_arg("x"), None);
        assert_eq!(ByteSize::parse_arg("99999999999G"), None);
    }

    #[test]
    fn kernel_command_lines() {
        assert_eq!(split_cmdline("  --hello \"a b\"  --port 7 "), ["--hello", "a b", "--port", "7"]);
        let a = Args::parse_cmdline(&[COMMON, APP], "--hello \"hi  there\"").unwrap();
        assert_eq!(a.raw("hello"), Some("hi  there"));
        assert!(split_cmdline("").is_empty());
    }

    #[test]
    fn usage_lists_everything() {
        let u = Args::usage("echo", &[COMMON, APP]);
        assert!(u.contains("--port PORT") && u.contains("[default: 7]") && u.contains("-l, --log LEVEL"));
    }
}
