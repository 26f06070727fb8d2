//! Moves a factor matrix into memory that Linux backs with 2 MiB transparent huge pages.
//!
//! A half-sweep reads one k-float row of the fixed side per observation, at scattered
//! addresses: a 100k x 64 f32 matrix spans 6,250 pages of 4 KiB, more than the core's
//! second-level TLB holds, so a gathered row can also cost a page walk. On 2 MiB pages
//! the same matrix needs 13 TLB entries. The kernel grants huge pages on first touch
//! only to regions marked with `madvise(MADV_HUGEPAGE)` (the common "madvise" THP
//! mode), so the values are copied into a fresh, still untouched allocation that is
//! marked first. Reads and writes nothing else; the values are unchanged, and where the
//! advice is refused or unsupported the copy is simply an ordinary vector.

/// Huge page size the advice aims at; the advised range is the allocation's interior
/// aligned to it (the kernel maps whole 2 MiB pages only).
const HUGE_PAGE: usize = 2 << 20;

/// Below this many bytes a matrix fits the TLB anyway and is returned as it is.
const MIN_BYTES: usize = 4 * HUGE_PAGE;

/// The same values, in an allocation advised for huge pages (Linux; elsewhere, or for a
/// small matrix, `values` itself).
pub fn on_huge_pages(values: Vec<f32>) -> Vec<f32> {
    if std::mem::size_of_val(values.as_slice()) < MIN_BYTES {
        return values;
    }
    #[cfg(target_os = "linux")]
    {
        let mut fresh: Vec<f32> = Vec::with_capacity(values.len());
        let start = fresh.as_mut_ptr() as usize;
        let end = start + values.len() * std::mem::size_of::<f32>();
        let aligned_start = start.next_multiple_of(HUGE_PAGE);
        let aligned_end = end / HUGE_PAGE * HUGE_PAGE;
        if aligned_end > aligned_start {
            // SAFETY: the range lies inside `fresh`'s allocation; MADV_HUGEPAGE only
            // changes how the kernel backs the pages, never their contents. A failure
            // (THP disabled, old kernel) leaves ordinary pages, which is harmless.
            unsafe {
                libc::madvise(
                    aligned_start as *mut libc::c_void,
                    aligned_end - aligned_start,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
        fresh.extend_from_slice(&values);
        fresh
    }
    #[cfg(not(target_os = "linux"))]
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unchanged_whatever_the_size() {
        for n in [0, 10, MIN_BYTES / 4 + 12_345] {
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            assert_eq!(on_huge_pages(values.clone()), values);
        }
    }
}
