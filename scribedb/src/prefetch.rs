//! A hint to the processor to start loading memory that will be read soon.
//!
//! Walking a large buffer in an order unrelated to its layout (a write
//! transaction's writes in key order) waits on memory at every step; asking
//! for the lines a few steps ahead overlaps those waits.

/// Ask for the cache line holding `p`. Any address will do: a prefetch
/// never faults, and nothing is read or written.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it cannot fault, read into the
    // program or write, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
