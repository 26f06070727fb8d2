//! The f64 kernels of ALS's hot loops: dot products, axpy, the packed symmetric rank-4
//! update that builds the normal equations, and a symmetric matrix-vector product.
//!
//! Every kernel takes a `const FMA: bool`. Callers compile one copy of their row solver
//! with `FMA = true` inside a function marked `#[target_feature(enable = "avx2,fma")]`
//! and pick it at run time (`fma_available`), because the workspace builds for the
//! baseline x86-64 target, where LLVM may only use 2-wide SSE2 and no fused multiply-add.
//! The kernels are `#[inline(always)]` so that they are compiled with the caller's features.
//!
//! Packed layout ("column-major lower"): column `j` of a symmetric k x k matrix holds rows
//! `j..k` at offset `packed_offset(k, j)`, so every column is one contiguous slice and the
//! matrix copies into nalgebra's column-major storage column by column.

/// True when this CPU can run the AVX2 + FMA variants of the kernels.
pub fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Number of stored entries of a packed symmetric k x k matrix.
pub const fn packed_len(k: usize) -> usize {
    k * (k + 1) / 2
}

/// Offset of column `j` in the packed layout (column `j` holds rows `j..k`).
#[inline(always)]
pub const fn packed_offset(k: usize, j: usize) -> usize {
    // Columns 0..j hold k, k-1, ..., k-j+1 entries: j (2k - j + 1) / 2 in all.
    j * (2 * k + 1 - j) / 2
}

/// FLOPs of one packed rank-1 update of a k x k matrix (one multiply and one add per
/// stored entry): what the normal-equation build costs per observation.
pub const fn rank1_flops(k: usize) -> u64 {
    2 * packed_len(k) as u64
}

#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a · b` over the common length, with eight independent accumulators so that the loop
/// vectorises without reassociating a single running sum.
#[inline(always)]
pub fn dot<const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..8 {
            acc[lane] = madd::<FMA>(ca[lane], cb[lane], acc[lane]);
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        tail = madd::<FMA>(*x, *y, tail);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The dot products of four vectors with one vector `v`: eight accumulators per vector
/// give 32 independent multiply-add chains, so the loop is bound by throughput, not by
/// the latency of one chain.
#[inline(always)]
pub fn dot4<const FMA: bool>(a: [&[f64]; 4], v: &[f64]) -> [f64; 4] {
    let n = v.len();
    let [a0, a1, a2, a3] = a;
    let (a0, a1, a2, a3) = (&a0[..n], &a1[..n], &a2[..n], &a3[..n]);
    let mut acc = [[0.0f64; 8]; 4];
    let full = n - n % 8;
    for start in (0..full).step_by(8) {
        let vc = &v[start..start + 8];
        let rows = [
            &a0[start..start + 8],
            &a1[start..start + 8],
            &a2[start..start + 8],
            &a3[start..start + 8],
        ];
        for t in 0..4 {
            for lane in 0..8 {
                acc[t][lane] = madd::<FMA>(rows[t][lane], vc[lane], acc[t][lane]);
            }
        }
    }
    let mut out = [0.0; 4];
    for t in 0..4 {
        let a = &acc[t];
        let row = [a0, a1, a2, a3][t];
        let mut tail = 0.0;
        for i in full..n {
            tail = madd::<FMA>(row[i], v[i], tail);
        }
        out[t] = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])) + tail;
    }
    out
}

/// `y += sum_t alpha[t] * x_t` for four vectors in one pass over `y`.
#[inline(always)]
pub fn axpy4<const FMA: bool>(alpha: [f64; 4], x: [&[f64]; 4], y: &mut [f64]) {
    let n = y.len();
    let [x0, x1, x2, x3] = x;
    let (x0, x1, x2, x3) = (&x0[..n], &x1[..n], &x2[..n], &x3[..n]);
    for i in 0..n {
        let mut s = y[i];
        s = madd::<FMA>(alpha[0], x0[i], s);
        s = madd::<FMA>(alpha[1], x1[i], s);
        s = madd::<FMA>(alpha[2], x2[i], s);
        s = madd::<FMA>(alpha[3], x3[i], s);
        y[i] = s;
    }
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy<const FMA: bool>(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = madd::<FMA>(alpha, *xi, *yi);
    }
}

