// A service in adaptivemsg-rust's layout and spelling: message types in
// api/<package>/message.rs and handlers as `#[am::message_handler] impl
// MessageHandler for ..` in api/hello/handler.rs, registered at link time.
// Only Cargo.toml changed in the port; the runtime call
// (`Server::builder().serve(..)`) is in tests/tests/ported.rs.
pub mod api {
    // The hello example's messages, as the generator wrote them for tests/amgen.
    #[rustfmt::skip]
    #[path = "../../amgen/api/hello/message.rs"]
    pub mod hello;

    #[path = "bye/message.rs"]
    pub mod bye;
}

#[path = "api/hello/handler.rs"]
mod hello_handler;
