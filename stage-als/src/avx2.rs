//! AVX2 + FMA versions of the two kernels that dominate a conjugate-gradient pass, for
//! k a multiple of 4: the Gram product `G v` (on the lower 4 x 4 blocks of G) and the
//! per-observation update
//! `out += sum_t coef_t y_t` with `coef_t` a function of `y_t · v`, four observations at
//! a time. Reads and writes only the slices given.
//!
//! The portable kernels in `kernels` leave the compiler to vectorise; for these two it
//! spilled the dot-product accumulators to the stack and reduced them lane by lane. Here
//! the accumulators stay in registers: 8 independent FMA chains cover the FMA latency,
//! and the four dot products are reduced together into one register. Callers check
//! `kernels::fma_available()` and `k % 4 == 0` first; results differ from the portable
//! kernels only in rounding (summation order), and do not depend on threads.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `out = g v` from the lower 4 x 4 blocks of a symmetric matrix (`kernels::lower_blocks4`).
///
/// Every off-diagonal block B = g[I, J] is loaded once and used twice, for
/// `out_I += B v_J` and `out_J += B^T v_I`, so this does the same multiply-adds as `symv`
/// over half the bytes, all of them in L1: `symv` streams the full matrix (32 KiB at
/// k = 64) from L2 and waits on loads, this one on the FMA units.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `k % 4 == 0`, `blocks.len() >= k (k + 4) / 2`,
/// `v.len() >= k`, `out.len() >= k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn symv_blocks(blocks: &[f64], k: usize, v: &[f64], out: &mut [f64]) {
    let n_blocks = k / 4;
    debug_assert!(k % 4 == 0 && blocks.len() >= 8 * n_blocks * (n_blocks + 1));
    debug_assert!(v.len() >= k && out.len() >= k);
    let vp = v.as_ptr();
    let op = out.as_mut_ptr();
    let mut block = blocks.as_ptr();
    for i in 0..n_blocks {
        _mm256_storeu_pd(op.add(4 * i), _mm256_setzero_pd());
    }

    for i in 0..n_blocks {
        // Lane c of row_sums[r] gathers g[4i + r, 4j + c] v[4j + c] over the block row.
        let mut row_sums = [_mm256_setzero_pd(); 4];
        let v_i = [
            _mm256_broadcast_sd(&*vp.add(4 * i)),
            _mm256_broadcast_sd(&*vp.add(4 * i + 1)),
            _mm256_broadcast_sd(&*vp.add(4 * i + 2)),
            _mm256_broadcast_sd(&*vp.add(4 * i + 3)),
        ];
        for j in 0..i {
            let rows = [
                _mm256_loadu_pd(block),
                _mm256_loadu_pd(block.add(4)),
                _mm256_loadu_pd(block.add(8)),
                _mm256_loadu_pd(block.add(12)),
            ];
            let v_j = _mm256_loadu_pd(vp.add(4 * j));
            let mut out_j = _mm256_loadu_pd(op.add(4 * j));
            for r in 0..4 {
                row_sums[r] = _mm256_fmadd_pd(rows[r], v_j, row_sums[r]);
                out_j = _mm256_fmadd_pd(v_i[r], rows[r], out_j);
            }
            _mm256_storeu_pd(op.add(4 * j), out_j);
            block = block.add(16);
        }
        // The diagonal block is stored whole, so only its row sums are needed.
        let v_ii = _mm256_loadu_pd(vp.add(4 * i));
        for (r, sum) in row_sums.iter_mut().enumerate() {
            *sum = _mm256_fmadd_pd(_mm256_loadu_pd(block.add(4 * r)), v_ii, *sum);
        }
        block = block.add(16);

        let out_i = _mm256_add_pd(_mm256_loadu_pd(op.add(4 * i)), horizontal_sums(row_sums));
        _mm256_storeu_pd(op.add(4 * i), out_i);
    }
}

