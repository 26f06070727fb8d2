//! One half-sweep of alternating least squares: every row of one side (users or videos)
//! solves its k x k normal equations against the other side's fixed factors.
//!
//! For row u with observed columns i, cells (g_i, h_i) (see `matrix::Cell`) and the
//! optional Gram matrix G of the fixed side (implicit mode, Hu/Koren/Volinsky eq. 4):
//!
//!   (G + sum_i g_i y_i y_i^T + lambda_u I) x_u = sum_i h_i y_i
//!
//! with lambda_u = lambda * n_u (count scaling) or lambda. The system is built in f64 on a
//! packed symmetric matrix and solved by nalgebra's Cholesky, or by a few warm-started
//! conjugate-gradient steps that never form the matrix. Rows run in parallel; each writes
//! only its own factor, so the result does not depend on the thread count.

use nalgebra::{Cholesky, DMatrix, DVector};
use rayon::prelude::*;

use crate::kernels::{self, packed_len};
use crate::matrix::{Cell, Csr};
use crate::params::{LambdaScaling, Solver};

/// Rows per partial sum of the Gram matrix: fixed, so the sum does not depend on threads.
const GRAM_CHUNK_ROWS: usize = 2048;

/// A Cholesky pivot whose square falls below this share of the matrix's diagonal entry
/// means the column is (numerically) a combination of the others: condition numbers
/// beyond ~1e12 are treated as singular instead of returning a meaningless huge factor.
const SINGULAR_PIVOT_RATIO: f64 = 1e-12;

/// Conjugate gradient stops once the squared residual norm falls below this.
const CG_RESIDUAL_FLOOR: f64 = 1e-20;

/// `Y^T Y` of the fixed side, packed (for the Cholesky build) and full (for CG products).
#[derive(Debug, Clone)]
pub struct Gram {
    pub packed: Vec<f64>,
    pub full: Vec<f64>,
}

/// Gram matrix of an n x k row-major factor matrix, summed in f64 over fixed row chunks.
pub fn gram(fixed: &[f32], k: usize) -> Gram {
    let fma = kernels::fma_available();
    let partials: Vec<Vec<f64>> = fixed
        .par_chunks(GRAM_CHUNK_ROWS * k)
        .map(|rows| {
            let mut packed = vec![0.0; packed_len(k)];
            if fma {
                // SAFETY: the CPU supports AVX2 and FMA (checked by `fma_available`).
                unsafe { gram_chunk_fma(rows, k, &mut packed) }
            } else {
                gram_chunk::<false>(rows, k, &mut packed)
            }
            packed
        })
        .collect();
    let mut packed = vec![0.0; packed_len(k)];
    for partial in &partials {
        for (total, value) in packed.iter_mut().zip(partial) {
            *total += value;
        }
    }
    let mut full = vec![0.0; k * k];
    kernels::packed_to_full(&packed, k, &mut full);
    Gram { packed, full }
}

#[inline(always)]
fn gram_chunk<const FMA: bool>(rows: &[f32], k: usize, packed: &mut [f64]) {
    let mut block = vec![0.0f64; 4 * k];
    let mut groups = rows.chunks_exact(4 * k);
    for group in &mut groups {
        widen(group, &mut block);
        let v = [
            &block[..k],
            &block[k..2 * k],
            &block[2 * k..3 * k],
            &block[3 * k..],
        ];
        kernels::packed_rank4::<FMA>(packed, k, v, [1.0; 4]);
    }
    for row in groups.remainder().chunks_exact(k) {
        widen(row, &mut block[..k]);
        kernels::packed_rank1::<FMA>(packed, k, &block[..k], 1.0);
    }
}

