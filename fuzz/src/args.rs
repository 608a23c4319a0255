//! The argument parser (`morgana-args`): argument lists, NUL-separated, as a target's command
//! line or a kernel command line would carry them.
//!
//! Checked beyond "no panic": a list the parser accepts reads back every value it was given
//! (the last one wins), typed reads of any value answer or refuse without panicking, and a
//! typed value that parses prints back as text that parses to the same value; a list whose
//! words have no `"` survives quoting into a kernel command line and splitting back.

use morgana_args::{ArgError, ArgSpec, ArgValue, Args, ByteSize, COMMON, Ipv4Cidr, split_cmdline};
use std::net::{IpAddr, Ipv4Addr};

/// An app's own arguments beside [`COMMON`] and the stack's: a value with a default, a short
/// alias, a plain value and a flag.
const APP: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "TCP port to listen on").default("7"),
    ArgSpec::value("mem", "SIZE", "heap size").short('m'),
    ArgSpec::value("hello", "TEXT", "greeting"),
    ArgSpec::flag("tls", "serve HTTPS"),
];

fn specs() -> [&'static [ArgSpec]; 3] {
    [COMMON, morgana_tcpip::ARGS, APP]
}

/// Typed reads of `name`: refused or answered, never a panic; what parses prints back to itself.
fn read_typed(args: &Args, name: &str) {
    fn roundtrip<T: ArgValue + PartialEq + std::fmt::Debug + std::fmt::Display>(args: &Args, name: &str) {
        if let Ok(Some(v)) = args.get_opt::<T>(name) {
            let back = T::parse_arg(&v.to_string());
            assert_eq!(back.as_ref(), Some(&v), "--{name}: {v} does not read back as itself");
        }
    }
    roundtrip::<u16>(args, name);
    roundtrip::<u64>(args, name);
    roundtrip::<Ipv4Addr>(args, name);
    roundtrip::<IpAddr>(args, name);
    roundtrip::<Ipv4Cidr>(args, name);
    let _ = args.get_opt::<bool>(name);
    if let Ok(Some(ByteSize(n))) = args.get_opt::<ByteSize>(name) {
        assert_eq!(ByteSize::parse_arg(&n.to_string()), Some(ByteSize(n)));
    }
    if let Err(e) = args.get::<u16>(name) {
        assert!(!e.to_string().is_empty());
    }
}

/// Feed one argument list.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let argv: Vec<&str> = if text.is_empty() { Vec::new() } else { text.split('\0').collect() };
    let specs = specs();
    match Args::parse(&specs, &argv) {
        Ok(args) => {
            for spec in specs.iter().flat_map(|s| s.iter()) {
                let raw = args.raw(spec.name);
                // The last value given wins; absent, the default.
                let given = last_given(&argv, spec);
                match given {
                    Some(v) => assert_eq!(raw, v, "--{}: read back {raw:?}, given {v:?}", spec.name),
                    None => assert_eq!(raw, spec.default, "--{}: absent, so its default", spec.name),
                }
                assert_eq!(args.get_opt::<String>(spec.name).ok().flatten().as_deref(), raw);
                read_typed(&args, spec.name);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            if let ArgError::Unknown(a) = &e {
                assert!(argv.contains(&a.as_str()), "refused {a:?}, which was not given");
            }
        }
    }
    // A kernel command line carries the same list, each word quoted.
    if argv.iter().all(|a| !a.contains('"')) {
        let cmdline: Vec<String> = argv.iter().map(|a| format!("\"{a}\"")).collect();
        assert_eq!(split_cmdline(&cmdline.join(" ")), argv, "quoting and splitting changed the words");
    }
    let _ = split_cmdline(&text);
    let _ = Args::parse_cmdline(&specs, &text);
}

/// What the argument list gives `spec`, following the parser's documented rules: `Some(None)`
/// for a flag, `Some(Some(v))` for a value, `None` when absent.
fn last_given<'a>(argv: &[&'a str], spec: &ArgSpec) -> Option<Option<&'a str>> {
    let mut found = None;
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i];
        let (name_matches, inline) = if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n == spec.name, Some(v)),
                None => (long == spec.name, None),
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            (spec.short.is_some() && short.chars().next() == spec.short, None)
        } else {
            (false, None)
        };
        let takes_value = takes_value(a, &specs());
        if name_matches {
            found = Some(match (spec.metavar, inline) {
                (None, _) => None,
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => argv.get(i + 1).copied(),
            });
        }
        i += if takes_value { 2 } else { 1 };
    }
    found
}

/// Whether `arg` names a value argument without an inline value (so the next word is its value).
fn takes_value(arg: &str, specs: &[&[ArgSpec]]) -> bool {
    let all = specs.iter().flat_map(|s| s.iter());
    if let Some(long) = arg.strip_prefix("--") {
        !long.contains('=') && all.clone().any(|s| s.name == long && s.metavar.is_some())
    } else if let Some(short) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
        let c = short.chars().next();
        all.clone().any(|s| s.short.is_some() && s.short == c && s.metavar.is_some())
    } else {
        false
    }
}

/// Argument lists the apps' own tests and READMEs use.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let lists: &[&[&str]] = &[
        &[],
        &["--ipv4", "10.0.0.2/24", "--ipv4-gateway", "10.0.0.1", "--port", "8080"],
        &["--net", "tap:tap0", "--dhcp", "-l", "debug"],
        &["--port=443", "--tls", "--mem", "64M", "--hello", "hi there"],
        &["-m", "512K", "--dns-server", "fd00::1", "--ipv6", "fd00::2/64"],
        &["--log=trace", "--kv", "/srv/www", "--block", "disk.img"],
        &["--port", "70000"],
        &["--help"],
        &["stray", "--nope"],
    ];
    lists.iter().enumerate().map(|(i, l)| (format!("list-{i}"), l.join("\0").into_bytes())).collect()
}