/// `[sum(s[0]), sum(s[1]), sum(s[2]), sum(s[3])]`, each the sum of one register's lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn horizontal_sums(s: [__m256d; 4]) -> __m256d {
    // [s0a+s0b, s1a+s1b, s0c+s0d, s1c+s1d] and the same for rows 2, 3; then the two
    // 128-bit halves add up to the four sums.
    let h01 = _mm256_hadd_pd(s[0], s[1]);
    let h23 = _mm256_hadd_pd(s[2], s[3]);
    let low = _mm256_permute2f128_pd(h01, h23, 0x20);
    let high = _mm256_permute2f128_pd(h01, h23, 0x31);
    _mm256_add_pd(low, high)
}

/// The dot products `y_t · v` of four rows (each k long, k % 4 == 0).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `k % 4 == 0`; every slice at least k long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn dot4(y: [&[f64]; 4], k: usize, v: &[f64]) -> [f64; 4] {
    debug_assert!(k % 4 == 0 && v.len() >= k && y.iter().all(|row| row.len() >= k));
    let p = [y[0].as_ptr(), y[1].as_ptr(), y[2].as_ptr(), y[3].as_ptr()];
    let vp = v.as_ptr();

    // Two accumulators per row (even and odd chunks of 4): 8 independent chains.
    let mut even = [_mm256_setzero_pd(); 4];
    let mut odd = [_mm256_setzero_pd(); 4];
    let mut i = 0;
    while i + 8 <= k {
        let v0 = _mm256_loadu_pd(vp.add(i));
        let v1 = _mm256_loadu_pd(vp.add(i + 4));
        for t in 0..4 {
            even[t] = _mm256_fmadd_pd(_mm256_loadu_pd(p[t].add(i)), v0, even[t]);
            odd[t] = _mm256_fmadd_pd(_mm256_loadu_pd(p[t].add(i + 4)), v1, odd[t]);
        }
        i += 8;
    }
    if i < k {
        let v0 = _mm256_loadu_pd(vp.add(i));
        for t in 0..4 {
            even[t] = _mm256_fmadd_pd(_mm256_loadu_pd(p[t].add(i)), v0, even[t]);
        }
    }
    let sums = [
        _mm256_add_pd(even[0], odd[0]),
        _mm256_add_pd(even[1], odd[1]),
        _mm256_add_pd(even[2], odd[2]),
        _mm256_add_pd(even[3], odd[3]),
    ];
    let mut dots = [0.0f64; 4];
    _mm256_storeu_pd(dots.as_mut_ptr(), horizontal_sums(sums));
    dots
}

