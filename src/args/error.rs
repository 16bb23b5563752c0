//! The errors a client sees, and how its bytes are shown in them: one
//! place, so that no parser can word a message that carries control
//! characters or a client's long input.

/// A client error: the message only; the Redis layer adds the `ERR` code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl ArgError {
    pub(super) fn new(msg: impl Into<String>) -> Self {
        ArgError(msg.into())
    }
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Redis' own wording, so clients and tools recognise it; module commands
/// are named as registered, as Redis' own arity check names them.
pub(crate) fn arity_error(command: &str) -> ArgError {
    ArgError(format!("wrong number of arguments for '{command}' command"))
}

/// Shows a client's bytes in a message only when they are short printable
/// ASCII, so an error reply can never carry control characters.
pub(crate) fn shown(arg: &[u8]) -> String {
    if arg.len() <= 32 && arg.iter().all(|b| b.is_ascii_graphic()) {
        format!(" '{}'", String::from_utf8_lossy(arg))
    } else {
        String::new()
    }
}

pub(super) fn shown_or_empty(arg: &[u8]) -> String {
    if arg.is_empty() {
        " an empty string".into()
    } else {
        let s = shown(arg);
        if s.is_empty() {
            " a value that is not a number".into()
        } else {
            s
        }
    }
}
