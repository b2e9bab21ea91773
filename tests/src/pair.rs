//! A deterministic in-memory pair of sans-IO [`Connection`]s (quinn's
//! `tests/util.rs` style): a client and a server joined by a pipe the test
//! controls, driven on a simulated clock.
//!
//! The pipe can **cut** the transport after a given number of bytes in either
//! direction (bytes past the cut are lost and the transport is dead both
//! ways), **stall** a direction (bytes are held, not delivered), and
//! **resume** (both sides detach, exchange `last_recv_seq` as the attach
//! exchange would, and attach). Nothing sleeps: time only moves with
//! [`Pair::advance`].

use std::time::{Duration, Instant};

use amring_proto::{ConnConfig, ConnError, Connection, Delivered, FrameDecoder, RecoveryParams, Role, Version};
use bytes::BytesMut;

/// Upper bound of steps in one [`Pair::drive`] (a livelock fails the test).
const MAX_STEPS: usize = 100_000;

/// One end of the pair.
#[derive(Debug)]
pub struct Side {
    /// The connection under test.
    pub conn: Connection,
    /// Its read buffer (what the runtime would own).
    pub rbuf: BytesMut,
    /// Every data frame delivered, in order.
    pub delivered: Vec<Delivered>,
    /// Every error returned by `handle_input` / `handle_timeout`.
    pub errors: Vec<ConnError>,
}

impl Side {
    fn new(conn: Connection) -> Side {
        Side {
            conn,
            rbuf: BytesMut::new(),
            delivered: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn read(&mut self, now: Instant) {
        loop {
            match self.conn.handle_input(now, &mut self.rbuf) {
                Ok(Some(d)) => self.delivered.push(d),
                Ok(None) => return,
                Err(e) => {
                    self.errors.push(e);
                    return;
                }
            }
        }
    }
}

/// One direction of the pipe.
#[derive(Debug, Default)]
pub struct Pipe {
    /// Bytes still allowed through before the cut (`None`: no cut armed).
    pub cut_after: Option<usize>,
    /// Held while stalled.
    pub held: BytesMut,
    /// Deliver nothing while true.
    pub stalled: bool,
    /// Bytes that went onto the wire in this direction (over all transports).
    pub total: usize,
    /// Copy of every byte sent (when capture is on).
    pub capture: Option<Vec<u8>>,
}

/// Client, server, pipe and clock.
#[derive(Debug)]
pub struct Pair {
    /// Simulated now.
    pub now: Instant,
    /// The client end.
    pub client: Side,
    /// The server end.
    pub server: Side,
    /// Client → server.
    pub c2s: Pipe,
    /// Server → client.
    pub s2c: Pipe,
    /// The current transport is dead (a cut happened).
    pub broken: bool,
    /// Resumes done.
    pub resumes: usize,
    /// Replay bytes one transmit may take
    /// ([`Connection::poll_transmit_within`]); unbounded by default.
    pub tx_budget: usize,
    /// Transmits that carried replayed frames.
    pub replay_transmits: usize,
}

/// A v3 config with `params` and no frame limit.
pub fn v3_config(role: Role, params: RecoveryParams) -> ConnConfig {
    ConnConfig {
        role,
        version: Version::V3,
        max_frame: u32::MAX,
        recovery: Some(params),
    }
}

impl Pair {
    /// A v3 pair with the given parameters, attached at a fixed epoch.
    pub fn v3(params: RecoveryParams) -> Pair {
        let now = Instant::now();
        Pair::with(
            Connection::new(v3_config(Role::Client, params), now),
            Connection::new(v3_config(Role::Server, params), now),
            now,
        )
    }

    /// A pair of already-built connections.
    pub fn with(client: Connection, server: Connection, now: Instant) -> Pair {
        Pair {
            now,
            client: Side::new(client),
            server: Side::new(server),
            c2s: Pipe::default(),
            s2c: Pipe::default(),
            broken: false,
            resumes: 0,
            tx_budget: usize::MAX,
            replay_transmits: 0,
        }
    }

    /// One transmit/receive exchange both ways; returns the bytes moved.
    pub fn step(&mut self) -> usize {
        let now = self.now;
        let budget = self.tx_budget;
        let a = Self::transfer(
            now,
            budget,
            &mut self.client,
            &mut self.server,
            &mut self.c2s,
            &mut self.broken,
        );
        self.replay_transmits += usize::from(self.client.conn.last_transmit().replay);
        let b = Self::transfer(
            now,
            budget,
            &mut self.server,
            &mut self.client,
            &mut self.s2c,
            &mut self.broken,
        );
        self.replay_transmits += usize::from(self.server.conn.last_transmit().replay);
        a + b
    }

    fn transfer(
        now: Instant,
        budget: usize,
        src: &mut Side,
        dst: &mut Side,
        pipe: &mut Pipe,
        broken: &mut bool,
    ) -> usize {
        let mut out = BytesMut::new();
        src.conn.poll_transmit_within(now, &mut out, budget);
        if *broken {
            return 0; // writes into a dead transport vanish
        }
        if let Some(rem) = pipe.cut_after.as_mut() {
            if out.len() >= *rem && !out.is_empty() {
                out.truncate(*rem);
                pipe.cut_after = None;
                *broken = true;
            } else {
                *rem -= out.len();
            }
        }
        let n = out.len();
        pipe.total += n;
        if let Some(c) = pipe.capture.as_mut() {
            c.extend_from_slice(&out);
        }
        pipe.held.extend_from_slice(&out);
        if !pipe.stalled && !pipe.held.is_empty() {
            dst.rbuf.extend_from_slice(&pipe.held.split());
            dst.read(now);
        }
        n
    }

    /// Steps until nothing moves (bounded).
    pub fn drive(&mut self) {
        for _ in 0..MAX_STEPS {
            if self.step() == 0 {
                return;
            }
        }
        panic!("pair did not settle within {MAX_STEPS} steps");
    }

    /// Moves the clock and runs both sides' timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for side in [&mut self.client, &mut self.server] {
            if let Err(e) = side.conn.handle_timeout(now) {
                side.errors.push(e);
            }
        }
    }

    /// Detaches both sides, exchanges `last_recv_seq` as the attach request
    /// and response would, and attaches both to a fresh transport.
    pub fn resume(&mut self) {
        let now = self.now;
        self.client.conn.detach(now);
        self.server.conn.detach(now);
        for side in [&mut self.client, &mut self.server] {
            side.rbuf.clear();
        }
        self.c2s.held.clear();
        self.s2c.held.clear();
        self.c2s.cut_after = None;
        self.s2c.cut_after = None;
        let c = self.client.conn.last_recv_seq();
        let s = self.server.conn.last_recv_seq();
        self.server.conn.attach(now, c).expect("server attach");
        self.client.conn.attach(now, s).expect("client attach");
        self.broken = false;
        self.resumes += 1;
    }
}

/// Frame boundaries (offsets after each whole frame) of a captured byte stream.
pub fn frame_boundaries(version: Version, bytes: &[u8]) -> Vec<usize> {
    let mut dec = FrameDecoder::new(version, u32::MAX);
    let mut buf = BytesMut::from(bytes);
    let mut offs = vec![0];
    let mut at = 0;
    while let Ok(Some(f)) = dec.decode(&mut buf) {
        at += f.header.frame_len();
        offs.push(at);
    }
    offs
}
