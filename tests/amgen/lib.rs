// amgen-go's lib.rs layout, written by hand for both generated packages (each
// amgen-go run writes a lib.rs for its one package; scripts/amgen-regen.sh
// prints them). The generated api/*/message.rs files are kept verbatim, so
// rustfmt leaves them alone.
pub mod api {
    #[rustfmt::skip]
    #[path = "capmsg/message.rs"]
    pub mod capmsg;
    #[rustfmt::skip]
    #[path = "hello/message.rs"]
    pub mod hello;
}
