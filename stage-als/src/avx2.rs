//! AVX2 + FMA versions of the two kernels that dominate a conjugate-gradient pass, for
//! k a multiple of 4: the Gram product `G v` and the per-observation update
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

/// `out = g v` for a full row-major symmetric k x k matrix (k % 4 == 0): column j of
/// `g` equals row j, so `out = sum_j v_j g[j, ..]`, accumulated in blocks of up to 32
/// outputs (8 registers) per pass over `g`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `k % 4 == 0`, `g.len() >= k * k`,
/// `v.len() >= k`, `out.len() >= k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn symv(g: &[f64], k: usize, v: &[f64], out: &mut [f64]) {
    debug_assert!(k % 4 == 0 && g.len() >= k * k && v.len() >= k && out.len() >= k);
    let mut start = 0;
    while k - start >= 32 {
        symv_block::<8>(g, k, v, out, start);
        start += 32;
    }
    if k - start >= 16 {
        symv_block::<4>(g, k, v, out, start);
        start += 16;
    }
    if k - start >= 8 {
        symv_block::<2>(g, k, v, out, start);
        start += 8;
    }
    if k - start >= 4 {
        symv_block::<1>(g, k, v, out, start);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn symv_block<const W: usize>(
    g: &[f64],
    k: usize,
    v: &[f64],
    out: &mut [f64],
    start: usize,
) {
    let mut acc = [_mm256_setzero_pd(); W];
    let base = g.as_ptr().add(start);
    for j in 0..k {
        let vj = _mm256_set1_pd(*v.get_unchecked(j));
        let row = base.add(j * k);
        for (w, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_pd(vj, _mm256_loadu_pd(row.add(4 * w)), *a);
        }
    }
    for (w, a) in acc.iter().enumerate() {
        _mm256_storeu_pd(out.as_mut_ptr().add(start + 4 * w), *a);
    }
}

/// For four rows y_t (each k long, k % 4 == 0): the dot products `y_t · v`, then
/// `out += sum_t coefficient(dots)_t y_t`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `k % 4 == 0`; every slice at least k long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn dot_axpy4(
    y: [&[f64]; 4],
    k: usize,
    v: &[f64],
    out: &mut [f64],
    coefficient: impl Fn([f64; 4]) -> [f64; 4],
) {
    debug_assert!(k % 4 == 0 && v.len() >= k && out.len() >= k);
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
    let s = [
        _mm256_add_pd(even[0], odd[0]),
        _mm256_add_pd(even[1], odd[1]),
        _mm256_add_pd(even[2], odd[2]),
        _mm256_add_pd(even[3], odd[3]),
    ];
    // [s0a+s0b, s1a+s1b, s0c+s0d, s1c+s1d] and the same for rows 2, 3; then the two
    // 128-bit halves add up to [dot0, dot1, dot2, dot3].
    let h01 = _mm256_hadd_pd(s[0], s[1]);
    let h23 = _mm256_hadd_pd(s[2], s[3]);
    let low = _mm256_permute2f128_pd(h01, h23, 0x20);
    let high = _mm256_permute2f128_pd(h01, h23, 0x31);
    let mut dots = [0.0f64; 4];
    _mm256_storeu_pd(dots.as_mut_ptr(), _mm256_add_pd(low, high));

    let c = coefficient(dots);
    let c = [
        _mm256_set1_pd(c[0]),
        _mm256_set1_pd(c[1]),
        _mm256_set1_pd(c[2]),
        _mm256_set1_pd(c[3]),
    ];
    let op = out.as_mut_ptr();
    let mut i = 0;
    while i < k {
        let mut acc = _mm256_loadu_pd(op.add(i));
        acc = _mm256_fmadd_pd(c[0], _mm256_loadu_pd(p[0].add(i)), acc);
        acc = _mm256_fmadd_pd(c[1], _mm256_loadu_pd(p[1].add(i)), acc);
        acc = _mm256_fmadd_pd(c[2], _mm256_loadu_pd(p[2].add(i)), acc);
        acc = _mm256_fmadd_pd(c[3], _mm256_loadu_pd(p[3].add(i)), acc);
        _mm256_storeu_pd(op.add(i), acc);
        i += 4;
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
    fn symv_matches_a_plain_product_for_every_block_width() {
        if !crate::kernels::fma_available() {
            return;
        }
        for k in [4, 8, 12, 16, 28, 32, 44, 64, 68] {
            let mut g = vec![0.0; k * k];
            for r in 0..k {
                for c in 0..=r {
                    let value = ((r * 31 + c * 17) % 23) as f64 / 8.0 - 1.0;
                    g[r * k + c] = value;
                    g[c * k + r] = value;
                }
            }
            let v: Vec<f64> = (0..k).map(|i| (i % 7) as f64 - 3.0).collect();
            let mut out = vec![0.0; k];
            unsafe { symv(&g, k, &v, &mut out) };
            for r in 0..k {
                let want: f64 = (0..k).map(|c| g[r * k + c] * v[c]).sum();
                assert!((out[r] - want).abs() < 1e-12, "k {k} row {r}");
            }
        }
    }

    #[test]
    fn dot_axpy4_passes_the_four_dots_and_adds_the_scaled_rows() {
        if !crate::kernels::fma_available() {
            return;
        }
        for k in [4, 8, 12, 64] {
            let rows: Vec<Vec<f64>> = (0..4)
                .map(|t| {
                    (0..k)
                        .map(|i| ((i * 5 + t * 3) % 11) as f64 - 5.0)
                        .collect()
                })
                .collect();
            let v: Vec<f64> = (0..k).map(|i| i as f64 * 0.5 - 1.0).collect();
            let want_dots: Vec<f64> = rows
                .iter()
                .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
                .collect();
            let mut out = vec![1.0; k];
            let y = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
            unsafe {
                dot_axpy4(y, k, &v, &mut out, |dots| {
                    for t in 0..4 {
                        assert!((dots[t] - want_dots[t]).abs() < 1e-12);
                    }
                    [1.0, -2.0, 0.5, 3.0]
                })
            };
            for i in 0..k {
                let want =
                    1.0 + rows[0][i] - 2.0 * rows[1][i] + 0.5 * rows[2][i] + 3.0 * rows[3][i];
                assert!((out[i] - want).abs() < 1e-12);
            }
        }
    }
}
