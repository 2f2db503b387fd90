//! The gate's decision alone, without Python: replays a request file through
//! `Gate::admit` / `Gate::release` exactly as `tests/bench/test_bench_gate.py::drive` does,
//! and prints the median ns per decision and the decisions' tally as one JSON line.
//!
//! Usage: `cargo run --release --example gate_decision -- REQUESTS ROUNDS`
//! REQUESTS: a first line `user_rate user_burst ip_rate ip_burst max_in_flight sold_out_sale`,
//! then one line per request: `sale user ip now_ns release(0|1)`.

use std::collections::VecDeque;
use std::error::Error;
use std::time::Instant;

use _core::gate::{ADMIT, Gate, GateConfig};

struct Request {
    sale: u64,
    user: u64,
    ip: String,
    now_ns: u64,
    release: bool,
}

fn field<T: std::str::FromStr>(it: &mut std::str::SplitWhitespace<'_>) -> Result<T, Box<dyn Error>>
where
    T::Err: Error + 'static,
{
    Ok(it.next().ok_or("short line")?.parse::<T>()?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: gate_decision REQUESTS ROUNDS")?;
    let rounds: usize = args.get(2).map_or(Ok(10), |r| r.parse())?;
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let mut head = lines.next().ok_or("empty file")?.split_whitespace();
    let config = GateConfig {
        user_rate: field(&mut head)?,
        user_burst: field(&mut head)?,
        ip_rate: field(&mut head)?,
        ip_burst: field(&mut head)?,
        max_in_flight: field(&mut head)?,
        max_keys: 1 << 20,
    };
    let sold_out: u64 = field(&mut head)?;
    let mut reqs = Vec::new();
    for line in lines {
        let mut it = line.split_whitespace();
        reqs.push(Request {
            sale: field(&mut it)?,
            user: field(&mut it)?,
            ip: it.next().ok_or("short line")?.to_owned(),
            now_ns: field(&mut it)?,
            release: field::<u8>(&mut it)? == 1,
        });
    }
    let mut times = Vec::with_capacity(rounds);
    let mut tally = [0u64; 4];
    let mut retry_ms_sum = 0u64;
    for _ in 0..rounds {
        let gate = Gate::new(config)?;
        gate.mark_sold_out(sold_out, None);
        let mut pending = VecDeque::new();
        tally = [0; 4];
        retry_ms_sum = 0;
        let t0 = Instant::now();
        for r in &reqs {
            let d = gate.admit(r.sale, r.user, &r.ip, Some(r.now_ns));
            let code = d.code();
            tally[usize::from(code)] += 1;
            retry_ms_sum += d.retry_after_ms();
            if code == ADMIT {
                pending.push_back(r.sale);
            }
            if r.release {
                if let Some(sale) = pending.pop_front() {
                    gate.release(sale);
                }
            }
        }
        times.push(t0.elapsed().as_nanos() as f64 / reqs.len().max(1) as f64);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{{\"ns_per_decision\": {median:.2}, \"decisions\": {}, \"tally\": [{}, {}, {}, {}], \"retry_ms_sum\": {retry_ms_sum}}}",
        reqs.len(),
        tally[0],
        tally[1],
        tally[2],
        tally[3]
    );
    Ok(())
}