/// `a += sum_t w[t] * v_t v_t^T` for four vectors at once, on a packed matrix.
///
/// Four vectors per pass read and write each stored entry once instead of four times,
/// which is what bounds a rank-1 update (two loads and a store per multiply-add).
/// (Pairing columns j and j + 1 to share the loads of `v_t` measured no faster.)
#[inline(always)]
pub fn packed_rank4<const FMA: bool>(a: &mut [f64], k: usize, v: [&[f64]; 4], w: [f64; 4]) {
    let [v0, v1, v2, v3] = v;
    let (v0, v1, v2, v3) = (&v0[..k], &v1[..k], &v2[..k], &v3[..k]);
    let mut offset = 0;
    for j in 0..k {
        let len = k - j;
        let column = &mut a[offset..offset + len];
        let c0 = w[0] * v0[j];
        let c1 = w[1] * v1[j];
        let c2 = w[2] * v2[j];
        let c3 = w[3] * v3[j];
        let (r0, r1, r2, r3) = (&v0[j..], &v1[j..], &v2[j..], &v3[j..]);
        for i in 0..len {
            let mut s = column[i];
            s = madd::<FMA>(c0, r0[i], s);
            s = madd::<FMA>(c1, r1[i], s);
            s = madd::<FMA>(c2, r2[i], s);
            s = madd::<FMA>(c3, r3[i], s);
            column[i] = s;
        }
        offset += len;
    }
}

/// `a += w * v v^T` on a packed matrix (the leftover vectors of a rank-4 pass).
#[inline(always)]
pub fn packed_rank1<const FMA: bool>(a: &mut [f64], k: usize, v: &[f64], w: f64) {
    let v = &v[..k];
    let mut offset = 0;
    for j in 0..k {
        let len = k - j;
        let c = w * v[j];
        axpy::<FMA>(c, &v[j..], &mut a[offset..offset + len]);
        offset += len;
    }
}

/// Adds `value` to every diagonal entry of a packed matrix.
#[inline(always)]
pub fn packed_add_diagonal(a: &mut [f64], k: usize, value: f64) {
    let mut offset = 0;
    for j in 0..k {
        a[offset] += value;
        offset += k - j;
    }
}

/// Expands a packed matrix into a full row-major k x k matrix (both triangles).
pub fn packed_to_full(packed: &[f64], k: usize, full: &mut [f64]) {
    let mut offset = 0;
    for j in 0..k {
        for (i, &value) in packed[offset..offset + k - j].iter().enumerate() {
            full[j * k + j + i] = value;
            full[(j + i) * k + j] = value;
        }
        offset += k - j;
    }
}

/// The lower triangle of a symmetric k x k matrix (k % 4 == 0) as 4 x 4 blocks: block
/// row `i` holds blocks `(i, 0) ..= (i, i)`, each 16 entries row-major. Half the memory of
/// the full matrix, so that a 64 x 64 matrix (17 KiB) stays in a core's L1 cache while the
/// conjugate-gradient products read it (`avx2::symv_blocks`).
pub fn lower_blocks4(full: &[f64], k: usize) -> Vec<f64> {
    assert!(k % 4 == 0, "lower_blocks4 needs k % 4 == 0, got {k}");
    let n_blocks = k / 4;
    let mut blocks = Vec::with_capacity(8 * n_blocks * (n_blocks + 1));
    for block_row in 0..n_blocks {
        for block_col in 0..=block_row {
            for r in 0..4 {
                let row = &full[(4 * block_row + r) * k..];
                blocks.extend_from_slice(&row[4 * block_col..4 * block_col + 4]);
            }
        }
    }
    blocks
}

