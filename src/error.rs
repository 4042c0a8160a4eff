//! Errors as the user reads them: one line with the whole chain of causes, and the next step
//! (a hint) on a line of its own. Shared by the commands and the operations side (the lock
//! says whom it waits for), so it depends on nothing else in the crate.

use std::fmt;

/// The next step for the user, attached as the outermost context of an error and printed on a
/// line of its own.
#[derive(Debug)]
pub struct Hint(pub String);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The next step the error carries, if any.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    err.downcast_ref::<Hint>().map(ToString::to_string)
}

/// The error's chain of causes on one line, without the hint: for log lines, where the
/// process goes on and the hint's next step is not the reader's to take right now.
pub fn cause(err: &anyhow::Error) -> String {
    let skip = usize::from(err.downcast_ref::<Hint>().is_some());
    let chain: Vec<String> = err.chain().skip(skip).map(ToString::to_string).collect();
    chain.join(": ")
}
