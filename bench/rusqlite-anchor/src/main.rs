//! Physical-reference anchor for `npm run bench`: raw rusqlite doing the storage workloads
//! of bench/storage.mjs, with the connection set up like the addon's (WAL, exclusive
//! locking, a `_cf_KV`-like WITHOUT ROWID table, cached statements, values in V8 format)
//! but SQLite's own `synchronous` doing the durability: FULL fsyncs the WAL inside COMMIT,
//! NORMAL does not.
//!
//! Usage (prints one JSON line):
//!   rusqlite-anchor <case> <n> <reps> <FULL|NORMAL> <dir> [warmup=1]
//!     case: kv_upsert   n upserts of distinct keys in one transaction
//!           kv_get      n point reads of existing keys (autocommit reads)
//!           insert      n row inserts in one transaction
//!           put_each    n upserts of one key, one transaction (commit) each
//!     → {"case","sync","n","sqlite","ms":[one per rep]}, after `warmup` untimed reps.
//!   rusqlite-anchor version  → {"sqlite"}
//!   rusqlite-anchor fsync-probe <n> <dir>
//!     → {"n","fsync_per_s","p50_ms","p99_ms"}: append 4 KiB + fsync, n times.
use rusqlite::{params, Connection};
use std::time::Instant;

/// Opens a fresh database (the "new object"): untimed, like the object's constructor.
fn open(dir: &str, sync: &str) -> Connection {
    std::fs::create_dir_all(dir).unwrap();
    let path = format!("{dir}/anchor.sqlite");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "locking_mode", "EXCLUSIVE").unwrap();
    let _: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).unwrap();
    c.pragma_update(None, "synchronous", sync).unwrap();
    c.execute_batch(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
         CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    c
}

/// `v8.serialize(i)` for a small non-negative integer: header, 'I', zigzag varint.
fn v8_int(i: u32) -> Vec<u8> {
    let mut out = vec![0xFF, 0x0F, b'I'];
    let mut z = i << 1;
    loop {
        let byte = (z & 0x7F) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

const UPSERT: &str = "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

fn upsert_batch(c: &Connection, n: u32) {
    c.execute_batch("BEGIN").unwrap();
    let mut st = c.prepare_cached(UPSERT).unwrap();
    for i in 0..n {
        st.execute(params![format!("k{i}"), v8_int(i)]).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
}

/// One repetition of `case` on a fresh database; returns the timed part in ms.
fn run(case: &str, n: u32, dir: &str, sync: &str) -> f64 {
    let c = open(dir, sync);
    if case == "kv_get" {
        upsert_batch(&c, n); // the keys exist before the timed reads
    }
    let t0 = Instant::now();
    match case {
        "kv_upsert" => upsert_batch(&c, n),
        "kv_get" => {
            let mut st = c.prepare_cached("SELECT value FROM kv WHERE key = ?1").unwrap();
            let mut bytes = 0usize;
            for i in 0..n {
                let v: Vec<u8> = st.query_row(params![format!("k{i}")], |r| r.get(0)).unwrap();
                bytes += v.len();
            }
            assert!(bytes > 0);
        }
        "insert" => {
            c.execute_batch("BEGIN").unwrap();
            let mut st = c.prepare_cached("INSERT INTO rows (v) VALUES (?1)").unwrap();
            for i in 0..n {
                st.execute(params![format!("row-{i}")]).unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
        }
        "put_each" => {
            // Autocommit: every execute is its own transaction (and, at FULL, its own fsync).
            let mut st = c.prepare_cached(UPSERT).unwrap();
            for i in 0..n {
                st.execute(params!["count", v8_int(i)]).unwrap();
            }
        }
        _ => panic!("unknown case {case}"),
    }
    t0.elapsed().as_secs_f64() * 1e3
}

/// The disk's own pace: append 4 KiB and fsync, n times.
fn fsync_probe(n: usize, dir: &str) -> String {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let path = format!("{dir}/fsync-probe.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let buf = [1u8; 4096];
    let mut lat: Vec<f64> = (0..n)
        .map(|_| {
            f.write_all(&buf).unwrap();
            let t = Instant::now();
            f.sync_all().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    drop(f);
    let _ = std::fs::remove_file(&path);
    let mean = lat.iter().sum::<f64>() / n as f64;
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        r#"{{"n":{n},"fsync_per_s":{:.0},"p50_ms":{:.4},"p99_ms":{:.4}}}"#,
        1e3 / mean,
        lat[n / 2],
        lat[n * 99 / 100]
    )
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| a.get(i).unwrap_or_else(|| panic!("missing argument {i}; see the usage in main.rs"));
    if arg(0) == "version" {
        println!(r#"{{"sqlite":"{}"}}"#, rusqlite::version());
        return;
    }
    if arg(0) == "fsync-probe" {
        println!("{}", fsync_probe(arg(1).parse().unwrap(), arg(2)));
        return;
    }
    let (case, n, reps, sync, dir) = (arg(0), arg(1).parse().unwrap(), arg(2).parse::<usize>().unwrap(), arg(3), arg(4));
    let warmup: usize = a.get(5).map(|s| s.parse().unwrap()).unwrap_or(1);
    for _ in 0..warmup {
        run(case, n, dir, sync);
    }
    let ms: Vec<String> = (0..reps).map(|_| format!("{:.4}", run(case, n, dir, sync))).collect();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{dir}/anchor.sqlite{suffix}"));
    }
    println!(
        r#"{{"case":"{case}","sync":"{sync}","n":{n},"sqlite":"{}","ms":[{}]}}"#,
        rusqlite::version(),
        ms.join(",")
    );
}
