//! A service written in adaptivemsg-rust's spelling, ported by renaming the
//! dependency (`tests/ported`: `adaptivemsg = { package = "amring", .. }`,
//! `#[am::message]` types, `#[am::message_handler] impl MessageHandler for
//! ..` handlers returning `am::Result<Option<Box<dyn Message>>>`). The
//! runtime call is the only new code: `Server::builder().serve(..)` with no
//! `.handler(..)`: the handlers come from the link-time registry.
//!
//! Checked: the handlers answer amring clients (a reply of another type, an
//! `anyhow` error as `ErrorReply`, `Ok(None)` as `OkReply`, `?` on a foreign
//! error); the reference's own hello client (built unchanged from the Go
//! module) gets the reference server's answers from the port; a builder's
//! own `.handler(..)` replaces the registered one.

use std::time::Duration;

use amring::codec::OkReply;
use amring::{Client, Error, Server, ServerHandle, Shards, StreamContext};
use amring_tests::gopeer::{self, RunOutput};
use ported_fixture::api::bye::Goodbye;
use ported_fixture::api::hello::{HelloReply, HelloRequest};

fn serve(builder: amring::ServerBuilder) -> ServerHandle {
    builder
        .shards(Shards::Unpinned(1))
        .serve("tcp://127.0.0.1:0")
        .expect("serve on loopback")
}

fn addr(h: &ServerHandle) -> String {
    format!("tcp://{}", h.local_addr().tcp().expect("tcp"))
}

fn stop(h: ServerHandle) {
    h.shutdown(Duration::from_secs(1));
    h.join().expect("server ends cleanly");
}

fn ask(who: &str, question: &str) -> HelloRequest {
    HelloRequest {
        who: who.into(),
        question: question.into(),
    }
}

#[test]
fn registered_handlers_answer_without_any_handler_call() {
    let builder = Server::builder();
    // The registry filled the builder.
    let shown = format!("{builder:?}");
    assert!(
        shown.contains("am.hello.HelloRequest") && shown.contains("am.bye.Goodbye"),
        "{shown}"
    );
    let h = serve(builder);
    let a = addr(&h);
    amring_tests::on_glommio("ported-client", move || async move {
        let conn = Client::builder().connect(&a).await.expect("connect");
        let r: HelloReply = conn.send_recv(&ask("Ann", "Who are you?")).await.expect("reply");
        assert_eq!(r.answer, "I am hello server, Ann");
        assert_eq!(r.internal.trace_id, "trace-Ann");
        let r: HelloReply = conn.send_recv(&ask("Ann", "how are you")).await.expect("reply");
        assert_eq!(r.answer, "I am good, Ann");
        // `Err(anyhow!(..))` → ErrorReply{handler_error, text}.
        match conn.send_recv::<_, HelloReply>(&ask("Ann", "An ERROR")).await {
            Err(Error::Remote { code, message: text }) => {
                assert_eq!(code, "handler_error");
                assert_eq!(text, "bad request: an error");
            }
            other => panic!("want a handler error, got {other:?}"),
        }
        // `Ok(None)` → OkReply.
        let _: OkReply = conn.send_recv(&Goodbye { who: "Ann".into() }).await.expect("ok reply");
        // `?` on a std error (ParseIntError) → its text.
        match conn.send_recv::<_, OkReply>(&Goodbye { who: String::new() }).await {
            Err(Error::Remote { message: text, .. }) => assert_eq!(text, "invalid digit found in string"),
            other => panic!("want a handler error, got {other:?}"),
        }
        conn.close();
    });
    stop(h);
}

#[test]
fn a_builders_own_handler_replaces_the_registered_one() {
    let h = serve(
        Server::builder().handler(|_ctx: StreamContext, req: HelloRequest| async move {
            Ok::<_, Error>(HelloReply {
                answer: format!("closure, {}", req.who),
                internal: Default::default(),
            })
        }),
    );
    let a = addr(&h);
    amring_tests::on_glommio("ported-client", move || async move {
        let conn = Client::builder().connect(&a).await.expect("connect");
        let r: HelloReply = conn.send_recv(&ask("Bo", "who are you")).await.expect("reply");
        assert_eq!(r.answer, "closure, Bo");
        // The other registered handler is still there.
        let _: OkReply = conn.send_recv(&Goodbye { who: "Bo".into() }).await.expect("ok reply");
        conn.close();
    });
    stop(h);
}

/// The reference's hello client, unchanged, against the port.
#[test]
fn go_hello_client_against_the_ported_service() {
    let Some(bin) = gopeer::go_example("hello-client") else {
        return;
    };
    let h = serve(Server::builder());
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["-addr", &addr(&h)]);
    let out: RunOutput = gopeer::run_with_timeout(cmd, Duration::from_secs(40)).expect("run hello-client");
    gopeer::check_go_hello_log(&out);
    stop(h);
}