/// `out = m x` for a full row-major symmetric k x k matrix.
#[inline(always)]
pub fn symv_full<const FMA: bool>(m: &[f64], k: usize, x: &[f64], out: &mut [f64]) {
    let x = &x[..k];
    let mut rows = m[..k * k].chunks_exact(4 * k);
    let mut outs = out[..k].chunks_exact_mut(4);
    for (block, values) in (&mut rows).zip(&mut outs) {
        let four = [
            &block[..k],
            &block[k..2 * k],
            &block[2 * k..3 * k],
            &block[3 * k..],
        ];
        values.copy_from_slice(&dot4::<FMA>(four, x));
    }
    for (row, value) in rows.remainder().chunks_exact(k).zip(outs.into_remainder()) {
        *value = dot::<FMA>(row, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(packed: &[f64], k: usize) -> Vec<f64> {
        let mut full = vec![0.0; k * k];
        packed_to_full(packed, k, &mut full);
        full
    }

    #[test]
    fn packed_offsets_count_columns_of_shrinking_length() {
        let k = 5;
        let expected: Vec<usize> = (0..k)
            .scan(0, |acc, j| {
                let here = *acc;
                *acc += k - j;
                Some(here)
            })
            .collect();
        let offsets: Vec<usize> = (0..k).map(|j| packed_offset(k, j)).collect();
        assert_eq!(offsets, expected);
        assert_eq!(packed_len(k), 15);
    }

    #[test]
    fn rank4_update_equals_sum_of_outer_products() {
        let k = 7;
        let vs: Vec<Vec<f64>> = (0..4)
            .map(|t| (0..k).map(|i| (t * 7 + i) as f64 * 0.3 - 2.0).collect())
            .collect();
        let w = [0.5, -1.0, 2.0, 3.0];
        for fma in [false, true] {
            if fma && !fma_available() {
                continue;
            }
            let mut packed = vec![0.0; packed_len(k)];
            let refs = [&vs[0][..], &vs[1][..], &vs[2][..], &vs[3][..]];
            if fma {
                packed_rank4::<true>(&mut packed, k, refs, w);
            } else {
                packed_rank4::<false>(&mut packed, k, refs, w);
            }
            let full = unpack(&packed, k);
            for r in 0..k {
                for c in 0..k {
                    let expected: f64 = (0..4).map(|t| w[t] * vs[t][r] * vs[t][c]).sum();
                    assert!((full[r * k + c] - expected).abs() < 1e-12, "({r},{c})");
                }
            }
        }
    }

    #[test]
    fn rank1_update_and_diagonal_match_dense_arithmetic() {
        let k = 4;
        let v = [1.0, -2.0, 0.5, 3.0];
        let mut packed = vec![0.0; packed_len(k)];
        packed_rank1::<false>(&mut packed, k, &v, 2.0);
        packed_add_diagonal(&mut packed, k, 0.25);
        let full = unpack(&packed, k);
        for r in 0..k {
            for c in 0..k {
                let expected = 2.0 * v[r] * v[c] + if r == c { 0.25 } else { 0.0 };
                assert_eq!(full[r * k + c], expected);
            }
        }
    }

    #[test]
    fn dot4_and_axpy4_match_four_single_calls() {
        let n = 21;
        let xs: Vec<Vec<f64>> = (0..4)
            .map(|t| {
                (0..n)
                    .map(|i| ((i * 3 + t * 5) % 11) as f64 - 5.0)
                    .collect()
            })
            .collect();
        let v: Vec<f64> = (0..n).map(|i| i as f64 * 0.25).collect();
        let four = [&xs[0][..], &xs[1][..], &xs[2][..], &xs[3][..]];
        let dots = dot4::<false>(four, &v);
        for t in 0..4 {
            assert!((dots[t] - dot::<false>(&xs[t], &v)).abs() < 1e-12);
        }
        let mut fused = v.clone();
        let mut single = v.clone();
        axpy4::<false>([1.0, -2.0, 0.5, 3.0], four, &mut fused);
        for (t, alpha) in [1.0, -2.0, 0.5, 3.0].into_iter().enumerate() {
            axpy::<false>(alpha, &xs[t], &mut single);
        }
        for (a, b) in fused.iter().zip(&single) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn dot_and_symv_match_naive_sums_on_odd_lengths() {
        let a: Vec<f64> = (0..19).map(|i| i as f64 * 0.5 - 3.0).collect();
        let b: Vec<f64> = (0..19).map(|i| (i % 5) as f64 - 1.5).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot::<false>(&a, &b) - naive).abs() < 1e-12);

        let k = 3;
        let m = [2.0, 1.0, 0.0, 1.0, 3.0, -1.0, 0.0, -1.0, 4.0];
        let mut out = [0.0; 3];
        symv_full::<false>(&m, k, &[1.0, 2.0, 3.0], &mut out);
        assert_eq!(out, [4.0, 4.0, 10.0]);

        // k = 6 runs one four-row block and two leftover rows.
        let k = 6;
        let m: Vec<f64> = (0..k * k).map(|i| ((i / k) * (i % k)) as f64).collect();
        let x: Vec<f64> = (0..k).map(|i| i as f64 - 2.0).collect();
        let mut out = vec![0.0; k];
        symv_full::<false>(&m, k, &x, &mut out);
        for r in 0..k {
            let want: f64 = (0..k).map(|c| m[r * k + c] * x[c]).sum();
            assert_eq!(out[r], want);
        }
    }
}