/// `out += sum_i weights[i] rows[i]` for consecutive rows of k (k % 4 == 0).
///
/// `out` is processed in blocks of up to 32 entries (8 registers) that stay in registers
/// over all rows: each row costs one load and one FMA per 4 entries, and no store.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `k % 4 == 0`, `rows.len() >= weights.len() * k`,
/// `out.len() >= k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn add_weighted_rows(rows: &[f64], k: usize, weights: &[f64], out: &mut [f64]) {
    debug_assert!(k % 4 == 0 && rows.len() >= weights.len() * k && out.len() >= k);
    let mut start = 0;
    while k - start >= 32 {
        add_weighted_block::<8>(rows, k, weights, out, start);
        start += 32;
    }
    for width in [4, 2, 1] {
        if k - start >= 4 * width {
            match width {
                4 => add_weighted_block::<4>(rows, k, weights, out, start),
                2 => add_weighted_block::<2>(rows, k, weights, out, start),
                _ => add_weighted_block::<1>(rows, k, weights, out, start),
            }
            start += 4 * width;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn add_weighted_block<const W: usize>(
    rows: &[f64],
    k: usize,
    weights: &[f64],
    out: &mut [f64],
    start: usize,
) {
    let op = out.as_mut_ptr().add(start);
    let mut acc = [_mm256_setzero_pd(); W];
    for (w, a) in acc.iter_mut().enumerate() {
        *a = _mm256_loadu_pd(op.add(4 * w));
    }
    let mut row = rows.as_ptr().add(start);
    for weight in weights {
        let weight = _mm256_broadcast_sd(weight);
        for (w, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_pd(weight, _mm256_loadu_pd(row.add(4 * w)), *a);
        }
        row = row.add(k);
    }
    for (w, a) in acc.iter().enumerate() {
        _mm256_storeu_pd(op.add(4 * w), *a);
    }
}

/// `a · b` of two f32 vectors (k % 4 == 0), each product and sum in f64.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `k % 4 == 0`; both slices at least k long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_widened(a: &[f32], b: &[f32], k: usize) -> f64 {
    debug_assert!(k % 4 == 0 && a.len() >= k && b.len() >= k);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut even = _mm256_setzero_pd();
    let mut odd = _mm256_setzero_pd();
    let mut i = 0;
    while i + 8 <= k {
        let a0 = _mm256_cvtps_pd(_mm_loadu_ps(pa.add(i)));
        let b0 = _mm256_cvtps_pd(_mm_loadu_ps(pb.add(i)));
        let a1 = _mm256_cvtps_pd(_mm_loadu_ps(pa.add(i + 4)));
        let b1 = _mm256_cvtps_pd(_mm_loadu_ps(pb.add(i + 4)));
        even = _mm256_fmadd_pd(a0, b0, even);
        odd = _mm256_fmadd_pd(a1, b1, odd);
        i += 8;
    }
    if i < k {
        let a0 = _mm256_cvtps_pd(_mm_loadu_ps(pa.add(i)));
        let b0 = _mm256_cvtps_pd(_mm_loadu_ps(pb.add(i)));
        even = _mm256_fmadd_pd(a0, b0, even);
    }
    let sum = _mm256_add_pd(even, odd);
    let pair = _mm_add_pd(_mm256_castpd256_pd128(sum), _mm256_extractf128_pd(sum, 1));
    _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn widened_dot_matches_a_plain_f64_sum() {
        if !crate::kernels::fma_available() {
            return;
        }
        for k in [4, 12, 64] {
            let a: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((unsafe { dot_widened(&a, &b, k) } - want).abs() < 1e-12);
        }
    }

    #[test]
    fn blocked_symv_matches_a_plain_product() {
        if !crate::kernels::fma_available() {
            return;
        }
        for k in [4, 8, 12, 16, 64, 68] {
            let mut g = vec![0.0; k * k];
            for r in 0..k {
                for c in 0..=r {
                    let value = ((r * 31 + c * 17) % 23) as f64 / 8.0 - 1.0;
                    g[r * k + c] = value;
                    g[c * k + r] = value;
                }
            }
            let blocks = crate::kernels::lower_blocks4(&g, k);
            let v: Vec<f64> = (0..k).map(|i| (i % 7) as f64 - 3.0).collect();
            let mut out = vec![f64::NAN; k];
            unsafe { symv_blocks(&blocks, k, &v, &mut out) };
            for r in 0..k {
                let want: f64 = (0..k).map(|c| g[r * k + c] * v[c]).sum();
                assert!((out[r] - want).abs() < 1e-12, "k {k} row {r}");
            }
        }
    }

    #[test]
    fn dot4_and_weighted_rows_match_plain_sums() {
        if !crate::kernels::fma_available() {
            return;
        }
        for k in [4, 8, 12, 16, 28, 32, 44, 64, 68] {
            let n = 7;
            let rows: Vec<f64> = (0..n * k)
                .map(|i| ((i * 5 + i / k * 3) % 11) as f64 - 5.0)
                .collect();
            let v: Vec<f64> = (0..k).map(|i| i as f64 * 0.5 - 1.0).collect();
            let row = |t: usize| &rows[t * k..(t + 1) * k];
            let dots = unsafe { dot4([row(0), row(1), row(2), row(3)], k, &v) };
            for (t, dot) in dots.iter().enumerate() {
                let want: f64 = row(t).iter().zip(&v).map(|(a, b)| a * b).sum();
                assert!((dot - want).abs() < 1e-12, "k {k} row {t}");
            }

            let weights: Vec<f64> = (0..n).map(|t| t as f64 * 0.75 - 2.0).collect();
            let mut out = vec![1.0; k];
            unsafe { add_weighted_rows(&rows, k, &weights, &mut out) };
            for (i, got) in out.iter().enumerate() {
                let want = 1.0 + (0..n).map(|t| weights[t] * row(t)[i]).sum::<f64>();
                assert!((got - want).abs() < 1e-12, "k {k} entry {i}");
            }
        }
    }
}
