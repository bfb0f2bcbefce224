//! Noticing that this process was forked from the one that opened a
//! handle.
//!
//! A child of `fork()` inherits its parent's handles: their mappings, and
//! descriptors that share the parent's open file descriptions, hence the
//! parent's open-file-description locks (its process slot, the writer
//! role). Used in the child, such a handle would act as the parent: free
//! the parent's reader slots, release its writer role, take itself for
//! the last handle and cut the log. So every handle notes the fork
//! generation it was opened in; a handler that the C library runs in
//! every child of `fork()` bumps the generation, and a handle of another
//! generation refuses to work (`Error::Forked`) and, when dropped, leaves
//! everything shared alone. Checking costs one relaxed load of a static:
//! no system call (the pid is not cached by the C library).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The fork generation of this process, installing the handler first.
pub(crate) fn generation() -> u64 {
    HOOK.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic, which is
        // async-signal-safe as a child of fork requires; no handler runs
        // before or after fork in the parent.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
    GENERATION.load(Ordering::Relaxed)
}

/// Whether this process is a child forked since generation `at`.
#[inline]
pub(crate) fn since(at: u64) -> bool {
    GENERATION.load(Ordering::Relaxed) != at
}
