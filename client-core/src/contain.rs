//! Automerge on bytes from elsewhere, with its panics contained.
//!
//! automerge 0.12 has panics reachable from crafted input: a change chunk whose operations name an
//! object no earlier operation made panics in `load` and `apply_changes` ("Missing from Index"),
//! found by the `changes` fuzz target (`fuzz/regressions/changes/`). A server that panicked there
//! would do so holding its store's lock, and every later request would fail. So every call that
//! hands automerge bytes from outside goes through [`contained`]: a panic becomes an error, the
//! document it was working on is thrown away by the caller, and nothing else is touched.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Inside [`contained`] on this thread: a panic is expected to be caught, so it is not printed.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Automerge panicked on the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("automerge failed on this input")]
pub struct Panicked;

/// Runs `f` (automerge working on bytes from elsewhere), turning a panic into [`Panicked`]. The
/// caller must drop whatever `f` was changing, since a panic may leave it half-changed.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // Panics caught here are refusals of bad input, not failures: they are not printed. Any
        // other panic goes to the hook that was there before (which may abort, as a fuzzer's does).
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INSIDE.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = INSIDE.with(|i| i.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|i| i.set(outer));
    result.map_err(|_| Panicked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_an_error_and_the_thread_goes_on() {
        assert_eq!(contained(|| 7), Ok(7));
        let r: Result<(), Panicked> = contained(|| panic!("bad input"));
        assert_eq!(r, Err(Panicked));
        assert!(!INSIDE.with(Cell::get), "the flag is cleared after a panic");
        assert_eq!(contained(|| contained(|| 1)), Ok(Ok(1)));
    }
}
