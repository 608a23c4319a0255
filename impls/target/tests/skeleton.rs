//! The run skeleton on a target of in-memory devices: what `--help` lists, what each failure
//! prints and its exit status, and that the app's body gets the devices it asked for.

use std::cell::RefCell;
use std::future::Future;

use morgana::{Clock, Duration, KvRo, Platform};
use morgana_mem::{ManualClock, MemBlock, MemKv, MemNet};
use morgana_rt::{Executor, RtPlatform, Stalled, VirtualTime};
use morgana_target::{
    ArgSpec, Args, Device, EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE, Refused, Specs, StartError, Store, Target,
    run,
};

thread_local! {
    static OUT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A target with one store (`--kv`) it can read, and one (`--certs`) it refuses.
struct Mem {
    exec: Executor<VirtualTime>,
    time: VirtualTime,
    args: Args,
    counters: morgana_target::Counters,
}

const KV: &[ArgSpec] = &[ArgSpec::value("kv", "DIR", "a store")];

impl Target for Mem {
    const NAME: &'static str = "mem";
    type Boot = ();
    type Platform = RtPlatform<VirtualTime, morgana_mem::SeededEntropy>;
    type TcpStack = morgana_tcpip::Stack;
    type Net = MemNet;
    type Block = MemBlock;
    type KvRo = MemKv<ManualClock>;
    type KvRw = MemKv<ManualClock>;

    fn specs(devices: &[Device]) -> Specs {
        let mut s = Specs::default();
        for d in devices {
            match d {
                Device::KvRo(store) if store.name == "kv" => s.read.extend_from_slice(KV),
                Device::KvRo(store) => s.refused.push(Refused {
                    spec: ArgSpec::value(store.name, "DIR", store.help),
                    why: "no such stores here",
                    instead: store.instead,
                }),
                _ => {}
            }
        }
        s
    }

    fn print_usage(text: &str) {
        OUT.with(|o| o.borrow_mut().push_str(text));
    }

    fn print_error(line: std::fmt::Arguments<'_>) {
        OUT.with(|o| o.borrow_mut().push_str(&format!("{line}\n")));
    }

    fn start(_: (), args: Args, _: log::LevelFilter) -> Result<Self, StartError> {
        if args.flag("fail-start") {
            return Err(StartError::Device("cannot start: no memory".into()));
        }
        let time = VirtualTime::new();
        Ok(Self { exec: Executor::new(time.clone()), time, args, counters: Default::default() })
    }

    fn args(&self) -> &Args {
        &self.args
    }

    fn platform(&self) -> Self::Platform {
        RtPlatform::new(self.exec.handle(), morgana_mem::SeededEntropy::new(1))
    }

    fn tcp_stack(&mut self) -> Result<morgana_tcpip::Stack, StartError> {
        Err(StartError::Device("no NIC here".into()))
    }

    fn net(&mut self) -> Result<MemNet, StartError> {
        Err(StartError::Device("no NIC here".into()))
    }

    fn tcpip_config(&self) -> Result<morgana_tcpip::Config, StartError> {
        Ok(morgana_tcpip::Config::from_args(&self.args)?)
    }

    fn block(&mut self) -> Result<MemBlock, StartError> {
        Ok(MemBlock::new(512, 8))
    }

    fn kv_ro(&mut self, name: &str) -> Result<Option<Self::KvRo>, StartError> {
        Ok(self.args.flag(name).then(|| MemKv::new(ManualClock::default())))
    }

    fn kv_rw(&mut self, _: &str) -> Result<Self::KvRw, StartError> {
        Ok(MemKv::new(ManualClock::default()))
    }

    fn file(&mut self, _: &str) -> Result<Option<Vec<u8>>, StartError> {
        Ok(None)
    }

    fn counters(&self) -> &morgana_target::Counters {
        &self.counters
    }

    fn block_on<F: Future>(self, app: F) -> Result<F::Output, Stalled> {
        self.exec.block_on(&mut self.time.park(), app)
    }
}

const APP: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "a port").default("7"),
    ArgSpec::flag("fail-start", "make the target's start fail"),
];
const WIRING: &[ArgSpec] = &[ArgSpec::flag("fail", "make the app fail")];
const SITE: Store = Store::new("kv", "the site", "drop --kv");
const CERTS: Store = Store::new("certs", "the certificates", "drop --certs to use the built-in one");

/// Run the app on `argv`: its exit status and what it printed.
fn go(argv: &[&str]) -> (u8, String) {
    OUT.with(|o| o.borrow_mut().clear());
    let status = run::<Mem, _, _, _>(
        (),
        "app",
        argv,
        &[APP, WIRING],
        &[Device::KvRo(SITE), Device::KvRo(CERTS)],
        |t| {
            let port: u16 = t.args().get("port")?;
            let fail = t.args().flag("fail");
            let site = t.kv_ro_or("kv", MemKv::new(ManualClock::default()))?;
            let clock = t.platform().clock();
            Ok(async move {
                clock.sleep(Duration::from_secs(60)).await;
                let given = matches!(site, morgana::Either::Left(_));
                let _ = site.list(&morgana::Key::parse("/").unwrap()).await;
                if fail { Err(format!("port {port}, site given: {given}")) } else { Ok(()) }
            })
        },
    );
    (status, OUT.with(|o| o.borrow().clone()))
}

#[test]
fn help_lists_exactly_the_arguments_read() {
    let (status, out) = go(&["--help"]);
    assert_eq!(status, EXIT_SUCCESS);
    for want in ["--log LEVEL", "--help", "--kv DIR", "--port PORT", "--fail-start", "--fail "] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    assert!(!out.contains("--certs"), "a refused argument is not listed:\n{out}");
}

#[test]
fn each_failure_is_one_line_with_its_status() {
    assert_eq!(
        go(&["--port", "x"]),
        (EXIT_USAGE, "app: --port: expected a number from 0 to 65535, got \"x\"\n".into())
    );
    assert_eq!(go(&["--nope"]).0, EXIT_USAGE);
    assert_eq!(go(&["--log", "loud"]).0, EXIT_USAGE);
    assert_eq!(
        go(&["--certs", "/etc/ssl"]),
        (
            EXIT_FAILURE,
            "app: --certs /etc/ssl: no such stores here; drop --certs to use the built-in one\n".into()
        )
    );
    assert_eq!(go(&["--fail-start"]), (EXIT_FAILURE, "app: cannot start: no memory\n".into()));
}

#[test]
fn the_body_gets_its_devices_and_its_outcome_is_the_status() {
    assert_eq!(go(&[]), (EXIT_SUCCESS, String::new()));
    assert_eq!(go(&["--fail", "--port", "9"]), (EXIT_FAILURE, "error: port 9, site given: false\n".into()));
    assert_eq!(go(&["--fail", "--kv", "x"]), (EXIT_FAILURE, "error: port 7, site given: true\n".into()));
}
