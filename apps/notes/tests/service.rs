//! `notes` over an in-memory pipe, on virtual time, its store on an in-memory disk: the
//! answers to each method, the token, a full disk, and acknowledged writes surviving a power
//! cut at every point of a workload.

use std::future::Future;

use embedded_io_async::Write;
use futures::future::{Either, select};
use morgana::{Block, Key, KvRo, WallClock};
use morgana_http::{Client, Limits, Response, serve};
use morgana_mem::{FaultyBlock, MemBlock, PipeEnd, pipe};
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_store::Store;
use notes::Notes;

type Clk = Handle<VirtualTime>;
type Disk = FaultyBlock<MemBlock>;

fn limits() -> Limits {
    Limits { keep_body: true, max_body: 256 * 1024, ..Limits::default() }
}

/// Run `f` on virtual time.
fn run<T, F: Future<Output = T>>(f: impl FnOnce(Clk) -> F) -> T {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let clock = exec.handle();
    exec.block_on(&mut time.park(), f(clock)).expect("no stall")
}

/// Serve `store` (as `notes` with `token`) on one connection while `client` talks to it; what
/// the client returned, or `None` if the server ended first.
async fn talk<B, C, T, F>(
    store: &Store<B, C>,
    token: Option<&str>,
    clock: &Clk,
    client: impl FnOnce(Client<PipeEnd>) -> F,
) -> Option<T>
where
    B: Block,
    C: WallClock,
    F: Future<Output = T>,
{
    let notes = Notes::new(store, token.map(Into::into));
    let (a, b) = pipe(64 * 1024);
    let limits = limits();
    let server = std::pin::pin!(serve(a, &notes, clock, &limits));
    let client = std::pin::pin!(client(Client::new(b)));
    match select(client, server).await {
        Either::Left((t, _)) => Some(t),
        Either::Right(_) => None,
    }
}

/// Send `method path` with `headers` and `body`; the response.
async fn call(
    c: &mut Client<PipeEnd>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    c.flow_mut().write_all(&bytes).await.unwrap();
    c.receive(method == "HEAD").await.unwrap()
}

fn disk(sectors: u64) -> Disk {
    FaultyBlock::new(MemBlock::new(512, sectors), 7)
}

#[test]
fn each_method_gets_its_answer() {
    run(|clock| async move {
        let store = Store::open(disk(8192), clock.clone()).await.unwrap();
        let r = talk(&store, None, &clock, async |mut c| {
            let mut r = Vec::new();
            for (method, path, body) in [
                ("PUT", "/a/b.txt", &b"hello"[..]),
                ("PUT", "/a/b.txt", b"hello, again"),
                ("GET", "/a/b.txt", b""),
                ("PUT", "/a/sp%20ace", b"x"),
                ("GET", "/a/", b""),
                ("GET", "/", b""),
                ("GET", "/a", b""),
                ("PUT", "/a/b.txt/c", b"x"),
                ("DELETE", "/a/b.txt", b""),
                ("DELETE", "/a/b.txt", b""),
                ("GET", "/a/b.txt", b""),
                ("POST", "/a", b""),
                ("GET", "/a/%zz", b""),
            ] {
                r.push(call(&mut c, method, path, &[], body).await);
            }
            r
        })
        .await
        .unwrap();
        let status: Vec<u16> = r.iter().map(|r| r.status).collect();
        assert_eq!(status, [201, 204, 200, 201, 200, 200, 301, 409, 204, 404, 404, 405, 400]);
        assert_eq!(r[2].body, b"hello, again");
        assert!(r[2].header("etag").is_some());
        let listing = String::from_utf8(r[4].body.clone()).unwrap();
        assert_eq!(
            listing,
            "[{\"name\":\"b.txt\",\"kind\":\"value\"},{\"name\":\"sp ace\",\"kind\":\"value\"}]\n"
        );
        assert_eq!(r[4].header("content-type"), Some("application/json"));
        assert_eq!(
            String::from_utf8(r[5].body.clone()).unwrap(),
            "[{\"name\":\"a\",\"kind\":\"dictionary\"}]\n"
        );
        assert_eq!(r[6].header("location"), Some("/a/"));
        assert_eq!(r[11].header("allow"), Some("GET, HEAD, PUT, DELETE"));
    });
}

#[test]
fn ranges_and_etags_are_served_as_www_serves_files() {
    run(|clock| async move {
        let store = Store::open(disk(8192), clock.clone()).await.unwrap();
        let value: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (range, etag, again) = talk(&store, None, &clock, async |mut c| {
            call(&mut c, "PUT", "/big", &[], &value).await;
            let range = call(&mut c, "GET", "/big", &[("Range", "bytes=1000-1999")], b"").await;
            let full = call(&mut c, "GET", "/big", &[], b"").await;
            let etag = full.header("etag").unwrap().to_string();
            let again = call(&mut c, "GET", "/big", &[("If-None-Match", &etag)], b"").await;
            (range, full, again)
        })
        .await
        .unwrap();
        assert_eq!((range.status, range.body.as_slice()), (206, &value[1000..2000]));
        assert_eq!(etag.body, value);
        assert_eq!(again.status, 304);
    });
}

