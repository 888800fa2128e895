//! Third-party decoders that panic on damaged input instead of returning an error.
//!
//! The fuzz tests found two: arrow's IPC reader trusts offsets stored in the file, and polars'
//! CSV parser slices a lone `"` field out of bounds. A damaged file must still give one error
//! line naming it, so their calls run under [`catch_panic`].

use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Decoders running now. While any runs, the panic hook is silent: polars panics on its own
/// worker threads, so a thread-local flag would not cover it. The panic then reaches
/// `catch_unwind` through the pool's join and becomes an error.
static DECODING: AtomicUsize = AtomicUsize::new(0);

/// Run `decode`; a panic inside it comes back as `Err` with the panic's message.
pub fn catch_panic<T>(decode: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DECODING.load(Ordering::SeqCst) == 0 {
                previous(info);
            }
        }));
    });
    DECODING.fetch_add(1, Ordering::SeqCst);
    let result = std::panic::catch_unwind(AssertUnwindSafe(decode));
    DECODING.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        format!(
            "the decoder failed on damaged data ({})",
            message.replace('\n', " ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        let err = catch_panic(|| -> u8 { panic!("index 3 out of range") }).unwrap_err();
        assert!(err.contains("index 3 out of range"), "{err}");
        // Panics on other threads while decoding (as in polars' pool) are caught through join.
        let err =
            catch_panic(|| std::thread::spawn(|| panic!("worker")).join().unwrap()).unwrap_err();
        assert!(err.contains("decoder failed"), "{err}");
    }
}