#[inline(always)]
fn widen(source: &[f32], target: &mut [f64]) {
    for (t, &s) in target.iter_mut().zip(source) {
        *t = s as f64;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_chunk_fma(rows: &[f32], k: usize, packed: &mut [f64]) {
    gram_chunk::<true>(rows, k, packed)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn gram_chunk_fma(rows: &[f32], k: usize, packed: &mut [f64]) {
    gram_chunk::<false>(rows, k, packed)
}

/// What one half-sweep solves.
pub struct Sweep<'a, C> {
    /// Rows = the side being solved, columns = the fixed side.
    pub matrix: &'a Csr<C>,
    /// Fixed side's factors, row-major n_cols x k. They stay f32 (half the memory
    /// traffic of f64, and a 100k x 64 matrix fits in a 32 MiB cache); four rows at a time
    /// are widened to f64 into a contiguous block before any arithmetic.
    pub fixed: &'a [f32],
    /// Gram matrix of the fixed side (implicit mode), or none (explicit mode).
    pub gram: Option<&'a Gram>,
    pub k: usize,
    pub regularization: f64,
    pub lambda_scaling: LambdaScaling,
    pub solver: Solver,
    pub cg_steps: usize,
}

/// A row whose normal equations have no unique solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingularRow {
    pub row: usize,
    /// Observed cells of the row.
    pub n_obs: usize,
}

/// Per-task buffers, allocated once per rayon job and reused for every row it solves.
struct Scratch {
    packed: Vec<f64>,
    diagonal: Vec<f64>,
    matrix: Option<DMatrix<f64>>,
    rhs: DVector<f64>,
    block: Vec<f64>,
    x: Vec<f64>,
    residual: Vec<f64>,
    direction: Vec<f64>,
    product: Vec<f64>,
}

impl Scratch {
    fn new(k: usize) -> Scratch {
        Scratch {
            packed: vec![0.0; packed_len(k)],
            diagonal: vec![0.0; k],
            matrix: Some(DMatrix::zeros(k, k)),
            rhs: DVector::zeros(k),
            block: vec![0.0; 4 * k],
            x: vec![0.0; k],
            residual: vec![0.0; k],
            direction: vec![0.0; k],
            product: vec![0.0; k],
        }
    }
}

impl<C: Cell> Sweep<'_, C> {
    /// Solves every row with `present[row]` into `out` (row-major n_rows x k); other rows
    /// are set to zero. On singular systems, reports the lowest such row.
    pub fn run(&self, present: &[bool], out: &mut [f32]) -> Result<(), SingularRow> {
        let k = self.k;
        let fma = kernels::fma_available();
        let first_failure = out
            .par_chunks_mut(k)
            .enumerate()
            .map_init(
                || Scratch::new(k),
                |scratch, (row, factor)| {
                    if !present[row] {
                        factor.fill(0.0);
                        return None;
                    }
                    let solved = if fma {
                        // SAFETY: the CPU supports AVX2 and FMA (checked by `fma_available`).
                        unsafe { solve_row_fma(self, row, factor, scratch) }
                    } else {
                        solve_row::<C, false>(self, row, factor, scratch)
                    };
                    solved.err()
                },
            )
            .flatten()
            .min_by_key(|failure| failure.row);
        match first_failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Builds the normal equations of every present row without solving them; returns the
    /// FLOPs of the Gram part (a benchmark of the hot loop, used by `als-bench`).
    pub fn build_only(&self, present: &[bool]) -> u64 {
        let fma = kernels::fma_available();
        let checksum: f64 = (0..self.matrix.n_rows)
            .into_par_iter()
            .map_init(
                || Scratch::new(self.k),
                |scratch, row| {
                    if !present[row] {
                        return 0.0;
                    }
                    if fma {
                        // SAFETY: the CPU supports AVX2 and FMA (checked by `fma_available`).
                        unsafe { build_row_fma(self, row, scratch) };
                    } else {
                        build_row::<C, false>(self, row, scratch);
                    }
                    scratch.packed[0] + scratch.rhs[0]
                },
            )
            .sum();
        // Keeps the optimiser from dropping the builds whose results are otherwise unused.
        std::hint::black_box(checksum);
        let observations: u64 = (0..self.matrix.n_rows)
            .filter(|&row| present[row])
            .map(|row| (self.matrix.indptr[row + 1] - self.matrix.indptr[row]) as u64)
            .sum();
        observations * kernels::rank1_flops(self.k)
    }

    fn lambda_for(&self, n_obs: usize) -> f64 {
        match self.lambda_scaling {
            LambdaScaling::Count => self.regularization * n_obs as f64,
            LambdaScaling::None => self.regularization,
        }
    }

    #[inline(always)]
    fn fixed_row(&self, col: u32) -> &[f32] {
        let start = col as usize * self.k;
        &self.fixed[start..start + self.k]
    }

    /// Widens the fixed rows of four columns into `block` (4 x k, f64).
    #[inline(always)]
    fn gather4<'b>(&self, cols: &[u32], block: &'b mut [f64]) -> [&'b [f64]; 4] {
        let k = self.k;
        for (t, &c) in cols[..4].iter().enumerate() {
            widen(self.fixed_row(c), &mut block[t * k..(t + 1) * k]);
        }
        let (first, rest) = block.split_at(k);
        let (second, rest) = rest.split_at(k);
        let (third, fourth) = rest.split_at(k);
        [first, second, third, &fourth[..k]]
    }

    /// Widens one fixed row into the start of `block`.
    #[inline(always)]
    fn gather1<'b>(&self, col: u32, block: &'b mut [f64]) -> &'b [f64] {
        widen(self.fixed_row(col), &mut block[..self.k]);
        &block[..self.k]
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn solve_row_fma<C: Cell>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<(), SingularRow> {
    solve_row::<C, true>(sweep, row, factor, scratch)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn solve_row_fma<C: Cell>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<(), SingularRow> {
    solve_row::<C, false>(sweep, row, factor, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn build_row_fma<C: Cell>(sweep: &Sweep<C>, row: usize, scratch: &mut Scratch) {
    build_row::<C, true>(sweep, row, scratch)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn build_row_fma<C: Cell>(sweep: &Sweep<C>, row: usize, scratch: &mut Scratch) {
    build_row::<C, false>(sweep, row, scratch)
}

#[inline(always)]
fn solve_row<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<(), SingularRow> {
    match sweep.solver {
        Solver::Cholesky => cholesky_row::<C, FMA>(sweep, row, factor, scratch),
        Solver::Cg => {
            cg_row::<C, FMA>(sweep, row, factor, scratch);
            Ok(())
        }
    }
}

/// Fills `scratch.packed` with A = G + sum g_i y_i y_i^T + lambda_u I and `scratch.rhs`
/// with b = sum h_i y_i.
#[inline(always)]
fn build_row<C: Cell, const FMA: bool>(sweep: &Sweep<C>, row: usize, scratch: &mut Scratch) {
    let k = sweep.k;
    let (cols, cells) = sweep.matrix.row(row);
    let Scratch {
        packed: a,
        rhs,
        block,
        ..
    } = scratch;
    match sweep.gram {
        Some(gram) => a.copy_from_slice(&gram.packed),
        None => a.fill(0.0),
    }
    let b = rhs.as_mut_slice();
    b.fill(0.0);

    let mut col_groups = cols.chunks_exact(4);
    let mut cell_groups = cells.chunks_exact(4);
    for (c, w) in (&mut col_groups).zip(&mut cell_groups) {
        let y = sweep.gather4(c, block);
        let g = [
            w[0].gram_weight(),
            w[1].gram_weight(),
            w[2].gram_weight(),
            w[3].gram_weight(),
        ];
        let h = [
            w[0].rhs_weight(),
            w[1].rhs_weight(),
            w[2].rhs_weight(),
            w[3].rhs_weight(),
        ];
        kernels::packed_rank4::<FMA>(a, k, y, g);
        kernels::axpy4::<FMA>(h, y, b);
    }
    for (&c, &w) in col_groups.remainder().iter().zip(cell_groups.remainder()) {
        let y = sweep.gather1(c, block);
        kernels::packed_rank1::<FMA>(a, k, y, w.gram_weight());
        kernels::axpy::<FMA>(w.rhs_weight(), y, b);
    }
    kernels::packed_add_diagonal(a, k, sweep.lambda_for(cols.len()));
}

#[inline(always)]
fn cholesky_row<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<(), SingularRow> {
    let k = sweep.k;
    build_row::<C, FMA>(sweep, row, scratch);
    let singular = SingularRow {
        row,
        n_obs: sweep.matrix.indptr[row + 1] - sweep.matrix.indptr[row],
    };

    // nalgebra reads the lower triangle, column by column: exactly the packed layout.
    let mut matrix = scratch
        .matrix
        .take()
        .unwrap_or_else(|| DMatrix::zeros(k, k));
    {
        let storage = matrix.as_mut_slice();
        let mut offset = 0;
        for j in 0..k {
            let len = k - j;
            storage[j * k + j..j * k + k].copy_from_slice(&scratch.packed[offset..offset + len]);
            scratch.diagonal[j] = scratch.packed[offset];
            offset += len;
        }
    }
    let Some(cholesky) = Cholesky::new(matrix) else {
        return Err(singular);
    };
    let l = cholesky.l_dirty();
    let well_posed = (0..k).all(|j| {
        let pivot = l[(j, j)];
        pivot * pivot >= SINGULAR_PIVOT_RATIO * scratch.diagonal[j]
    });
    if !well_posed {
        scratch.matrix = Some(cholesky.unpack_dirty());
        return Err(singular);
    }
    cholesky.solve_mut(&mut scratch.rhs);
    scratch.matrix = Some(cholesky.unpack_dirty());
    for (out, value) in factor.iter_mut().zip(scratch.rhs.iter()) {
        *out = *value as f32;
    }
    Ok(())
}

/// `out = c A v + d b` without forming A (c, d in {-1, 0, 1}): the Gram product, then
/// four observations at a time `sum_i (d h_i + c g_i (y_i · v)) y_i`, then `c lambda v`.
/// With c = -1, d = 1 this is the residual b - A v in a single pass over the observations.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn apply_row_matrix<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    cols: &[u32],
    cells: &[C],
    lambda: f64,
    [c, d]: [f64; 2],
    v: &[f64],
    block: &mut [f64],
    out: &mut [f64],
) {
    match sweep.gram {
        Some(gram) => {
            kernels::symv_full::<FMA>(&gram.full, sweep.k, v, out);
            if c != 1.0 {
                out.iter_mut().for_each(|o| *o *= c);
            }
        }
        None => out.fill(0.0),
    }
    let mut col_groups = cols.chunks_exact(4);
    let mut cell_groups = cells.chunks_exact(4);
    for (group, w) in (&mut col_groups).zip(&mut cell_groups) {
        let y = sweep.gather4(group, block);
        let dots = kernels::dot4::<FMA>(y, v);
        let mut coefficients = [0.0; 4];
        for t in 0..4 {
            coefficients[t] = d * w[t].rhs_weight() + c * w[t].gram_weight() * dots[t];
        }
        kernels::axpy4::<FMA>(coefficients, y, out);
    }
    for (&col, &w) in col_groups.remainder().iter().zip(cell_groups.remainder()) {
        let y = sweep.gather1(col, block);
        let coefficient = d * w.rhs_weight() + c * w.gram_weight() * kernels::dot::<FMA>(y, v);
        kernels::axpy::<FMA>(coefficient, y, out);
    }
    kernels::axpy::<FMA>(c * lambda, v, out);
}

/// Conjugate gradient on A x = b from the row's current factor (Takacs et al. 2011 use the
/// same warm start for implicit ALS): a few steps per sweep converge across sweeps.
#[inline(always)]
fn cg_row<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) {
    let (cols, cells) = sweep.matrix.row(row);
    let lambda = sweep.lambda_for(cols.len());
    let Scratch {
        x,
        residual,
        direction,
        product,
        block,
        ..
    } = scratch;
    widen(factor, x);

    apply_row_matrix::<C, FMA>(sweep, cols, cells, lambda, [-1.0, 1.0], x, block, residual);
    direction.copy_from_slice(residual);
    let mut rs_old = kernels::dot::<FMA>(residual, residual);

    for _ in 0..sweep.cg_steps {
        if rs_old < CG_RESIDUAL_FLOOR {
            break;
        }
        apply_row_matrix::<C, FMA>(
            sweep,
            cols,
            cells,
            lambda,
            [1.0, 0.0],
            direction,
            block,
            product,
        );
        let curvature = kernels::dot::<FMA>(direction, product);
        // A non-positive (or NaN) curvature means the direction is numerically null.
        if curvature.is_nan() || curvature <= 0.0 {
            break;
        }
        let step = rs_old / curvature;
        kernels::axpy::<FMA>(step, direction, x);
        kernels::axpy::<FMA>(-step, product, residual);
        let rs_new = kernels::dot::<FMA>(residual, residual);
        let beta = rs_new / rs_old;
        for (d, &r) in direction.iter_mut().zip(residual.iter()) {
            *d = r + beta * *d;
        }
        rs_old = rs_new;
    }
    for (out, &value) in factor.iter_mut().zip(x.iter()) {
        *out = value as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Implicit, RatingsCsr};

    fn sweep<'a, C: Cell>(
        matrix: &'a Csr<C>,
        fixed: &'a [f32],
        gram: Option<&'a Gram>,
        k: usize,
        solver: Solver,
    ) -> Sweep<'a, C> {
        Sweep {
            matrix,
            fixed,
            gram,
            k,
            regularization: 0.5,
            lambda_scaling: LambdaScaling::None,
            solver,
            cg_steps: k,
        }
    }

    fn widened(values: &[f32]) -> Vec<f64> {
        values.iter().map(|&v| v as f64).collect()
    }

    /// Dense reference: builds A and b naively and solves with nalgebra's LU.
    fn dense_solution(
        rows: &[(Vec<f64>, f64, f64)],
        gram: Option<&[f64]>,
        k: usize,
        lambda: f64,
    ) -> Vec<f64> {
        let mut a = DMatrix::<f64>::zeros(k, k);
        let mut b = DVector::<f64>::zeros(k);
        if let Some(g) = gram {
            for r in 0..k {
                for c in 0..k {
                    a[(r, c)] += g[r * k + c];
                }
            }
        }
        for (y, g, h) in rows {
            for r in 0..k {
                b[r] += h * y[r];
                for c in 0..k {
                    a[(r, c)] += g * y[r] * y[c];
                }
            }
        }
        for j in 0..k {
            a[(j, j)] += lambda;
        }
        a.lu().solve(&b).unwrap().iter().copied().collect()
    }

    #[test]
    fn cholesky_and_cg_rows_match_a_dense_solve() {
        let k = 6;
        let n_cols = 9;
        let fixed: Vec<f32> = (0..n_cols * k)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 10.0)
            .collect();
        let cols: Vec<u32> = vec![0, 2, 3, 5, 7, 8];
        let ratings: Vec<f32> = vec![4.0, 2.0, 5.0, 1.0, 3.0, 4.0];
        let matrix = RatingsCsr::from_triples(1, n_cols, &[0; 6], &cols, &ratings).unwrap();
        let rows: Vec<(Vec<f64>, f64, f64)> = cols
            .iter()
            .zip(&ratings)
            .map(|(&c, &r)| {
                (
                    widened(&fixed[c as usize * k..(c as usize + 1) * k]),
                    1.0,
                    r as f64,
                )
            })
            .collect();
        let expected = dense_solution(&rows, None, k, 0.5);
        for solver in [Solver::Cholesky, Solver::Cg] {
            let mut out = vec![0.0f32; k];
            sweep(&matrix, &fixed, None, k, solver)
                .run(&[true], &mut out)
                .unwrap();
            for (got, want) in out.iter().zip(&expected) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "{solver:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn implicit_rows_use_the_gram_matrix_of_all_columns() {
        let k = 3;
        let fixed: Vec<f32> = vec![1.0, 0.0, 0.5, 0.0, 1.0, -0.5, 0.3, 0.3, 1.0, 2.0, -1.0, 0.0];
        let g = gram(&fixed, k);
        let cell = Implicit {
            preference: 1.0,
            confidence: 5.0,
        };
        let matrix = Csr::from_triples(1, 4, &[0, 0], &[1, 3], &[cell, cell]).unwrap();
        let rows: Vec<(Vec<f64>, f64, f64)> = [1usize, 3]
            .iter()
            .map(|&c| (widened(&fixed[c * k..(c + 1) * k]), 4.0, 5.0))
            .collect();
        let expected = dense_solution(&rows, Some(&g.full), k, 0.5);
        for solver in [Solver::Cholesky, Solver::Cg] {
            let mut out = vec![0.0f32; k];
            sweep(&matrix, &fixed, Some(&g), k, solver)
                .run(&[true], &mut out)
                .unwrap();
            for (got, want) in out.iter().zip(&expected) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "{solver:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn gram_matches_sum_of_outer_products() {
        let k = 5;
        let n = 4099;
        let fixed: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let g = gram(&fixed, k);
        for r in 0..k {
            for c in 0..k {
                let want: f64 = (0..n)
                    .map(|i| fixed[i * k + r] as f64 * fixed[i * k + c] as f64)
                    .sum();
                assert!((g.full[r * k + c] - want).abs() < 1e-9 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn rank_deficient_system_is_reported_as_singular_with_its_row() {
        let k = 3;
        let fixed = vec![1.0, 2.0, 0.0, 2.0, 4.0, 0.0];
        let matrix = RatingsCsr::from_triples(2, 2, &[1, 1], &[0, 1], &[1.0, 2.0]).unwrap();
        let mut s = sweep(&matrix, &fixed, None, k, Solver::Cholesky);
        s.regularization = 0.0;
        let mut out = vec![0.0f32; 2 * k];
        assert_eq!(
            s.run(&[false, true], &mut out),
            Err(SingularRow { row: 1, n_obs: 2 })
        );
    }

    #[test]
    fn absent_rows_are_zeroed_and_not_solved() {
        let matrix = RatingsCsr::from_triples(2, 1, &[0], &[0], &[3.0]).unwrap();
        let mut out = vec![9.0f32; 2];
        sweep(&matrix, &[1.0], None, 1, Solver::Cholesky)
            .run(&[true, false], &mut out)
            .unwrap();
        assert_eq!(out, vec![2.0, 0.0]);
    }
}
