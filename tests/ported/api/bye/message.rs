//! A notification type, written like adaptivemsg-rust's amgen-rs emits types
//! (no serde attributes, the module named after the Go package).
use adaptivemsg as am;

/// Handled and answered with `OkReply` (`Ok(None)`).
#[am::message]
pub struct Goodbye {
    /// Who leaves.
    pub who: String,
}