#[test]
fn with_a_token_writes_need_it_and_reads_do_not() {
    run(|clock| async move {
        let store = Store::open(disk(8192), clock.clone()).await.unwrap();
        let status = talk(&store, Some("s3cret"), &clock, async |mut c| {
            let mut s = Vec::new();
            s.push(call(&mut c, "PUT", "/k", &[], b"v").await.status);
            s.push(call(&mut c, "PUT", "/k", &[("Authorization", "Bearer s3cre")], b"v").await.status);
            s.push(call(&mut c, "PUT", "/k", &[("Authorization", "Bearer s3cret")], b"v").await.status);
            s.push(call(&mut c, "GET", "/k", &[], b"").await.status);
            s.push(call(&mut c, "DELETE", "/k", &[], b"").await.status);
            s.push(call(&mut c, "DELETE", "/k", &[("Authorization", "Bearer s3cret")], b"").await.status);
            s
        })
        .await
        .unwrap();
        assert_eq!(status, [401, 401, 201, 200, 401, 204]);
    });
}

#[test]
fn a_full_disk_answers_507_and_keeps_what_it_had() {
    run(|clock| async move {
        // 1 MiB: room for a few values of 64 KiB.
        let store = Store::open(disk(2048), clock.clone()).await.unwrap();
        let value = vec![0x5au8; 64 * 1024];
        let (statuses, first, after_delete) = talk(&store, None, &clock, async |mut c| {
            let mut statuses = Vec::new();
            for i in 0..40 {
                let s = call(&mut c, "PUT", &format!("/v{i}"), &[], &value).await.status;
                statuses.push(s);
                if s == 507 {
                    break;
                }
            }
            let first = call(&mut c, "GET", "/v0", &[], b"").await;
            call(&mut c, "DELETE", "/v0", &[], b"").await;
            call(&mut c, "DELETE", "/v1", &[], b"").await;
            let after_delete = call(&mut c, "PUT", "/again", &[], &value).await.status;
            (statuses, first, after_delete)
        })
        .await
        .unwrap();
        assert_eq!(statuses.last(), Some(&507), "{statuses:?}");
        assert!(statuses[..statuses.len() - 1].iter().all(|&s| s == 201), "{statuses:?}");
        assert!(statuses.len() > 3, "{statuses:?}");
        assert_eq!((first.status, first.body == value), (200, true));
        assert_eq!(after_delete, 201, "space freed by DELETE is used again");
    });
}

/// What a workload had acknowledged, and the write under way when the disk died (`None`: a
/// DELETE).
struct Acked {
    values: Vec<(String, Vec<u8>)>,
    under_way: Option<(String, Option<Vec<u8>>)>,
}

/// PUT, replace and DELETE values until the disk fails; what was acknowledged.
async fn workload(c: &mut Client<PipeEnd>) -> Acked {
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..60u32 {
        let path = format!("/d{}/k{}", i % 3, i % 17);
        let value: Vec<u8> = (0..(i as usize * 397) % 9000).map(|j| (j as u32 ^ i) as u8).collect();
        if i % 11 == 10 {
            let r = call(c, "DELETE", &path, &[], b"").await;
            if r.status == 204 || r.status == 404 {
                acked.retain(|(p, _)| *p != path);
                continue;
            }
            return Acked { values: acked, under_way: Some((path, None)) };
        }
        let r = call(c, "PUT", &path, &[], &value).await;
        if r.status == 201 || r.status == 204 {
            acked.retain(|(p, _)| *p != path);
            acked.push((path, value));
        } else {
            return Acked { values: acked, under_way: Some((path, Some(value))) };
        }
    }
    Acked { values: acked, under_way: None }
}

/// The power goes at the `cut`-th device write of the workload (each write from then on
/// fails, then every write since the last flush is lost or torn): after recovery, every
/// acknowledged value is there with its exact bytes, and a PUT under way either happened or
/// did not.
#[test]
fn every_acknowledged_put_survives_a_power_cut_at_any_write() {
    let total = run(|clock| async move {
        let store = Store::open(disk(8192), clock.clone()).await.unwrap();
        let base = store.into_inner().writes();
        let store = Store::open(disk(8192), clock.clone()).await.unwrap();
        talk(&store, None, &clock, async |mut c| workload(&mut c).await).await.unwrap();
        store.into_inner().writes() - base
    });
    assert!(total > 100, "the workload writes {total} times");
    let mut cuts = 0;
    for cut in (1..total).step_by(3) {
        cuts += 1;
        run(|clock| async move {
            let (lose, tear) = [(1.0, 0.0), (0.5, 0.5), (0.0, 0.0)][cut as usize % 3];
            let dev = disk(8192).power_cut_faults(lose, tear);
            let store = Store::open(dev, clock.clone()).await.unwrap();
            let base = store.into_inner().writes();
            let dev = disk(8192).power_cut_faults(lose, tear).fail_after_writes(base + cut);
            let store = Store::open(dev, clock.clone()).await.unwrap();
            let acked = talk(&store, None, &clock, async |mut c| workload(&mut c).await).await.unwrap();
            let mut dev = store.into_inner();
            dev.power_cut().await.unwrap();
            let store = Store::open(FaultyBlock::new(dev.into_inner(), 1), clock.clone())
                .await
                .unwrap_or_else(|e| panic!("cut at write {cut}: recovery failed: {e}"));
            for (path, value) in &acked.values {
                let key = Key::parse(path).unwrap();
                let got = store.get(&key).await;
                // The write under way may or may not have happened.
                let in_flight = acked.under_way.as_ref().is_some_and(|(p, v)| {
                    p == path
                        && match v {
                            Some(v) => got.as_ref() == Ok(v),
                            None => matches!(got, Err(morgana::KvError::NotFound(_))),
                        }
                });
                assert!(got.as_ref() == Ok(value) || in_flight, "cut at write {cut}: {path} lost: {got:?}");
            }
        });
    }
    assert!(cuts > 30);
}
