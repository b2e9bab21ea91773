//! The sans-IO handshake and v3 attach, one connection set-up at a time.
//!
//! * `handshake/client_hello/{v2,v3}`: `ClientHandshake::new` (codec list
//!   validation) + `write_hello`.
//! * `handshake/server_accept/{v2,v3}`: a fresh `ServerHandshake` deciding on
//!   the hello bytes (checked: `Accept` with the compact codec).
//! * `handshake/client_reply/{v2,v3}`: the client validating the 12-byte reply.
//! * `handshake/full/{v2,v3}`: the three in a row, as one connection does.
//! * `attach/request_{new,resume}`: v3 attach request write + decode (checked).
//! * `attach/response`: server writes an accepted response, client decodes
//!   and validates it (`validate_initial`, checked).
//! * `session/resume`: the server's resume validation in a table of 1024
//!   sessions: `detach` then `lookup_resume` (constant-time secret compare,
//!   TTL timer disarm), cycling through the sessions.
//! * `session/create_remove`: a new session (id + secret from `getrandom`),
//!   then removed.
//!
//! Throughput is `Elements(1)` everywhere: elem/s = handshakes (or attaches,
//! resumes) per second on one core. No baseline: these are per-connection
//! costs, to compare with the µs of one echo round trip (`e2e`, `vs_go`).
//! `cargo bench -p amring-bench --bench handshake -- --quick`
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use amring::codec::{CodecKind, CodecRegistry};
use amring_proto::session::SessionTable;
use amring_proto::{
    normalize_server_options, AttachRequest, AttachResponse, ClientHandshake, ClientHandshakeConfig, RecoveryOptions,
    ServerHandshake, ServerHandshakeConfig, ServerStep, Version,
};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn client_cfg(version: Version) -> ClientHandshakeConfig {
    ClientHandshakeConfig {
        version,
        ..ClientHandshakeConfig::default()
    }
}

fn server_cfg() -> ServerHandshakeConfig {
    ServerHandshakeConfig {
        recovery: true,
        ..ServerHandshakeConfig::default()
    }
}

/// Runs the server side on `buf` (the hello) and returns the reply bytes.
fn server_accept(cfg: &ServerHandshakeConfig, buf: &mut BytesMut, version: Version) -> [u8; 12] {
    match ServerHandshake::new(cfg.clone()).handle(buf) {
        ServerStep::Accept {
            reply,
            version: v,
            codec: CodecKind::Compact,
            ..
        } if v == version => reply,
        other => panic!("handshake not accepted: {other:?}"),
    }
}

fn handshake(c: &mut Criterion) {
    let local = CodecRegistry::default();
    let scfg = server_cfg();
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    for (version, name) in [(Version::V2, "v2"), (Version::V3, "v3")] {
        let ccfg = client_cfg(version);
        let mut hello = BytesMut::new();
        ClientHandshake::new(ccfg.clone(), &local)
            .unwrap()
            .write_hello(&mut hello);
        let reply = server_accept(&scfg, &mut hello.clone(), version);

        let mut out = BytesMut::with_capacity(64);
        g.bench_function(BenchmarkId::new("client_hello", name), |b| {
            b.iter(|| {
                out.clear();
                ClientHandshake::new(ccfg.clone(), &local)
                    .unwrap()
                    .write_hello(&mut out);
                out.len()
            })
        });
        let mut buf = BytesMut::with_capacity(64);
        g.bench_function(BenchmarkId::new("server_accept", name), |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(&hello);
                server_accept(&scfg, &mut buf, version)
            })
        });
        g.bench_function(BenchmarkId::new("client_reply", name), |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(&reply);
                let mut ch = ClientHandshake::new(ccfg.clone(), &local).unwrap();
                let done = ch.handle_reply(&mut buf).unwrap().unwrap();
                assert_eq!(done.codec, CodecKind::Compact);
            })
        });
        g.bench_function(BenchmarkId::new("full", name), |b| {
            b.iter(|| {
                buf.clear();
                let mut ch = ClientHandshake::new(ccfg.clone(), &local).unwrap();
                ch.write_hello(&mut buf);
                let reply = server_accept(&scfg, &mut buf, version);
                buf.clear();
                buf.extend_from_slice(&reply);
                let done = ch.handle_reply(&mut buf).unwrap().unwrap();
                assert_eq!((done.version, done.codec), (version, CodecKind::Compact));
            })
        });
    }
    g.finish();
}

fn attach(c: &mut Criterion) {
    let params = normalize_server_options(&RecoveryOptions::default()).unwrap();
    let mut g = c.benchmark_group("attach");
    g.throughput(Throughput::Elements(1));
    let mut buf = BytesMut::with_capacity(128);
    for (name, req) in [
        ("request_new", AttachRequest::new_session()),
        ("request_resume", AttachRequest::resume([1; 16], [2; 16], 12345)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                std::hint::black_box(&req).write(&mut buf);
                let got = AttachRequest::decode(&mut buf).unwrap();
                assert_eq!(got, req);
            })
        });
    }
    g.bench_function("response", |b| {
        b.iter(|| {
            buf.clear();
            AttachResponse::accepted([1; 16], [2; 16], 7, std::hint::black_box(&params)).write(&mut buf);
            let resp = AttachResponse::decode(&mut buf).unwrap();
            let p = resp.validate_initial(params.max_replay_bytes).unwrap();
            assert_eq!(p, params);
        })
    });
    g.finish();
}

fn session(c: &mut Criterion) {
    const SESSIONS: usize = 1024;
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("resume", |b| {
        let mut table: SessionTable<u64> = SessionTable::new(0, Duration::from_secs(30));
        let creds: Vec<_> = (0..SESSIONS as u64).map(|i| table.create(1, i).unwrap()).collect();
        let now = Instant::now();
        let mut k = 0;
        b.iter(|| {
            let (id, secret) = &creds[k % SESSIONS];
            k += 1;
            assert!(table.detach(id, now));
            let e = table.lookup_resume(id, secret, 1, now).unwrap();
            assert!(!e.is_detached());
        })
    });
    g.bench_function("create_remove", |b| {
        let mut table: SessionTable<u64> = SessionTable::new(0, Duration::from_secs(30));
        b.iter(|| {
            let (id, _) = table.create(1, 7).unwrap();
            assert_eq!(table.remove(&id), Some(7));
        })
    });
    g.finish();
}

criterion_group!(benches, handshake, attach, session);
criterion_main!(benches);
