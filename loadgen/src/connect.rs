//! Phase 1 of a worker: dial and handshake its share of the connections
//! (amring's sans-IO client handshake, and in v3 the initial attach), paced
//! by `--connect-rate` and bounded by `--connect-concurrency` in flight.
//! Every data-phase driver starts from its result, one [`Ready`] per
//! connection that came up.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use glommio::timer::sleep;

use amring::codec::{CodecKind, CodecRegistry};
use amring_proto::attach::{AttachRequest, AttachResponse, RecoveryOptions};
use amring_proto::{ClientHandshake, ClientHandshakeConfig, ConnConfig, Connection, Role, Version};

use crate::conn_state::{count_error, ConnCtx};
use crate::stats::ErrorKind;
use crate::transport::{dial, Transport};

/// A connection that completed its handshake (and, in v3, its attach).
pub(crate) struct Ready {
    pub(crate) gidx: usize,
    pub(crate) transport: Transport,
    /// The sans-IO connection (v2, or v3 with the negotiated recovery parameters).
    pub(crate) conn: Connection,
    pub(crate) codec: CodecKind,
    /// Negotiated version (v2 takes the direct path, [`drive_v2`](crate::v2_drive::drive_v2)).
    pub(crate) version: Version,
    /// Negotiated largest payload.
    pub(crate) max_frame: u32,
    /// Bytes read after the handshake reply (v3: after the attach response).
    pub(crate) rest: BytesMut,
}

/// Connects the connections `mine` (global indexes) of this worker, paced and
/// bounded; those that fail are counted as errors and left out.
pub(crate) async fn connect_all(ctx: &Rc<ConnCtx>, mine: &[usize]) -> Vec<Ready> {
    let opts = &ctx.shared.opts;
    let per_worker_rate = (opts.connect_rate as f64 / opts.cores as f64).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / per_worker_rate);
    let sem = Rc::new(glommio::sync::Semaphore::new(opts.connect_concurrency as u64));
    let out: Rc<RefCell<Vec<Ready>>> = Rc::new(RefCell::new(Vec::with_capacity(mine.len())));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(mine.len());
    for (i, &gidx) in mine.iter().enumerate() {
        let slot = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if slot > now + Duration::from_millis(1) {
            sleep(slot - now).await;
        }
        let Ok(permit) = sem.acquire_static_permit(1).await else {
            break;
        };
        let ctx = ctx.clone();
        let out = out.clone();
        tasks.push(
            glommio::spawn_local(async move {
                let r = connect_one(&ctx, gidx).await;
                drop(permit);
                match r {
                    Ok(r) => {
                        ctx.shared.live[ctx.idx].conns_up.fetch_add(1, Ordering::Relaxed);
                        out.borrow_mut().push(r);
                    }
                    Err(kind) => count_error(&ctx, kind),
                }
            })
            .detach(),
        );
    }
    for t in tasks {
        t.await;
    }
    let v = std::mem::take(&mut *out.borrow_mut());
    v
}

/// Dials and handshakes one connection (amring's sans-IO client
/// handshake), bounded by `--timeout`.
async fn connect_one(ctx: &ConnCtx, gidx: usize) -> Result<Ready, ErrorKind> {
    let opts = &ctx.shared.opts;
    let attempt = async {
        let mut transport = dial(&ctx.shared.target, gidx, opts.conns)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let cfg = ClientHandshakeConfig {
            version: if opts.recovery { Version::V3 } else { Version::V2 },
            codecs: vec![opts.codec.kind().id()],
            max_frame: u32::MAX,
            // loadgen's own client speaks the reference protocol: no amring extensions.
            flags: 0,
        };
        let mut hs = ClientHandshake::new(cfg, &CodecRegistry::default()).map_err(|_| ErrorKind::Handshake)?;
        let mut buf = BytesMut::with_capacity(64);
        hs.write_hello(&mut buf);
        transport.write_all(&buf).await.map_err(|_| ErrorKind::Connect)?;
        buf.clear();
        let done = loop {
            match hs.handle_reply(&mut buf) {
                Ok(Some(done)) => break done,
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::Handshake),
            }
            read_more(&mut transport, &mut buf).await?;
        };
        let recovery = if done.version == Version::V3 {
            // Initial attach (spec §7.2–7.5): new session, then the server's
            // negotiated values, checked like the reference client does.
            let mut req = BytesMut::with_capacity(64);
            AttachRequest::new_session().write(&mut req);
            transport.write_all(&req).await.map_err(|_| ErrorKind::Connect)?;
            let resp = loop {
                if let Some(r) = AttachResponse::decode(&mut buf) {
                    break r;
                }
                read_more(&mut transport, &mut buf).await?;
            };
            let max_replay = RecoveryOptions::default().max_replay_bytes;
            Some(resp.validate_initial(max_replay).map_err(|_| ErrorKind::Handshake)?)
        } else {
            None
        };
        let conn = Connection::new(
            ConnConfig {
                role: Role::Client,
                version: done.version,
                max_frame: done.max_frame,
                recovery,
            },
            Instant::now(),
        );
        Ok::<_, ErrorKind>(Ready {
            gidx,
            transport,
            conn,
            codec: done.codec,
            version: done.version,
            max_frame: done.max_frame,
            rest: buf,
        })
    };
    let timeout = async {
        sleep(opts.timeout).await;
        Err(ErrorKind::Connect)
    };
    future::or(attempt, timeout).await
}

/// Reads more handshake/attach bytes; EOF or an error is a handshake failure.
async fn read_more(t: &mut Transport, buf: &mut BytesMut) -> Result<(), ErrorKind> {
    let mut chunk = [0u8; 64];
    match t.read(&mut chunk).await {
        Ok(0) | Err(_) => Err(ErrorKind::Handshake),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}
