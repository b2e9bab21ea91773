//! amring's `tracing` events reach an installed subscriber: connection open
//! and close (with the reason), and a contained handler panic as one line.
//! (Its own test binary: it installs a process-wide subscriber.)

mod runtime_common;

use std::sync::{Arc, Mutex};

use amring::codec::OkReply;
use amring::{Client, StreamContext};
use runtime_common::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records every event as `LEVEL target: message k=v …`.
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!(" {value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let m = event.metadata();
        let mut line = Line(format!("{} {}:", m.level(), m.target()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn connection_lifecycle_and_contained_panics_are_logged() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(Recorder(lines.clone())).unwrap();
    let h = server()
        .handler(|_ctx: StreamContext, _n: Num| async move {
            if true {
                panic!("logged boom");
            }
            Ok::<_, String>(())
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let r = conn.send_recv::<_, OkReply>(&Num { n: 1 }).await;
        assert!(r.is_err());
        conn.close();
        conn.wait_closed().await;
    });
    stop(h);
    let lines = lines.lock().unwrap().clone();
    let has = |level: Level, text: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{level} amring:")) && l.contains(text))
    };
    assert!(has(Level::DEBUG, "connection open"), "{lines:#?}");
    assert!(has(Level::DEBUG, "connection closed"), "{lines:#?}");
    assert!(has(Level::WARN, "handler panicked: logged boom"), "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("WARN") && l.contains("logged boom"))
            .count(),
        1,
        "one line per contained panic: {lines:#?}"
    );
}
